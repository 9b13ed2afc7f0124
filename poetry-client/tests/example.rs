//! The `get_poetry_stack` example runs alone and its stacks show who calls whom: the
//! reactor's dispatch, the transport's `do_read`, then the protocol.

mod util;

use std::path::PathBuf;
use std::process::Command;

/// The example's binary, which `cargo test` builds next to the test binaries' own
/// directory (`target/<profile>/examples/`).
fn example_binary() -> Option<PathBuf> {
    let bin = PathBuf::from(util::client_binary());
    let path = bin.parent()?.join("examples").join("get_poetry_stack");
    path.is_file().then_some(path)
}

#[test]
fn get_poetry_stack_prints_the_reactor_under_the_protocol() {
    let Some(example) = example_binary() else {
        println!("skipped: the get_poetry_stack example is not built");
        return;
    };
    let mut command = Command::new(example);
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
