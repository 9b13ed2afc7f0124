//! What the transform service's integration tests add to `test_support` (which holds
//! the child processes, bounded runs, the running servers and the real peers, written
//! once for the workspace): the server under test, and a longer patience for
//! Twisted's programs.

// Each test file uses its own subset of these helpers (and of those re-exported).
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::process::{Command, Output};
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
