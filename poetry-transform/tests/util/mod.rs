//! What the transform service's integration tests add to `test_support` (which holds
//! the child processes, bounded runs, the running servers and the real peers, written
//! once for the workspace): the server under test, and a longer patience for
//! Twisted's programs.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use test_support::Running;

/// How long a run of a Twisted program may take before the test gives up: generous,
/// since a Python with Twisted can take tens of seconds to start on a loaded machine
/// (the bound only matters when something is wrong).
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// `poetry-transform-server ARGS` on a free port.
pub(crate) fn transform_server(args: &[&str]) -> Running {
    Running::on_free_port(env!("CARGO_BIN_EXE_poetry-transform-server"), args)
}
