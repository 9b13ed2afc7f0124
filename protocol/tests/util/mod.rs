//! Helpers shared by the integration tests: bounded reactor loops and a log of
//! protocol events.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use protocol::{Answer, Resolver};
use reactor::Reactor;

/// A resolver that keeps every question and never answers (until the answers are
/// dropped, which fails them): for "while the name is being resolved".
pub(crate) struct Hanging(pub(crate) Rc<RefCell<Vec<Answer>>>);

impl Resolver for Hanging {
    fn resolve(&self, _: &mut Reactor, _: &str, _: u16, answer: Answer) {
        self.0.borrow_mut().push(answer);
    }

    fn resolve_now(&self, _: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
        Err(io::Error::new(io::ErrorKind::TimedOut, "hanging"))
    }
}

/// Longest a real-I/O test waits for anything: a watchdog, never a sleep.
pub(crate) const WATCHDOG: Duration = Duration::from_secs(10);

/// Turns the reactor until `done` says so.
///
/// # Panics
///
/// After [`WATCHDOG`] of real time, naming `what` was awaited.
#[track_caller]
pub(crate) fn turn_until(reactor: &mut Reactor, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < WATCHDOG,
            "gave up after {WATCHDOG:?} waiting for {what}"
        );
        reactor
            .iterate(Some(Duration::from_millis(20)))
            .expect("a reactor turn");
    }
}

/// Turns the reactor for `turns` short turns, for things that must *not* happen.
pub(crate) fn turn_a_while(reactor: &mut Reactor, turns: usize) {
    for _ in 0..turns {
        reactor
            .iterate(Some(Duration::from_millis(5)))
            .expect("a reactor turn");
    }
}

/// An event a test protocol or factory records, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Made,
    Data(Vec<u8>),
    Lost(String),
    Timeout,
}

/// A directory of its own under the system's temporary directory, for Unix sockets.
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("protocol-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}
