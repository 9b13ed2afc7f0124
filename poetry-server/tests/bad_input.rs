//! Bad input to `poetry-server`: every option with a missing, malformed, out-of-range
//! or hostile value, poems that are not readable files, ports and interfaces that
//! cannot be listened on. Each row must exit with status 2 and exactly one line on
//! stderr that names the problem: never a panic, a backtrace, a hang, or a line
//! thousands of characters long.

mod fault_util;
mod util;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use fault_util::{run_bounded, server_binary, ScratchDir};

/// The longest error line allowed: hostile values are cut short.
const MAX_LINE: usize = 256;

/// Runs the server with `args` and checks it refuses them: status 2, nothing on
/// stdout, one short line on stderr containing `names`, no panic.
#[track_caller]
fn refused(args: &[&str], names: &str) {
    let mut command = Command::new(server_binary());
    // Names resolve in memory only: no lookup leaves the machine.
    command
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env(protocol::TEST_HOSTS_VARIABLE, "localhost=127.0.0.1,::1");
    // A row that is wrongly accepted would serve for ever: the bound catches it.
    let output = run_bounded(command, Duration::from_secs(10));
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
    assert!(line.starts_with("poetry-server: "), "{shown:?}: {line}");
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

#[test]
fn options_without_a_value() {
    for option in [
        "--port",
        "--iface",
        "--num-bytes",
        "--delay",
        "--max-connections",
        "--idle-timeout",
        "--reactors",
        "--send-buffer",
        "--congestion-control",
    ] {
        refused(&[option], "a value is required");
        refused(&[option, "--delay", "0"], "");
    }
}

#[test]
fn malformed_numbers() {
    let rows: &[(&[&str], &str)] = &[
        (&["--port", "ten"], "--port"),
        (&["--port", ""], "--port"),
        (&["--port", "1.5"], "--port"),
        (&["--port", "0x10"], "--port"),
        (&["--port", " 80"], "--port"),
        (&["--num-bytes", "lots"], "--num-bytes"),
        (&["--num-bytes", "1e3"], "--num-bytes"),
        (&["--max-connections", "many"], "--max-connections"),
        (&["--reactors", "two"], "--reactors"),
        (&["--send-buffer", "big"], "--send-buffer"),
        (&["--send-buffer", "-1"], "--send-buffer"),
        (&["--send-buffer", "4095"], "--send-buffer"),
        (&["--send-buffer", "268435457"], "--send-buffer"),
        (
            &["--congestion-control", "no-such-algorithm"],
            "congestion control",
        ),
        (&["--congestion-control", ""], "congestion control"),
        (
            &["--congestion-control", "a-name-far-too-long-for-the-kernel"],
            "congestion control",
        ),
        (&["--delay", "soon"], "'soon' is not a number of seconds"),
        (&["--delay", ""], "is not a number of seconds"),
        (&["--delay", "1s"], "is not a number of seconds"),
        (&["--delay", "0,5"], "is not a number of seconds"),
        (&["--idle-timeout", "forever"], "is not a number of seconds"),
    ];
    for (args, names) in rows {
        refused(args, names);
    }
}

#[test]
fn out_of_range_values() {
    let rows: &[(&[&str], &str)] = &[
        (&["--port", "65536"], "--port"),
        (&["--port", "-1"], "--port"),
        (&["--port", "99999999999999999999999"], "--port"),
        (&["--num-bytes", "0"], "--num-bytes"),
        (&["--num-bytes", "-1"], "--num-bytes"),
        (&["--num-bytes", "1048577"], "--num-bytes"),
        (&["--num-bytes", "18446744073709551616"], "--num-bytes"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--max-connections", "-5"], "--max-connections"),
        (&["--max-connections", "1000001"], "--max-connections"),
        (&["--reactors", "0"], "--reactors"),
        (&["--reactors", "257"], "--reactors"),
        (&["--delay", "-1"], "out of range"),
        (&["--delay", "-0.001"], "out of range"),
        (&["--delay", "86401"], "out of range"),
        (&["--delay", "1e400"], "out of range"),
        (&["--delay", "inf"], "out of range"),
        (&["--delay", "-inf"], "out of range"),
        (&["--delay", "NaN"], "out of range"),
        (&["--idle-timeout", "-1"], "out of range"),
        (&["--idle-timeout", "nan"], "out of range"),
        (&["--idle-timeout", "1e300"], "out of range"),
    ];
    for (args, names) in rows {
        refused(args, names);
    }
}

#[test]
fn hostile_values_are_cut_short_and_kept_on_one_line() {
    let long = "9".repeat(10_000);
    let junk = "x".repeat(10_000);
    for option in [
        "--port",
        "--num-bytes",
        "--delay",
        "--max-connections",
        "--idle-timeout",
        "--reactors",
    ] {
        refused(&[option, &long], option);
        refused(&[option, &junk], option);
    }
    refused(&["--iface", &junk], "cannot use interface xxxx");
    refused(&[&junk], "cannot read poem xxxx");
    refused(&[&format!("--{junk}")], "unexpected argument");
    // Newlines and terminal escapes are shown escaped, not obeyed.
    refused(&["--delay", "1\n2"], "'1\\n2'");
    refused(&["--delay", "\x1b[2J"], "is not a number of seconds");
    refused(&["--iface", "lo\nback"], "lo\\nback");
    refused(&["no\nsuch\npoem"], "no\\nsuch\\npoem");
    refused(&["--no-such-option"], "--no-such-option");
    refused(&["one.txt", "two.txt"], "two.txt");
    refused(&["--port", "1", "--port", "2"], "--port");
}

#[test]
fn poems_that_are_not_readable_files() {
    let dir = ScratchDir::new("bad-poems");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    refused(&[&path("missing.txt")], "cannot read poem");
    refused(&[dir.path().to_str().unwrap()], "is not a file");
    refused(&[""], "");
    refused(&["/dev/null"], "is not a file");
    // A FIFO would block an open for reading until a writer came.
    let fifo = std::ffi::CString::new(path("fifo")).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    refused(&[&path("fifo")], "is not a file");
    std::os::unix::fs::symlink(path("nowhere"), path("dangling")).unwrap();
    refused(&[&path("dangling")], "No such file");
    std::os::unix::fs::symlink(path("loop"), path("loop")).unwrap();
    refused(&[&path("loop")], "cannot read poem");
    std::fs::write(path("file"), b"a poem").unwrap();
    refused(&[&format!("{}/below", path("file"))], "Not a directory");
    // A file nobody may read: root reads it anyway, so the row only means something
    // for other users (the dangling symlink and the loop above stand in for root).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path("secret"), b"a poem").unwrap();
        std::fs::set_permissions(path("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
        refused(&[&path("secret")], "Permission denied");
    }
}

#[test]
fn ports_and_interfaces_that_cannot_be_listened_on() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    refused(&["--port", &port], "in use");
    refused(&["--port", &port, "--reactors", "2"], "in use");
    let rows: &[(&[&str], &str)] = &[
        (&["--iface", ""], "cannot use interface"),
        (&["--iface", "[::1"], "cannot use interface [::1"),
        (&["--iface", "::1]"], "cannot use interface ::1]"),
        (&["--iface", "[]"], "cannot use interface"),
        (&["--iface", "999.1.1.1"], "cannot use interface 999.1.1.1"),
        (&["--iface", "127.0.0.1:80"], "cannot use interface"),
        (&["--iface", "host name"], "cannot use interface"),
        (
            &["--iface", "unknown.test"],
            "cannot use interface unknown.test",
        ),
        // An address of no local interface (TEST-NET-1).
        (&["--iface", "192.0.2.1"], "cannot listen on 192.0.2.1"),
    ];
    for (args, names) in rows {
        refused(args, names);
    }
}
