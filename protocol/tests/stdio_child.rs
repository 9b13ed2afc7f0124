//! Standard I/O for real: this test binary runs itself as a child whose descriptors 0
//! and 1 are pipes or files, and the child runs `examples/stdio_lines.rs` (compiled
//! in here, unchanged) on them. No test harness (`harness = false` in Cargo.toml), so
//! the child's standard output is the protocol's alone.
//!
//! Also the `sort_poem` example (a child process of its own), and one `LineReceiver`
//! protocol run unchanged over TCP, a Unix socket, this binary's stdio as a child, a
//! child's pipes and the in-memory stream, with identical results (the Twisted
//! Introduction's Part 5 claim).
//!
//! Covered: `printf 'a\nb\n' | stdio_lines`; stdin ending before any output is
//! written (twisted #7546); stdin and stdout as regular files (twisted #2259); the
//! pipes' descriptions shared with the parent keep their blocking flag (twisted
//! #3442); a megabyte through both pipes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use protocol::basic::{LineContext, LineProtocol, LineReceiver};
use protocol::testing::ProtocolTest;
use protocol::{
    for_protocol, listen_tcp, listen_unix, standard_io, DisconnectReason, EofAction, SimpleFactory,
    TcpListenOptions, UnixListenOptions,
};
use reactor::Reactor;
use transport::PipeStream;

#[allow(unreachable_pub)] // the example's items are public to its own binary only
#[path = "../examples/stdio_lines.rs"]
mod stdio_lines;

#[allow(unreachable_pub)] // as above
#[path = "../examples/sort_poem.rs"]
mod sort_poem;

#[allow(unreachable_pub)] // as above
#[path = "../examples/qotd.rs"]
mod qotd;

/// The environment variable that tells this binary it is the child.
const ROLE: &str = "STDIO_CHILD_ROLE";
/// Longest any child may take.
const LIMIT: Duration = Duration::from_secs(30);

fn main() {
    if let Some(role) = std::env::var_os(ROLE) {
        let ran = match role.to_str() {
            Some("lines") => stdio_lines::main(),
            Some("sort") => sort_poem::main(),
            Some("tally") => tally_on_stdio(),
            Some("qotd") => qotd::main(),
            _ => Err("unknown role".into()),
        };
        if let Err(e) = ran {
            eprintln!("stdio_child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let tests: [(&str, fn()); 8] = [
        ("two_lines_through_pipes", two_lines_through_pipes),
        ("input_ends_before_output", input_ends_before_output),
        ("regular_files_in_and_out", regular_files_in_and_out),
        (
            "shared_pipes_keep_their_flags",
            shared_pipes_keep_their_flags,
        ),
        ("a_megabyte_through_pipes", a_megabyte_through_pipes),
        (
            "sort_poem_sorts_the_default_poem",
            sort_poem_sorts_the_default_poem,
        ),
        (
            "one_protocol_over_every_stream",
            one_protocol_over_every_stream,
        ),
        (
            "qotd_answers_nc_over_tcp_and_udp",
            qotd_answers_nc_over_tcp_and_udp,
        ),
    ];
    println!("running {} tests", tests.len());
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
}

/// The child, not yet started: this binary in the child role.
fn child() -> Command {
    let mut command = Command::new(std::env::current_exe().expect("this test's path"));
    command.env(ROLE, "lines").stderr(Stdio::inherit());
    command
}

/// Kills the child if the test fails before it is waited for.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// Waits for the child, at most [`LIMIT`] (then fails the test).
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for the child") {
                return status;
            }
            assert!(start.elapsed() < LIMIT, "the child ran for {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Runs the child with `input` on a pipe, reading its output concurrently.
fn run_with_input(mut command: Command, input: &[u8]) -> (ExitStatus, Vec<u8>) {
    let mut guard = Guard(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child"),
    );
    let mut stdin = guard.0.stdin.take().unwrap();
    let mut stdout = guard.0.stdout.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    stdout
        .read_to_end(&mut out)
        .expect("read the child's output");
    writer.join().unwrap().expect("write the child's input");
    (guard.wait(), out)
}

fn numbered(lines: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        out += &format!("{}: {line}\n", n + 1);
    }
    out.into_bytes()
}

fn two_lines_through_pipes() {
    let (status, out) = run_with_input(child(), b"a\nb\n");
    assert!(status.success(), "{status}");
    assert_eq!(String::from_utf8_lossy(&out), "1: a\n2: b\n");
}

fn input_ends_before_output() {
    // Everything, end of file included, is in the pipe before the child starts.
    let (read, write) = pipe();
    let mut writer = File::from(write);
    writer.write_all(b"foo\n").unwrap();
    drop(writer);
    let mut guard = Guard(
        child()
            .stdin(Stdio::from(read))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = String::new();
    guard
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(guard.wait().success());
    assert_eq!(out, "1: foo\n");
}

fn regular_files_in_and_out() {
    let dir = std::env::temp_dir().join(format!("stdio-child-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.txt"), dir.join("out.txt"));
    let lines: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let mut guard = Guard(
        child()
            .stdin(File::open(&input).unwrap())
            .stdout(File::create(&output).unwrap())
            .spawn()
            .unwrap(),
    );
    assert!(guard.wait().success());
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out == numbered(&refs), "the numbered file differs");
}

fn shared_pipes_keep_their_flags() {
    let (in_read, in_write) = pipe();
    let (out_read, out_write) = pipe();
    // The parent keeps a copy of each end the child gets: the same descriptions.
    let (in_shared, out_shared) = (in_read.try_clone().unwrap(), out_write.try_clone().unwrap());
    let mut guard = Guard(
        child()
            .stdin(Stdio::from(in_read))
            .stdout(Stdio::from(out_write))
            .spawn()
            .unwrap(),
    );
    let mut writer = File::from(in_write);
    let mut reader = File::from(out_read);
    writer.write_all(b"first\n").unwrap();
    let mut line = [0u8; 9];
    reader.read_exact(&mut line).unwrap(); // the child is reading and writing now
    assert_eq!(&line, b"1: first\n");
    assert!(
        !nonblocking(&in_shared),
        "the child made its stdin non-blocking"
    );
    assert!(
        !nonblocking(&out_shared),
        "the child made its stdout non-blocking"
    );
    drop((writer, out_shared));
    assert!(guard.wait().success());
    assert!(!nonblocking(&in_shared));
}

fn a_megabyte_through_pipes() {
    let lines: Vec<String> = (0..100_000).map(|i| format!("{i:09}")).collect();
    let (status, out) = run_with_input(child(), (lines.join("\n") + "\n").as_bytes());
    assert!(status.success());
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert!(out == numbered(&refs), "the numbered output differs");
}

fn sort_poem_sorts_the_default_poem() {
    let mut command = child();
    command.env(ROLE, "sort");
    let (status, out) = run_with_input(command, b"");
    assert!(status.success(), "{status}");
    let poem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../poems/haiku.txt"))
        .unwrap();
    let mut lines: Vec<&str> = poem.lines().collect();
    lines.sort_unstable(); // byte order, as `LC_ALL=C sort`
    assert_eq!(String::from_utf8(out).unwrap(), lines.join("\n") + "\n");
}

// ===== one protocol over every stream =====

/// The protocol run unchanged over every stream transport: numbers each line it reads
/// (`N: line`), and at the input's end writes `total N` and closes.
#[derive(Debug, Default)]
struct Tally {
    lines: u64,
}

thread_local! {
    /// How each in-process run of [`Tally`] ended: `true` for a clean close.
    static TALLY_ENDS: std::cell::RefCell<Vec<bool>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl LineProtocol for Tally {
    type Factory = SimpleFactory<LineReceiver<Self>>;
    const DELIMITER: &'static [u8] = b"\n";

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        self.lines += 1;
        let mut numbered = format!("{}: ", self.lines).into_bytes();
        numbered.extend_from_slice(line);
        cx.send_line(&numbered);
    }

    fn read_connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>) -> EofAction {
        cx.send_line(format!("total {}", self.lines).as_bytes());
        cx.lose_connection();
        EofAction::KeepWriting
    }

    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, reason: &DisconnectReason) {
        TALLY_ENDS.with(|e| e.borrow_mut().push(reason.is_clean()));
        if std::env::var_os(ROLE).is_some() {
            cx.reactor().stop();
        }
    }
}

fn tally() -> LineReceiver<Tally> {
    LineReceiver::new(Tally::default())
}

/// The child role: [`Tally`] on this process's standard input and output.
fn tally_on_stdio() -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    standard_io(
        &mut reactor,
        PipeStream::standard()?,
        tally(),
        &for_protocol(),
    )?;
    reactor.run()?;
    let clean = TALLY_ENDS.with(|e| e.borrow().as_slice() == [true]);
    if !clean {
        std::process::exit(1);
    }
    Ok(())
}

/// What every peer sends: enough lines to fill any pipe or socket buffer.
fn tally_input() -> Vec<u8> {
    (0..20_000)
        .map(|i| format!("line {i}\n"))
        .collect::<String>()
        .into_bytes()
}

fn tally_expected() -> Vec<u8> {
    let mut out: String = (0..20_000)
        .map(|i| format!("{}: line {i}\n", i + 1))
        .collect();
    out += "total 20000\n";
    out.into_bytes()
}

/// Runs the reactor until `done`, at most [`LIMIT`].
fn turn_until(reactor: &mut Reactor, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "gave up after {LIMIT:?}");
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
}

/// Over a listening socket: a peer thread sends, half-closes and reads to the end.
fn tally_over_listener<S: Read + Write + Send + 'static>(
    listen: impl FnOnce(&mut Reactor) -> Box<dyn FnOnce() -> S + Send>,
    shut_write: fn(&S),
) -> (Vec<u8>, bool) {
    let mut reactor = Reactor::new().unwrap();
    let connect = listen(&mut reactor);
    let peer = std::thread::spawn(move || {
        let mut stream = connect();
        stream.write_all(&tally_input()).unwrap();
        shut_write(&stream);
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        out
    });
    TALLY_ENDS.with(|e| e.borrow_mut().clear());
    turn_until(&mut reactor, || {
        peer.is_finished() && TALLY_ENDS.with(|e| !e.borrow().is_empty())
    });
    let clean = TALLY_ENDS.with(|e| e.borrow().as_slice() == [true]);
    (peer.join().unwrap(), clean)
}

fn tally_over_tcp() -> (Vec<u8>, bool) {
    tally_over_listener(
        |reactor| {
            let options = TcpListenOptions::default();
            let port =
                listen_tcp(reactor, 0, &for_protocol::<LineReceiver<Tally>>(), &options).unwrap();
            let addr = port.get_host().tcp().unwrap();
            Box::new(move || std::net::TcpStream::connect(addr).unwrap())
        },
        |s| s.shutdown(std::net::Shutdown::Write).unwrap(),
    )
}

fn tally_over_unix() -> (Vec<u8>, bool) {
    let path = std::env::temp_dir().join(format!("tally-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let result = tally_over_listener(
        |reactor| {
            listen_unix(
                reactor,
                &path,
                &for_protocol::<LineReceiver<Tally>>(),
                &UnixListenOptions::default(),
            )
            .unwrap();
            let path = path.clone();
            Box::new(move || std::os::unix::net::UnixStream::connect(path).unwrap())
        },
        |s| s.shutdown(std::net::Shutdown::Write).unwrap(),
    );
    let _ = std::fs::remove_file(&path);
    result
}

fn tally_over_memory() -> (Vec<u8>, bool) {
    let mut test = ProtocolTest::new(tally(), for_protocol());
    test.feed(&tally_input());
    test.close_peer_write();
    let out = test.take_written();
    let clean = test.reason().is_some_and(|r| r.is_clean());
    (out, clean)
}

fn tally_over_stdio_of_a_child() -> (Vec<u8>, bool) {
    let mut command = child();
    command.env(ROLE, "tally");
    let (status, out) = run_with_input(command, &tally_input());
    (out, status.success())
}

/// Over a child's pipes: the child (`sh`) is the peer. It writes the input to its
/// stdout, closes it, then copies its stdin (our output) to its stderr.
fn tally_over_pipes_to_a_child() -> (Vec<u8>, bool) {
    let dir = std::env::temp_dir().join(format!("tally-pipes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input");
    std::fs::write(&input, tally_input()).unwrap();
    let mut guard = Guard(
        Command::new("sh")
            .arg("-c")
            .arg("cat \"$0\"; exec >&-; exec cat >&2")
            .arg(&input)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let ours_in = OwnedFd::from(guard.0.stdout.take().unwrap());
    let ours_out = OwnedFd::from(guard.0.stdin.take().unwrap());
    let mut stderr = guard.0.stderr.take().unwrap();
    let peer = std::thread::spawn(move || {
        let mut out = Vec::new();
        stderr.read_to_end(&mut out).unwrap();
        out
    });
    let mut reactor = Reactor::new().unwrap();
    let stream = PipeStream::from_fds(Some(ours_in), Some(ours_out)).unwrap();
    TALLY_ENDS.with(|e| e.borrow_mut().clear());
    standard_io(&mut reactor, stream, tally(), &for_protocol()).unwrap();
    turn_until(&mut reactor, || TALLY_ENDS.with(|e| !e.borrow().is_empty()));
    let clean = TALLY_ENDS.with(|e| e.borrow().as_slice() == [true]);
    assert!(guard.wait().success());
    let _ = std::fs::remove_dir_all(&dir);
    (peer.join().unwrap(), clean)
}

/// One run of [`Tally`] over one transport: what the peer read, and whether the
/// connection ended cleanly.
type TallyRun = fn() -> (Vec<u8>, bool);

fn one_protocol_over_every_stream() {
    let expected = tally_expected();
    let runs: [(&str, TallyRun); 5] = [
        ("tcp", tally_over_tcp),
        ("unix socket", tally_over_unix),
        ("stdio of a child", tally_over_stdio_of_a_child),
        ("pipes to a child", tally_over_pipes_to_a_child),
        ("in-memory stream", tally_over_memory),
    ];
    for (name, run) in runs {
        let (out, clean) = run();
        assert!(clean, "{name}: the connection did not end cleanly");
        assert!(
            out == expected,
            "{name}: {} bytes differ from the {} expected",
            out.len(),
            expected.len()
        );
    }
}

fn qotd_answers_nc_over_tcp_and_udp() {
    let mut command = child();
    command.env(ROLE, "qotd").arg("0");
    let mut guard = Guard(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = std::io::BufReader::new(guard.0.stdout.take().unwrap());
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut banner).unwrap();
    let port = banner
        .trim_end()
        .trim_end_matches('.')
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {banner:?}"));
    let poem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../poems/haiku.txt"))
        .unwrap();
    let ask = |args: &[&str], input: &[u8]| {
        let mut nc = Command::new("nc");
        nc.args(args).arg("127.0.0.1").arg(port.to_string());
        let (status, out) = run_with_input(nc, input);
        assert!(
            status.success(),
            "nc {args:?}: {status} (nc must be installed)"
        );
        String::from_utf8(out).unwrap()
    };
    for quote in [ask(&[], b""), ask(&["-u", "-w1"], b"\n")] {
        let line = quote
            .strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("{quote:?}"));
        assert!(
            poem.lines().any(|l| l == line),
            "{quote:?} is not a line of the poem"
        );
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these descriptors; nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: `fd` is open; F_GETFL takes no pointer.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}
