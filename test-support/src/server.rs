//! Our programs as servers under test: started on a free port, read line by line,
//! stopped with SIGTERM; and scratch files that clean up after themselves.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::net::parse_port;
use crate::process::{ChildGuard, Collected, PATIENCE};

/// A server program, running: killed on drop.
#[derive(Debug)]
pub struct Running {
    child: ChildGuard,
    /// The port it announced.
    pub port: u16,
    /// Its start line.
    pub banner: String,
    stderr: Collected,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `command` (stdin empty, stdout and stderr captured) and waits at most
    /// [`PATIENCE`] for its start line, which must contain `on port N`.
    ///
    /// # Panics
    ///
    /// If it cannot start, or prints no such line in time.
    pub fn start(mut command: Command) -> Running {
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
        let (stderr, _) = Collected::spawn(child.0.stderr.take().expect("stderr was piped"));
        let stdout = child.0.stdout.take().expect("stdout was piped");
        let (lines, lines_in) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let Ok(banner) = lines_in.recv_timeout(PATIENCE) else {
            panic!("{shown} printed no start line; stderr:\n{}", stderr.text());
        };
        let port = parse_port(&banner).unwrap_or_else(|| panic!("no port in {banner:?}"));
        Running {
            child,
            port,
            banner,
            stderr,
            lines: lines_in,
        }
    }

    /// Starts the program at `exe` with `--port 0` and `args`, logging warnings only
    /// (`RUST_LOG=warn`): how every one of our servers is tested.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn on_free_port(exe: &str, args: &[&str]) -> Running {
        let mut command = Command::new(exe);
        command
            .args(["--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn");
        Running::start(command)
    }

    /// Stops it with SIGTERM and returns its exit status and stderr (waiting up to
    /// two seconds for the line that says it `stopped`).
    ///
    /// # Panics
    ///
    /// If it is still running [`PATIENCE`] after the signal.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let pid = libc::pid_t::try_from(self.child.0.id()).expect("a pid fits pid_t");
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

    /// Its next line on stdout.
    ///
    /// # Panics
    ///
    /// If none comes within [`PATIENCE`].
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no next line; stderr:\n{}", self.stderr.text()))
    }

    /// What it has written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Whether it is still running.
    ///
    /// # Panics
    ///
    /// If its status cannot be read.
    pub fn is_running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }
}

/// A file of its own for one test, removed on drop.
#[derive(Debug)]
pub struct ScratchFile(pub PathBuf);

impl ScratchFile {
    /// Writes `bytes` to `<tmp>/test-support-<pid>-<name>` (the pid keeps test
    /// binaries running at once apart; `name` keeps the tests of one apart).
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("test-support-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("a scratch file");
        ScratchFile(path)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
