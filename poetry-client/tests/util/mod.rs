//! Helpers for the poetry client's integration tests: the shared poems, poetry servers
//! on threads of their own (the real `poetry_server` on its own reactor, or a raw std
//! server that misbehaves on purpose), the client binary run with a deadline, and the
//! Twisted peers when installed.
//!
//! Every wait has a deadline; every thread is joined and every child process killed
//! when its guard is dropped.

// Each test file uses its own subset of these helpers (and of the re-exports).
#![allow(dead_code, unused_imports)]

pub(crate) mod screen;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use poetry_server::{serve, Poem, ServerOptions, Stats};
use reactor::{Reactor, ReactorHandle};

// What every crate's tests share, written once in test-support.
pub(crate) use test_support::{
    assert_same_bytes, dead_port, poem_bytes, poems, pseudo_random, reset, run_bounded,
    run_bounded_with_stdout, twisted_peer, twisted_python, ChildGuard, Collected, PATIENCE,
};

/// The `poetry-client` binary under test.
pub(crate) fn client_binary() -> &'static str {
    env!("CARGO_BIN_EXE_poetry-client")
}

/// Fast mode (`--delay 0`).
pub(crate) fn fast() -> ServerOptions {
    ServerOptions {
        delay: Duration::ZERO,
        ..ServerOptions::default()
    }
}

/// Slow mode: `num_bytes` every `delay`.
pub(crate) fn slow(num_bytes: usize, delay: Duration) -> ServerOptions {
    ServerOptions {
        num_bytes,
        delay,
        ..ServerOptions::default()
    }
}

/// The real poetry server, on a reactor and thread of its own; stopped and joined on
/// drop.
#[derive(Debug)]
pub(crate) struct ServerThread {
    /// The loopback port it listens on.
    pub(crate) port: u16,
    handle: ReactorHandle,
    thread: Option<thread::JoinHandle<Stats>>,
}

impl ServerThread {
    /// Serves `poem` on a free loopback port as `options` say.
    pub(crate) fn start(poem: &[u8], options: ServerOptions) -> ServerThread {
        let poem = poem.to_vec();
        let (ready, started) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut reactor = Reactor::new().expect("a reactor");
            let (port, factory) =
                serve(&mut reactor, Poem::from_bytes("test poem", &poem), options)
                    .expect("serve on loopback");
            let port = port.get_host().port().expect("a TCP port");
            ready
                .send((port, reactor.handle()))
                .expect("the test waits");
            reactor.run().expect("the server's reactor runs");
            let stats = factory.borrow().stats();
            stats
        });
        let (port, handle) = started
            .recv_timeout(PATIENCE)
            .expect("the server thread starts");
        ServerThread {
            port,
            handle,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the reactor and returns what the server did.
    pub(crate) fn stop(mut self) -> Stats {
        self.stop_and_join()
            .expect("the server thread ends cleanly")
    }

    fn stop_and_join(&mut self) -> Option<Stats> {
        let thread = self.thread.take()?;
        let _ = self.handle.stop();
        let deadline = Instant::now() + PATIENCE;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                // Leave it rather than hang the suite; the test fails below.
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
        thread.join().ok()
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// A hand-written server on a std listener: for each connection it accepts (up to
/// `connections`), `serve` runs on the listener's thread. Joined on drop; the accept
/// loop has a deadline, so a client that never comes does not hang the test.
#[derive(Debug)]
pub(crate) struct RawServer {
    /// The loopback port it listens on.
    pub(crate) port: u16,
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    /// Starts it.
    pub(crate) fn start(
        connections: usize,
        serve: impl FnMut(TcpStream) + Send + 'static,
    ) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let mut serve = serve;
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + PATIENCE;
            let mut served = 0;
            while served < connections && Instant::now() < deadline && !stop.load(Ordering::SeqCst)
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        serve(stream);
                        served += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        RawServer {
            port,
            done,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if result.is_err() && !thread::panicking() {
                panic!("the raw server's thread panicked");
            }
        }
    }
}

/// What the client binary did.
#[derive(Debug)]
pub(crate) struct ClientRun {
    /// Its exit code.
    pub(crate) code: Option<i32>,
    /// The poems.
    pub(crate) stdout: Vec<u8>,
    /// Headers, failures, summary.
    pub(crate) stderr: String,
}

/// Runs `poetry-client ARGS` to completion (within [`PATIENCE`]).
pub(crate) fn run_client<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> ClientRun {
    let mut command = Command::new(client_binary());
    // Names resolve in memory only: no lookup leaves the machine.
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env(protocol::TEST_HOSTS_VARIABLE, "localhost=127.0.0.1,::1");
    let output = test_support::run_bounded(command, PATIENCE);
    ClientRun {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Builds this crate's example `name` and returns its path.
pub(crate) fn build_example(name: &str) -> PathBuf {
    test_support::build_example("poetry-client", name)
}
