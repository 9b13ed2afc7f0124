//! Helpers for the poetry server's integration tests: the shared poems, the server
//! binary as a child process that is killed on drop, a plain blocking client, and the
//! real peers (`nc`, Twisted) when they are installed.
//!
//! Every wait here has a deadline, and every child process is killed when its guard is
//! dropped, so a failing test never leaves a server behind or hangs the suite.

// Each test file uses its own subset of these helpers (and of the re-exports).
#![allow(dead_code, unused_imports)]

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Instant;

// What every crate's tests share, written once in test-support (under the names these
// tests have always used).
pub(crate) use test_support::{
    assert_same_bytes, parse_port, poem as shared_poem, poems as shared_poems, pseudo_random,
    reset, run_bounded, twisted_peer, twisted_python, workspace, ChildGuard, Collected, Running,
    PATIENCE,
};

/// The `poetry-server` binary under test.
pub(crate) fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_poetry-server")
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

/// The server binary, running: killed on drop.
#[derive(Debug)]
pub(crate) struct Server {
    running: Running,
    /// The port it announced.
    pub(crate) port: u16,
    /// Its start line (`Serving <name> on port <N>.`).
    pub(crate) banner: String,
}

impl Server {
    /// Starts `poetry-server ARGS` (with `--port 0` unless ARGS name a port) and waits
    /// for its start line.
    ///
    /// # Panics
    ///
    /// If it does not announce a port in time, in the form of a start line.
    pub(crate) fn start(args: &[&str]) -> Server {
        let mut command = Command::new(server_binary());
        if !args.contains(&"--port") {
            command.args(["--port", "0"]);
        }
        command.args(args).env("RUST_LOG", "warn");
        let running = Running::start(command);
        let banner = running.banner.clone();
        assert!(
            parse_banner(&banner).is_some(),
            "not a start line: {banner:?}"
        );
        Server {
            port: running.port,
            banner,
            running,
        }
    }

    /// Stops the server with SIGTERM (it stops its reactor cleanly) and returns its
    /// exit status and everything it wrote on stderr.
    pub(crate) fn stop(self) -> (ExitStatus, String) {
        self.running.stop()
    }

    /// What it has written on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.running.stderr()
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.running.is_running()
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
