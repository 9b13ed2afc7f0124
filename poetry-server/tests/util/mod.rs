//! Helpers for the poetry server's integration tests: the shared poems, the server
//! binary as a child process that is killed on drop, a plain blocking client, and the
//! real peers (`nc`, Twisted) when they are installed.
//!
//! Every wait here has a deadline, and every child process is killed when its guard is
//! dropped, so a failing test never leaves a server behind or hangs the suite.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one step (a start, a download, a child's exit) may take before the
/// test gives up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The `poetry-server` binary under test.
pub(crate) fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_poetry-server")
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

/// One shared poem's path and bytes.
pub(crate) fn shared_poem(name: &str) -> (PathBuf, Vec<u8>) {
    let path = poetry_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, bytes)
}

/// Every shared poem, sorted by name: `(path, bytes)`.
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

/// A directory of its own for one test, removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<tmp>/poetry-server-tests-<pid>-<name>`.
    pub(crate) fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("poetry-server-tests-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        ScratchDir(path)
    }

    /// Writes `bytes` to `name` in the directory and returns its path.
    pub(crate) fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("a scratch file");
        path
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

/// Collects a child's output stream on a thread of its own, so the child never blocks
/// on a full pipe.
#[derive(Debug, Clone, Default)]
pub(crate) struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    pub(crate) fn spawn(mut from: impl Read + Send + 'static) -> (Self, thread::JoinHandle<()>) {
        let collected = Collected::default();
        let sink = collected.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.0.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        });
        (collected, reader)
    }

    /// What has arrived so far, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `command` to completion with its output captured; kills it and panics if it
/// takes longer than `limit`.
pub(crate) fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let shown = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}")),
    );
    let (out, out_reader) = Collected::spawn(child.0.stdout.take().unwrap());
    let (err, err_reader) = Collected::spawn(child.0.stderr.take().unwrap());
    let Some(status) = child.wait_for(limit) else {
        panic!(
            "{shown} did not finish within {limit:?}; stderr so far:\n{}",
            err.text()
        );
    };
    let _ = out_reader.join();
    let _ = err_reader.join();
    let stdout = std::mem::take(&mut *out.0.lock().unwrap());
    let stderr = std::mem::take(&mut *err.0.lock().unwrap());
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The server binary, running: killed on drop.
#[derive(Debug)]
pub(crate) struct Server {
    child: ChildGuard,
    /// The port it announced.
    pub(crate) port: u16,
    /// Its start line (`Serving <name> on port <N>.`).
    pub(crate) banner: String,
    stderr: Collected,
}

impl Server {
    /// Starts `poetry-server ARGS` (with `--port 0` unless ARGS name a port) and waits
    /// for its start line.
    ///
    /// # Panics
    ///
    /// If it does not announce a port in time.
    pub(crate) fn start(args: &[&str]) -> Server {
        let mut command = Command::new(server_binary());
        if !args.contains(&"--port") {
            command.args(["--port", "0"]);
        }
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(command.spawn().expect("poetry-server starts"));
        let (stderr, _) = Collected::spawn(child.0.stderr.take().unwrap());
        let stdout = child.0.stdout.take().unwrap();
        let (lines, banner) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let banner = match banner.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => panic!(
                "poetry-server {args:?} printed no start line; stderr:\n{}",
                stderr.text()
            ),
        };
        let port = parse_banner(&banner)
            .unwrap_or_else(|| panic!("not a start line: {banner:?}"))
            .1;
        Server {
            child,
            port,
            banner,
            stderr,
        }
    }

    /// Stops the server with SIGTERM (it stops its reactor cleanly) and returns its
    /// exit status and everything it wrote on stderr.
    pub(crate) fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.0.id() as libc::pid_t;
        // SAFETY: kill only sends a signal to our own child, still unreaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = self
            .child
            .wait_for(PATIENCE)
            .expect("poetry-server stops on SIGTERM");
        // Let the reader thread catch the last line.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.stderr.text().contains("stopped") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        (status, self.stderr.text())
    }

    /// What it has written on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }
}

/// Splits `Serving <name> on port <N>.` into name and port.
pub(crate) fn parse_banner(line: &str) -> Option<(&str, u16)> {
    let rest = line.strip_prefix("Serving ")?.strip_suffix('.')?;
    let (name, port) = rest.rsplit_once(" on port ")?;
    Some((name, port.parse().ok()?))
}

/// Connects to the server on loopback `port`, sends nothing, and reads until it
/// closes: the whole wire protocol from the client's side. Gives up (with an error)
/// after [`PATIENCE`] in all.
pub(crate) fn fetch(port: u16) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + PATIENCE;
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), PATIENCE)?;
    let mut poem = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no end of poem after {PATIENCE:?} ({} bytes)", poem.len()),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf)? {
            0 => break,
            n => poem.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(poem)
}

/// `nc`, if installed.
pub(crate) fn nc() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nc"))
        .find(|candidate| candidate.is_file())
}

/// A Python that can import Twisted: `$TWISTED_PYTHON`, else the workspace's
/// `.venv/bin/python`. `None` (after printing why) if neither can.
pub(crate) fn twisted_python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("TWISTED_PYTHON") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(workspace().join(".venv/bin/python"));
    for python in candidates {
        let works = Command::new(&python)
            .args(["-c", "import twisted"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Some(python);
        }
    }
    None
}

/// The Twisted peers written for the benchmark (`bench/peers/twisted`).
pub(crate) fn twisted_peer(script: &str) -> Option<PathBuf> {
    let path = workspace().join("bench/peers/twisted").join(script);
    path.is_file().then_some(path)
}
