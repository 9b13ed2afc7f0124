//! Bad input to `poetry-client`: every option with a missing, malformed, out-of-range
//! or hostile value, and addresses that are not `PORT`, `HOST:PORT` or
//! `[IPV6]:PORT`. Each row must exit with status 2 and exactly one line on stderr
//! that names the problem, before connecting anywhere: never a panic, a backtrace, a
//! hang, or a line thousands of characters long.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The longest error line allowed: hostile values are cut short.
const MAX_LINE: usize = 256;

/// Runs the client with `args`, killing it if it takes longer than `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poetry-client"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        // Names resolve in memory only: no lookup leaves the machine.
        .env(protocol::TEST_HOSTS_VARIABLE, "localhost=127.0.0.1,::1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("poetry-client starts");
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|stream| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.expect("piped").read_to_end(&mut bytes);
            bytes
        })
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("poetry-client {args:.30?} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let [stdout, stderr] = readers.map(|r| r.join().expect("a reader thread"));
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Checks the client refuses `args`: status 2, nothing on stdout, one short line on
/// stderr containing `names`, no panic.
#[track_caller]
fn refused(args: &[&str], names: &str) {
    let output = run(args, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown: Vec<String> = args.iter().map(|a| a.chars().take(30).collect()).collect();
    assert_eq!(output.status.code(), Some(2), "{shown:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{shown:?} printed on stdout");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{shown:?}: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{shown:?}: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{shown:?}: {stderr:?}");
    let line = stderr.trim_end();
    assert!(line.starts_with("poetry-client: "), "{shown:?}: {line}");
    assert!(
        line.len() <= MAX_LINE,
        "{shown:?}: a line of {}",
        line.len()
    );
    assert!(!line.chars().any(char::is_control), "{shown:?}: {line:?}");
    assert!(
        line.contains(names),
        "{shown:?}: {line:?} does not name {names:?}"
    );
}

/// A port that is listened on and never accepted from: a usage error must be found
/// before any connection is made.
struct Witness {
    listener: TcpListener,
}

impl Witness {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Witness { listener }
    }

    fn port(&self) -> String {
        self.listener.local_addr().unwrap().port().to_string()
    }

    #[track_caller]
    fn assert_untouched(&self) {
        assert!(
            self.listener.accept().is_err(),
            "a refused command line still connected"
        );
    }
}

#[test]
fn options_without_a_value() {
    for option in ["--timeout", "--connect-timeout"] {
        refused(&[option], "a value is required");
        refused(&["10000", option], "a value is required");
    }
    refused(&[], "<ADDRESS>");
}

#[test]
fn malformed_and_out_of_range_timeouts() {
    let witness = Witness::new();
    let port = witness.port();
    for option in ["--timeout", "--connect-timeout"] {
        let rows: &[(&str, &str)] = &[
            ("soon", "'soon' is not a number of seconds"),
            ("", "is not a number of seconds"),
            ("1s", "is not a number of seconds"),
            ("0,5", "is not a number of seconds"),
            ("0", "out of range"),
            ("-0", "out of range"),
            ("-1", "out of range"),
            ("86401", "out of range"),
            ("1e300", "out of range"),
            ("1e400", "out of range"),
            ("inf", "out of range"),
            ("-inf", "out of range"),
            ("NaN", "out of range"),
        ];
        for (value, names) in rows {
            refused(&[option, value, &port], names);
        }
    }
    witness.assert_untouched();
}

#[test]
fn malformed_addresses() {
    let witness = Witness::new();
    let port = witness.port();
    let rows: &[(&str, &str)] = &[
        ("", "Ports must be integers."),
        ("abc", "Ports must be integers."),
        ("localhost:ten", "Ports must be integers."),
        ("host:", "Ports must be integers."),
        ("host:+5", "Ports must be integers."),
        ("host:0x10", "Ports must be integers."),
        ("host:-1", "Ports must be integers."),
        ("-1", "Ports must be integers."),
        ("[::1]:", "Ports must be integers."),
        ("0", "out of range"),
        ("65536", "out of range"),
        ("99999999999999999999", "out of range"),
        (":10000", "Bad address"),
        ("[::1", "Bad address '[::1'"),
        ("[::1]", "Bad address"),
        ("[::1]10000", "Bad address"),
        ("::1:10000", "Bad address"),
        ("1:2:3", "Bad address"),
        ("a b:1", "Bad address"),
        ("host/path:1", "Bad address"),
    ];
    for (address, names) in rows {
        // After a good address, so the bad one is found whatever its place.
        refused(&[&port, address], names);
    }
    witness.assert_untouched();
}

#[test]
fn hostile_values_are_cut_short_and_kept_on_one_line() {
    let witness = Witness::new();
    let port = witness.port();
    let digits = "9".repeat(10_000);
    let junk = "x".repeat(10_000);
    refused(&[&digits], "out of range");
    refused(&[&junk], "Ports must be integers.");
    // A host name longer than DNS allows is refused, not looked up.
    refused(&[&format!("{junk}:{port}")], "Bad address 'xxxx");
    refused(&[&format!("[{junk}]:{port}")], "Bad address '[xxxx");
    refused(&[&format!("localhost:{digits}")], "out of range");
    for option in ["--timeout", "--connect-timeout"] {
        refused(&[option, &digits, &port], "out of range");
        refused(&[option, &junk, &port], "is not a number of seconds");
    }
    refused(&[&format!("--{junk}"), &port], "unexpected argument");
    // Newlines and terminal escapes are shown escaped, not obeyed.
    refused(&["a\nb:1"], "a\\nb:1");
    refused(&["\x1b[2J:1"], "\\u{1b}[2J:1");
    refused(&["--timeout", "1\n2", &port], "'1\\n2'");
    refused(&["--bogus", &port], "--bogus");
    witness.assert_untouched();
}

#[test]
fn an_unresolvable_host_is_a_failed_download_not_a_usage_error() {
    // The address is well formed; whether it resolves is known only by trying, so
    // the client tries, reports the failure, and exits 1 (README: 2 is for bad
    // arguments only).
    let output = run(&["unknown.test:10000"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(stderr.contains("unknown.test"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
