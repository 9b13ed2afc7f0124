//! Helpers for the integration tests: the programs as child processes killed on
//! drop, bounded runs, and the real peers (`nc`, Twisted). A missing peer skips the
//! test loudly (`test_support`), except under `CI=true`, where it fails it.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one step may take before the test gives up: generous, since a
/// Python with Twisted can take tens of seconds to start on a loaded machine (the
/// bound only matters when something is wrong).
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// A child process killed (and reaped) when dropped.
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

/// A child's output stream, collected on a thread of its own.
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

/// Runs `command` with `stdin` as its input and its output captured; kills it and
/// panics if it takes longer than `limit`.
pub(crate) fn run_bounded(mut command: Command, stdin: Option<PathBuf>, limit: Duration) -> Output {
    let shown = format!("{command:?}");
    let input = match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("the input file")),
        None => Stdio::null(),
    };
    command
        .stdin(input)
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

/// A server program, running: killed on drop.
#[derive(Debug)]
pub(crate) struct Running {
    child: ChildGuard,
    /// The port it announced.
    pub(crate) port: u16,
    /// Its start line.
    pub(crate) banner: String,
    stderr: Collected,
}

impl Running {
    /// Starts `command` and waits for its start line, which must contain `on port N`.
    ///
    /// # Panics
    ///
    /// If it prints no such line in time.
    pub(crate) fn start(mut command: Command) -> Running {
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
        let Ok(banner) = banner.recv_timeout(PATIENCE) else {
            panic!("{shown} printed no start line; stderr:\n{}", stderr.text());
        };
        let port = port_of(&banner).unwrap_or_else(|| panic!("no port in {banner:?}"));
        Running {
            child,
            port,
            banner,
            stderr,
        }
    }

    /// Stops it with SIGTERM and returns its exit status and stderr.
    pub(crate) fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.0.id() as libc::pid_t;
        // SAFETY: kill only sends a signal to our own child, still unreaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = self
            .child
            .wait_for(PATIENCE)
            .expect("the server stops on SIGTERM");
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
}

/// The number after `on port ` in a start line.
pub(crate) fn port_of(line: &str) -> Option<u16> {
    let rest = &line[line.find("on port ")? + "on port ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `poetry-transform-server ARGS` on a free port.
pub(crate) fn transform_server(args: &[&str]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_poetry-transform-server"));
    command
        .args(["--port", "0"])
        .args(args)
        .env("RUST_LOG", "warn");
    Running::start(command)
}

/// `nc`, if installed (else skipped, loudly; a failure under `CI=true`).
pub(crate) fn nc() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("nc"))
        .find(|candidate| candidate.is_file());
    test_support::peer_or_skip("nc", found, "apt-get install netcat-openbsd")
}

/// A Python that can import Twisted: `$TWISTED_PYTHON`, else the workspace's `.venv`
/// (else skipped, loudly; a failure under `CI=true`).
pub(crate) fn twisted_python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("TWISTED_PYTHON") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(workspace().join(".venv/bin/python"));
    let found = candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import twisted"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    test_support::peer_or_skip(
        "Twisted",
        found,
        "python3 -m venv .venv && .venv/bin/pip install -r bench/peers/twisted/requirements.txt",
    )
}

/// A Twisted peer script of `bench/peers/twisted`.
pub(crate) fn twisted_peer(script: &str) -> PathBuf {
    let path = workspace().join("bench/peers/twisted").join(script);
    assert!(
        path.is_file(),
        "{} is part of the repository",
        path.display()
    );
    path
}

/// A file of its own for one test, removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchFile(pub(crate) PathBuf);

impl ScratchFile {
    /// Writes `bytes` to `<tmp>/poetry-transform-tests-<pid>-<name>`.
    pub(crate) fn new(name: &str, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "poetry-transform-tests-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, bytes).expect("a scratch file");
        ScratchFile(path)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
