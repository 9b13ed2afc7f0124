//! SIGTERM and SIGINT stop a reactor that called `handle_signals`, cleanly: shutdown
//! triggers run and `run` returns `Ok`.
//!
//! Each case runs in a child process (this very test binary, re-executed to run only
//! `child_runs_a_reactor_until_signalled`), so the test process's own signal
//! dispositions are never touched.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use reactor::Reactor;

/// Set in the child's environment: the child test does nothing without it.
const CHILD_ENV: &str = "REACTOR_SIGNAL_TEST_CHILD";
const CHILD_TEST: &str = "child_runs_a_reactor_until_signalled";
const LIMIT: Duration = Duration::from_secs(20);

/// The child's side. Run directly (without the environment variable) it passes at once.
#[test]
fn child_runs_a_reactor_until_signalled() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut reactor = Reactor::new().unwrap();
    reactor.handle_signals().unwrap();
    reactor.add_shutdown_trigger(|_| println!("shutdown trigger ran"));
    reactor.call_when_running(|_| println!("ready"));
    // Nothing to do but wait: only a signal can end this.
    reactor.run().unwrap();
    println!("run returned");
}

/// Starts the child, waits for "ready", sends `signal`, and checks that the child
/// shut down cleanly and exited 0, all within [`LIMIT`].
fn check_signal_stops_the_reactor(signal: libc::c_int) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-execute the test binary");
    let stdout = child.stdout.take().unwrap();
    let (line_tx, lines_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + LIMIT;
    let mut lines: Vec<String> = Vec::new();
    let next_line = |lines: &mut Vec<String>| -> Result<(), mpsc::RecvTimeoutError> {
        let line = lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        lines.push(line);
        Ok(())
    };
    // The harness prints "test NAME ... " without a newline before the child's output.
    while !lines.last().is_some_and(|l| l.ends_with("ready")) {
        if let Err(e) = next_line(&mut lines) {
            let _ = child.kill();
            panic!("the child never said ready ({e:?}); its output: {lines:?}");
        }
    }

    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) only sends a signal, to our own child, which has not been waited
    // for yet (so the pid cannot have been reused).
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");

    loop {
        match next_line(&mut lines) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // end of its output
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("the child did not exit after signal {signal}; its output: {lines:?}");
            }
        }
    }
    reader.join().unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "child exit status {status}; output: {lines:?}"
    );
    let ready = lines.iter().position(|l| l.ends_with("ready")).unwrap();
    let after: Vec<&str> = lines[ready + 1..]
        .iter()
        .map(String::as_str)
        .filter(|l| *l == "shutdown trigger ran" || *l == "run returned")
        .collect();
    assert_eq!(
        after,
        ["shutdown trigger ran", "run returned"],
        "output: {lines:?}"
    );
}

#[test]
fn sigterm_stops_the_reactor_cleanly() {
    check_signal_stops_the_reactor(libc::SIGTERM);
}

#[test]
fn sigint_stops_the_reactor_cleanly() {
    check_signal_stops_the_reactor(libc::SIGINT);
}
