//! What the proxy's integration tests add to `test_support` (which holds the child
//! processes, bounded runs, the running servers and the real peers, written once for
//! the workspace): the proxy under test, an upstream poetry server on a thread, and
//! a longer patience for Twisted's programs.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::thread;
use std::time::Duration;

use test_support::Running;

/// How long a run of a Twisted program may take before the test gives up: generous,
/// since a Python with Twisted can take tens of seconds to start on a loaded machine
/// (the bound only matters when something is wrong).
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// `poetry-proxy ARGS` on a free port.
pub(crate) fn proxy(args: &[&str]) -> Running {
    Running::on_free_port(env!("CARGO_BIN_EXE_poetry-proxy"), args)
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
