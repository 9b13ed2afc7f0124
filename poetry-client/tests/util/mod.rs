//! Helpers for the poetry client's integration tests: the shared poems, poetry servers
//! on threads of their own (the real `poetry_server` on its own reactor, or a raw std
//! server that misbehaves on purpose), the client binary run with a deadline, and the
//! Twisted peers when installed.
//!
//! Every wait has a deadline; every thread is joined and every child process killed
//! when its guard is dropped.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

pub(crate) mod screen;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use poetry_server::{serve, Poem, ServerOptions, Stats};
use reactor::{Reactor, ReactorHandle};

/// How long any one step (a start, a download, a child's exit) may take before the
/// test gives up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The `poetry-client` binary under test.
pub(crate) fn client_binary() -> &'static str {
    env!("CARGO_BIN_EXE_poetry-client")
}

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// The project's own poems (`poems/` at the workspace root).
pub(crate) fn poetry_dir() -> PathBuf {
    workspace().join("poems")
}

/// One shared poem's bytes.
pub(crate) fn shared_poem(name: &str) -> Vec<u8> {
    let path = poetry_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every shared poem, sorted by file name: `(path, bytes)`.
pub(crate) fn shared_poems() -> Vec<(PathBuf, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(poetry_dir())
        .expect("the shared poetry directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no poems in {}", poetry_dir().display());
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a shared poem");
            (p, bytes)
        })
        .collect()
}

/// `len` pseudo-random bytes (xorshift; NULs and every other byte value included).
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compares two byte strings without printing megabytes when they differ.
#[track_caller]
pub(crate) fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first difference at {}",
            got.len(),
            want.len(),
            first.unwrap_or(got.len().min(want.len()))
        );
    }
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

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
pub(crate) fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `linger` (a valid struct of the size given) only.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
    drop(stream);
}

/// A loopback port with nothing listening on it (bound, then closed at once).
pub(crate) fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().unwrap().port()
}

/// A child process that is killed (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct ChildGuard(pub(crate) Child);

impl ChildGuard {
    /// Waits at most `limit` for the child to exit on its own.
    pub(crate) fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a child's output stream to the end on a thread of its own, so the child
/// never blocks on a full pipe.
pub(crate) fn collect(
    mut from: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = collected.clone();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    (collected, reader)
}

/// Runs `command` to completion with its output captured; kills it and panics if it
/// takes longer than `limit`.
pub(crate) fn run_bounded(mut command: Command, limit: Duration) -> Output {
    command.stdout(Stdio::piped());
    run_bounded_with_stdout(command, limit)
}

/// As [`run_bounded`], with the stdout the command already has (`Output::stdout` is
/// empty unless it was piped).
pub(crate) fn run_bounded_with_stdout(mut command: Command, limit: Duration) -> Output {
    let shown = format!("{command:?}");
    command.stdin(Stdio::null()).stderr(Stdio::piped());
    let mut child = ChildGuard(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}")),
    );
    let (out, out_reader) = match child.0.stdout.take() {
        Some(stdout) => collect(stdout),
        None => collect(std::io::empty()),
    };
    let (err, err_reader) = collect(child.0.stderr.take().unwrap());
    let Some(status) = child.wait_for(limit) else {
        panic!(
            "{shown} did not finish within {limit:?}; stderr so far:\n{}",
            String::from_utf8_lossy(&err.lock().unwrap())
        );
    };
    let _ = out_reader.join();
    let _ = err_reader.join();
    let stdout = std::mem::take(&mut *out.lock().unwrap());
    let stderr = std::mem::take(&mut *err.lock().unwrap());
    Output {
        status,
        stdout,
        stderr,
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
    command.args(args).env("RUST_LOG", "warn");
    let output = run_bounded(command, PATIENCE);
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

/// A Python that can import Twisted: `$TWISTED_PYTHON`, else the workspace's
/// `.venv/bin/python`. `None` if neither can.
pub(crate) fn twisted_python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("TWISTED_PYTHON") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(workspace().join(".venv/bin/python"));
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import twisted"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A Twisted peer written for the benchmark (`bench/peers/twisted/<script>`).
pub(crate) fn twisted_peer(script: &str) -> Option<PathBuf> {
    let path = workspace().join("bench/peers/twisted").join(script);
    path.is_file().then_some(path)
}
