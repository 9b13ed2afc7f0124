//! What the proxy's integration tests add to `test_support` (which holds the child
//! processes, bounded runs, the running servers and the real peers, written once for
//! the workspace): the proxy under test, an upstream poetry server on a thread, and
//! a longer patience for Twisted's programs.

// Each test file uses its own subset of these helpers (and of those re-exported).
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;
use std::time::Duration;

pub(crate) use test_support::{workspace, Running, ScratchFile};

/// How long a run of a Twisted program may take before the test gives up: generous,
/// since a Python with Twisted can take tens of seconds to start on a loaded machine
/// (the bound only matters when something is wrong).
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// Runs `command` (stdin from the file `stdin` if given), bounded by `limit`.
pub(crate) fn run_bounded(command: Command, stdin: Option<PathBuf>, limit: Duration) -> Output {
    match stdin {
        Some(input) => test_support::run_bounded_from(command, &input, limit),
        None => test_support::run_bounded(command, limit),
    }
}

/// `poetry-proxy ARGS` on a free port.
pub(crate) fn proxy(args: &[&str]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_poetry-proxy"));
    command
        .args(["--port", "0"])
        .args(args)
        .env("RUST_LOG", "warn");
    Running::start(command)
}

/// A poetry server on a thread: each of the next `clients` connections gets `poem`
/// and a clean close, or, with `reset_after`, that many bytes and a reset.
pub(crate) fn upstream(poem: &'static [u8], clients: usize, reset_after: Option<usize>) -> u16 {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..clients {
            let Ok((mut socket, _)) = listener.accept() else {
                return;
            };
            match reset_after {
                None => {
                    let _ = socket.write_all(poem);
                }
                Some(n) => {
                    let _ = socket.write_all(&poem[..n]);
                    test_support::reset(socket);
                }
            }
        }
    });
    port
}

/// `nc`, if installed (else skipped, loudly; a failure under `CI=true`).
pub(crate) fn nc() -> Option<PathBuf> {
    test_support::nc_or_skip()
}

/// A Python that can import Twisted (else skipped, loudly; a failure under
/// `CI=true`).
pub(crate) fn twisted_python() -> Option<PathBuf> {
    test_support::twisted_python_or_skip()
}

/// A Twisted peer script of `bench/peers/twisted`.
pub(crate) fn twisted_peer(script: &str) -> PathBuf {
    test_support::twisted_peer(script)
        .unwrap_or_else(|| panic!("bench/peers/twisted/{script} is part of the repository"))
}
