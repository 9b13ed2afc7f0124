//! The examples, run as a reader runs them: `get_poetry_stack` alone, its stacks
//! showing who calls whom (the reactor's dispatch, the transport's `do_read`, then the
//! protocol); `get_poetry_simple` (client 2.1) against live servers, printing the
//! poems alone in the order they finished.
//!
//! Each test builds its example itself ([`util::build_example`]), so it always runs.

mod util;

use std::process::Command;
use std::time::Duration;

use util::{assert_same_bytes, build_example, dead_port, fast, poem_bytes, slow, ServerThread};

#[test]
fn get_poetry_stack_prints_the_reactor_under_the_protocol() {
    let mut command = Command::new(build_example("get_poetry_stack"));
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    let output = util::run_bounded(command, util::PATIENCE);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let (first, lost) = stdout
        .split_once("The stack at connection_lost")
        .unwrap_or_else(|| panic!("no connection_lost stack in:\n{stdout}"));
    let first = first
        .split_once("The stack at the first data_received")
        .unwrap_or_else(|| panic!("no data_received stack in:\n{stdout}"))
        .1;
    if !cfg!(debug_assertions) {
        // Optimised builds inline frames away: only the headings are certain.
        return;
    }
    // Innermost first: our protocol, the transport's read, the reactor's dispatch, run.
    let order = [
        "StackProtocol as protocol::protocol::Protocol>::data_received",
        "as reactor::descriptor::Descriptor>::do_read",
        "reactor::reactor::Reactor::dispatch",
        "reactor::reactor::Reactor::run",
    ];
    let mut at = 0;
    for frame in order {
        let found = first[at..]
            .find(frame)
            .unwrap_or_else(|| panic!("no {frame:?} after the frames before it in:\n{first}"));
        at += found;
    }
    assert!(
        lost.contains("StackProtocol as protocol::protocol::Protocol>::connection_lost")
            && lost.contains("reactor::reactor::Reactor::run"),
        "{lost}"
    );
}

#[test]
fn get_poetry_simple_prints_the_poems_alone_in_completion_order() {
    // The first address is the slowest: its poem must come last.
    let (slow_poem, fast_poem) = (poem_bytes("haiku.txt"), poem_bytes("ete.txt"));
    let slow_server = ServerThread::start(&slow_poem, slow(40, Duration::from_millis(40)));
    let fast_server = ServerThread::start(&fast_poem, fast());
    let mut command = Command::new(build_example("get_poetry_simple"));
    command.args([slow_server.address(), fast_server.address()]);
    let output = util::run_bounded(command, util::PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "poems only, nothing else: {stderr}");
    let want = [fast_poem.as_slice(), b"\n", &slow_poem, b"\n"].concat();
    assert_same_bytes(&output.stdout, &want, "the poems, fastest first");

    // A dead address: the tutorial's failure line, the other poem still printed.
    let dead = dead_port();
    let mut command = Command::new(build_example("get_poetry_simple"));
    command.args([dead.to_string(), fast_server.address()]);
    let output = util::run_bounded(command, util::PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("Failed to connect to: 127.0.0.1:{dead}")),
        "{stderr}"
    );
    assert_same_bytes(
        &output.stdout,
        &[fast_poem.as_slice(), b"\n"].concat(),
        "one poem",
    );
}
