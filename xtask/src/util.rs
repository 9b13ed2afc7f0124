//! Small helpers shared by the tasks: the workspace root, running commands, and
//! child processes that are always cleaned up.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::TaskError;

/// The workspace root (the parent of this crate).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// The `cargo` that runs us.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs `command` to completion, echoing it first.
pub(crate) fn run(what: &str, mut command: Command) -> Result<(), TaskError> {
    eprintln!("xtask: {what}");
    let status = command.status().map_err(|e| TaskError::Spawn {
        what: what.to_owned(),
        source: e,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(TaskError::Failed {
            what: what.to_owned(),
            status: status.code(),
        })
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) and reaped when dropped,
/// whatever happens to the task that started it.
#[derive(Debug)]
pub(crate) struct Guarded {
    pub(crate) child: Child,
    pub(crate) name: String,
}

impl Guarded {
    /// Starts `command` with stdout piped, waits (at most `within`) for a line
    /// containing `on port N`, and returns the process and N.
    pub(crate) fn start_server(
        name: &str,
        command: Command,
        within: Duration,
    ) -> Result<(Guarded, u16), TaskError> {
        Guarded::start_server_echoing(name, command, within, false)
    }

    /// As [`start_server`](Self::start_server); with `echo`, every later line the
    /// process prints is shown on our stderr as `[name] line`.
    pub(crate) fn start_server_echoing(
        name: &str,
        mut command: Command,
        within: Duration,
        echo: bool,
    ) -> Result<(Guarded, u16), TaskError> {
        command.stdout(Stdio::piped()).stdin(Stdio::null());
        let child = command.spawn().map_err(|e| TaskError::Spawn {
            what: name.to_owned(),
            source: e,
        })?;
        let mut guarded = Guarded {
            child,
            name: name.to_owned(),
        };
        let stdout = guarded.child.stdout.take().expect("stdout was piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        let shown = name.to_owned();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for line in lines.map_while(Result::ok) {
                if echo {
                    eprintln!("[{shown}] {line}");
                }
            }
        });
        let line = receiver
            .recv_timeout(within)
            .map_err(|_| TaskError::NoPort(name.to_owned()))?;
        let port = parse_port(&line).ok_or_else(|| TaskError::NoPort(name.to_owned()))?;
        Ok((guarded, port))
    }

    /// Asks the process to stop and waits for it, at most `within`.
    pub(crate) fn stop(&mut self, within: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "xtask: {} did not stop within {within:?}; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// The number after `on port ` in a server's first line.
pub(crate) fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("on port ")? + "on port ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// A loopback port nothing listens on (bound, then released).
pub(crate) fn dead_port() -> Result<u16, TaskError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(TaskError::Io)?;
    let port = listener.local_addr().map_err(TaskError::Io)?.port();
    drop(listener);
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_port_in_a_server_line() {
        assert_eq!(
            parse_port("Serving lighthouse.txt on port 10000."),
            Some(10000)
        );
        assert_eq!(parse_port("Serving echo on port 7"), Some(7));
        assert_eq!(parse_port("no port here"), None);
    }
}
