//! The examples people copy stay bounded under the clients that break unbounded
//! servers: `echo_server` against a client that never reads (and closing after a
//! client's end of file although it is a streaming producer), `chat_server` against a
//! member that never reads, 4 MiB of empty lines and 500 slow senders. Each runs the
//! example's binary (built by `test_support::build_example`) and checks its peak
//! memory (`VmHWM`) or that the server let go, within a deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a bounded example may grow by under attack (its buffers are 64-256 KiB; the
/// unbounded ones grew by 23-57 MiB in these very tests; the bounded by at most 1 MiB).
const GROWTH: u64 = 8 * 1024 * 1024;
const PATIENCE: Duration = Duration::from_secs(20);

/// An example server, killed on drop.
struct Example {
    child: Child,
    port: u16,
    /// Kept open: the example prints a second line, and a closed pipe would kill it.
    _stdout: std::process::ChildStdout,
}

impl Example {
    fn start(name: &str, idle_seconds: &str) -> Example {
        let mut child = Command::new(test_support::build_example("protocol", name))
            .args(["0", idle_seconds])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts");
        let mut stdout = child.stdout.take().unwrap();
        let mut first = Vec::new();
        let mut byte = [0u8];
        while !first.ends_with(b"\n") && stdout.read(&mut byte).unwrap_or(0) == 1 {
            first.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&first);
        let port = line
            .split_once("on port ")
            .and_then(|(_, rest)| rest.trim_end().trim_end_matches('.').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Example {
            child,
            port,
            _stdout: stdout,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_nonblocking(true).unwrap();
        stream
    }

    /// The server's peak resident memory so far, in bytes.
    fn peak_memory(&mut self) -> u64 {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "the example died"
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the example is running");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }

    #[track_caller]
    fn assert_bounded(&mut self, before: u64, what: &str) {
        let after = self.peak_memory();
        eprintln!("{what}: {} -> {} KiB", before / 1024, after / 1024);
        assert!(
            after.saturating_sub(before) < GROWTH,
            "{what}: the server grew from {} to {} KiB",
            before / 1024,
            after / 1024
        );
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `data` repeatedly, up to `total` bytes, until the peer stops taking them for
/// 300 ms (or closes). Returns the bytes taken.
fn push(stream: &mut TcpStream, data: &[u8], total: usize) -> usize {
    let (mut sent, mut stalled) = (0, None::<Instant>);
    let deadline = Instant::now() + PATIENCE;
    while sent < total && Instant::now() < deadline {
        let want = data.len().min(total - sent);
        match stream.write(&data[..want]) {
            Ok(n) => (sent, stalled) = (sent + n, None),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stalled.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => break, // closed by the server
        }
    }
    sent
}

/// Whether the server reset `stream` within `limit`, seen without reading from it
/// (a reader would not be a never-reader): the socket's pending error.
fn reset_within(stream: &TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = stream.take_error() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads and discards until the server closes or resets `stream`; whether it did
/// within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn echo_server_stops_reading_from_a_client_that_never_reads() {
    let mut server = Example::start("echo_server", "0.5");
    let before = server.peak_memory();
    let mut client = server.connect();
    let sent = push(&mut client, &[b'e'; 64 * 1024], 64 << 20);
    server.assert_bounded(before, "64 MiB sent, nothing read");
    // It stopped reading: the socket buffers hold the rest, not the server.
    assert!(sent < 64 << 20, "the server took all 64 MiB");
    // And once nothing moves for the idle timeout, it lets go.
    assert!(reset_within(&client, Duration::from_secs(5)), "not cut off");
}

#[test]
fn echo_server_closes_cleanly_after_the_client_ends_its_half() {
    // The echo is its transport's streaming producer; the client's end of file must
    // still close the connection (a streaming producer never holds a close), long
    // before the 30 s idle timeout, and cleanly: the echo, then end of file.
    let server = Example::start("echo_server", "30");
    let mut client = server.connect();
    assert_eq!(push(&mut client, b"hello", 5), 5);
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let (mut got, mut buf) = (Vec::new(), [0u8; 64]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let end = loop {
        match client.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => break Err(e),
        }
    };
    assert!(end.is_ok(), "not closed cleanly within 5 s: {end:?}");
    assert_eq!(got, b"hello");
}

/// A chat member that has picked `name`.
fn member(server: &Example, name: &str) -> TcpStream {
    let mut stream = server.connect();
    assert_eq!(
        push(&mut stream, format!("{name}\n").as_bytes(), name.len() + 1),
        name.len() + 1
    );
    stream
}

#[test]
fn chat_server_drops_a_member_that_never_reads() {
    let mut server = Example::start("chat_server", "30");
    let deaf = member(&server, "deaf");
    let mut talker = member(&server, "talker");
    let before = server.peak_memory();
    // 150,000 lines of 200 bytes: 30 MB broadcast to a member that reads none of it.
    let line = [vec![b'x'; 199], b"\n".to_vec()].concat();
    let block = line.repeat(320);
    let mut sent = 0;
    let deadline = Instant::now() + PATIENCE;
    while sent < 150_000 * line.len() && Instant::now() < deadline {
        sent += push(&mut talker, &block, block.len());
        let mut sink = [0u8; 4096];
        let _ = talker.read(&mut sink); // the talker reads what little it is sent
    }
    assert!(
        sent >= 150_000 * line.len(),
        "the talker was held up after {sent} bytes"
    );
    server.assert_bounded(before, "30 MB to a member that never reads");
    assert!(reset_within(&deaf, Duration::from_secs(5)), "not dropped");
}

#[test]
fn chat_server_stays_bounded_under_empty_lines() {
    let mut server = Example::start("chat_server", "30");
    let mut listener = member(&server, "listener");
    let mut blank = member(&server, "blank");
    // Empty lines from a named member are not broadcast: the listener gets nothing.
    push(&mut blank, &[b'\n'; 64 * 1024], 64 * 1024);
    let mut got = Vec::new();
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        let mut buf = [0u8; 4096];
        match listener.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let got = String::from_utf8_lossy(&got);
    assert!(!got.contains("<blank>"), "{} bytes broadcast", got.len());
    // 4 MiB of empty lines from a client with no name, which never reads: each is
    // answered ("Name taken") until its backlog passes the limit and it is dropped.
    let before = server.peak_memory();
    let mut nameless = server.connect();
    let sent = push(&mut nameless, &[b'\n'; 64 * 1024], 4 << 20);
    assert_eq!(sent, 4 << 20);
    server.assert_bounded(before, "4 MiB of empty lines");
    assert!(
        reset_within(&nameless, Duration::from_secs(10)),
        "not dropped"
    );
}

#[test]
fn chat_server_lets_go_of_500_slow_senders() {
    // Each sends a byte now and then but never a whole line: with a 0.5 s idle
    // period, every one is dropped within a few seconds.
    let server = Example::start("chat_server", "0.5");
    let mut senders: Vec<TcpStream> = (0..500).map(|_| server.connect()).collect();
    for round in 0..3 {
        for sender in &mut senders {
            let _ = sender.write(b"x");
        }
        if round < 2 {
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut open: Vec<TcpStream> = senders;
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| !closed_within(s, Duration::ZERO));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        open.is_empty(),
        "{} of 500 slow senders still held",
        open.len()
    );
}
