//! Child processes, always bounded and always cleaned up.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one step (a start, a download, a child's exit) may take before a test
/// gives up.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A child process that is killed (and reaped) when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits at most `limit` for the child to exit on its own.
    ///
    /// # Panics
    ///
    /// If its status cannot be read.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
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

/// A child's output stream, read to its end on a thread of its own so the child
/// never blocks on a full pipe.
#[derive(Debug, Clone, Default)]
pub struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    /// Starts reading `from`; join the handle to wait for its end.
    pub fn spawn(mut from: impl Read + Send + 'static) -> (Collected, thread::JoinHandle<()>) {
        let collected = Collected::default();
        let sink = collected.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().extend_from_slice(&buf[..n]),
                }
            }
        });
        (collected, reader)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A reader thread cannot panic while holding it: the data is whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What has arrived so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    /// What has arrived so far, taken out.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }
}

/// Runs `command` to completion with stdin empty and stdout and stderr captured; kills
/// it and panics if it takes longer than `limit`.
///
/// # Panics
///
/// If it cannot start, or outlives `limit`.
pub fn run_bounded(mut command: Command, limit: Duration) -> Output {
    command.stdout(Stdio::piped());
    run_bounded_with_stdout(command, limit)
}

/// As [`run_bounded`], leaving the command's stdout as it was set (a file, `/dev/full`):
/// `Output::stdout` is empty unless it was piped.
///
/// # Panics
///
/// If it cannot start, or outlives `limit`.
pub fn run_bounded_with_stdout(command: Command, limit: Duration) -> Output {
    run_child(command, Stdio::null(), limit)
}

/// As [`run_bounded`], with the file at `input` as the command's stdin.
///
/// # Panics
///
/// If the file cannot be opened, the command cannot start, or it outlives `limit`.
pub fn run_bounded_from(mut command: Command, input: &Path, limit: Duration) -> Output {
    let file = std::fs::File::open(input)
        .unwrap_or_else(|e| panic!("the input file {}: {e}", input.display()));
    command.stdout(Stdio::piped());
    run_child(command, Stdio::from(file), limit)
}

/// Runs `command` with `stdin`, stderr captured (and stdout if piped), bounded by
/// `limit`.
fn run_child(mut command: Command, stdin: Stdio, limit: Duration) -> Output {
    let shown = format!("{command:?}");
    command.stdin(stdin).stderr(Stdio::piped());
    let mut child = ChildGuard(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}")),
    );
    let (out, out_reader) = match child.0.stdout.take() {
        Some(stdout) => Collected::spawn(stdout),
        None => Collected::spawn(std::io::empty()),
    };
    let (err, err_reader) = Collected::spawn(child.0.stderr.take().expect("stderr was piped"));
    let Some(status) = child.wait_for(limit) else {
        panic!(
            "{shown} did not finish within {limit:?}; stderr so far:\n{}",
            err.text()
        );
    };
    let _ = out_reader.join();
    let _ = err_reader.join();
    Output {
        status,
        stdout: out.take(),
        stderr: err.take(),
    }
}

/// Checks how a program refuses bad input: exit status `code`, nothing on stdout, one
/// line on stderr starting `program: `. Returns that line.
///
/// # Panics
///
/// If any of that does not hold.
#[track_caller]
pub fn one_line_error(output: &Output, program: &str, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "printed on stdout; stderr: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with(&format!("{program}: ")), "{stderr:?}");
    stderr
}
