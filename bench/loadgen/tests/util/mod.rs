//! Helpers for the loadgen tests: an in-process raw-mio server on loopback port 0, and
//! the `loadgen` binary run as a bounded subprocess.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raw_mio_server::{Mode, Server, StopHandle, UdpEcho};

/// A raw-mio server on its own thread; stopped and joined on drop.
pub(crate) struct TestServer {
    pub(crate) port: u16,
    stop: StopHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub(crate) fn start(mode: Mode) -> TestServer {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = Server::bind(addr, mode).expect("bind 127.0.0.1:0");
        let port = server.local_addr().unwrap().port();
        let stop = server.stop_handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        TestServer { port, stop, thread }
    }
}

impl TestServer {
    /// The raw-mio UDP echo on its own thread.
    pub(crate) fn udp_echo() -> TestServer {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = UdpEcho::bind(addr).expect("bind UDP 127.0.0.1:0");
        let port = server.local_addr().unwrap().port();
        let stop = server.stop_handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        TestServer { port, stop, thread }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a `loadgen` run printed.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The JSON after `RESULT `, which must be there exactly once.
    #[track_caller]
    pub(crate) fn result(&self) -> &str {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .collect();
        assert_eq!(lines.len(), 1, "one RESULT line expected in {self:?}");
        lines[0]
    }

    /// Whether the result has `"key":value` (value as JSON text).
    #[track_caller]
    pub(crate) fn has(&self, key: &str, value: &str) -> bool {
        self.result().contains(&format!("\"{key}\":{value}"))
    }
}

/// Runs `loadgen` with `args`, killing it if it takes longer than `limit`.
#[track_caller]
pub(crate) fn loadgen(args: &[&str], limit: Duration) -> Run {
    loadgen_reading(args, limit, Stdio::null())
}

/// As [`loadgen`], with `stdin` as its standard input.
#[track_caller]
pub(crate) fn loadgen_reading(args: &[&str], limit: Duration, stdin: Stdio) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// A poem of `len` bytes that is not all one byte.
pub(crate) fn poem(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"When I have fears that I may cease to be\n"[i % 41])
        .collect()
}
