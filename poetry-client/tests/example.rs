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
    // A frame is named by its type and its method, wherever in its crate the method
    // is written (`<T as Trait>::m`, `T::m` or `module::<impl Trait for T>::m`).
    let order = [
        (
            "StackProtocol as protocol::protocol::Protocol>",
            "::data_received",
        ),
        (
            "Descriptor for transport::connection::Connection<H>>",
            "::do_read",
        ),
        ("reactor::reactor::", "Reactor>::dispatch"),
        ("reactor::reactor::", "Reactor>::run"),
    ];
    let first_frames = frames(first);
    let mut at = 0;
    for (kind, method) in order {
        let found = first_frames[at..]
            .iter()
            .position(|f| is_frame(f, kind, method))
            .unwrap_or_else(|| panic!("no {kind}{method} after the frames before it in:\n{first}"));
        at += found;
    }
    let lost_frames = frames(lost);
    assert!(
        lost_frames.iter().any(|f| is_frame(
            f,
            "StackProtocol as protocol::protocol::Protocol>",
            "::connection_lost"
        )) && lost_frames
            .iter()
            .any(|f| is_frame(f, "reactor::reactor::", "Reactor>::run")),
        "{lost}"
    );
}

/// The function names of a printed backtrace, innermost first (`  3: name`).
fn frames(stack: &str) -> Vec<&str> {
    stack
        .lines()
        .filter_map(|l| l.trim_start().split_once(": "))
        .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
        .map(|(_, name)| name.trim())
        .collect()
}

/// Whether `frame` is `method` (a suffix, `Type>::m` also matching `Type::m`) of a
/// type named by `kind`.
fn is_frame(frame: &str, kind: &str, method: &str) -> bool {
    let plain = method.replacen(">::", "::", 1);
    frame.contains(kind) && (frame.ends_with(method) || frame.ends_with(&plain))
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
