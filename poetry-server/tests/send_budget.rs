//! The kernel-memory budget of the send buffers (`--send-buffer auto`, the default):
//! a bulk download keeps the kernel's autotuning while one of the budget's places is
//! free, every other bulk connection gets the bound, a connection that ends gives its
//! place back, and a poem that fits in a bounded queue takes no place at all.
//!
//! In-process, on loopback: the server's sockets are this process's own descriptors,
//! so their `SO_SNDBUF` is read directly. The clients never read, with 4 KiB receive
//! buffers (a few hundred KiB of kernel memory in all); every wait has a deadline.

mod fault_util;
mod util;

use std::net::TcpStream;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use fault_util::connect_small;
use poetry_server::sockopt::SendBudget;
use poetry_server::{serve, Poem, PoetryFactory, ServerOptions};
use protocol::Shared;
use reactor::{ManualClock, Reactor};
use socket2::SockRef;

/// The server's default cap, or more on a machine whose TCP memory leaves that
/// many connections unbounded: the first cap the budget bounds.
fn max_connections() -> usize {
    let mut max = 4096;
    while SendBudget::of_this_machine(max).bounded.is_none() {
        max *= 4;
    }
    max
}

/// A client with a 4 KiB receive buffer that never reads.
fn connect_never_reading(port: u16) -> TcpStream {
    connect_small(port, 4096)
}

/// `SO_SNDBUF` of every connected socket of this process whose local port is `port`:
/// the server's side of its connections.
fn server_send_buffers(port: u16) -> Vec<usize> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Some(fd) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor is open for the length of this loop's body (the
        // reactor does not run meanwhile); a descriptor that is not a socket fails the
        // calls below, which only read.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        if local.map(|a| a.port()) != Some(port) || socket.peer_addr().is_err() {
            continue;
        }
        sizes.push(socket.send_buffer_size().unwrap());
    }
    sizes
}

/// Serves `poem` with the default budget for [`max_connections`], a piece every
/// `delay` (zero: fast mode).
fn start(poem: &[u8], delay: Duration) -> (Reactor, u16, Shared<PoetryFactory>) {
    let mut reactor = Reactor::with_clock(ManualClock::new()).expect("reactor");
    let options = ServerOptions {
        delay,
        idle_timeout: None,
        max_connections: max_connections(),
        ..ServerOptions::default()
    };
    let (port, factory) =
        serve(&mut reactor, Poem::from_bytes("bulk", poem), options).expect("serve");
    let port = port.get_host().port().expect("a TCP port");
    (reactor, port, factory)
}

/// Runs the reactor until `done` holds of the factory.
fn run_until(
    reactor: &mut Reactor,
    factory: &Shared<PoetryFactory>,
    done: impl Fn(&PoetryFactory) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&factory.borrow()) {
        assert!(Instant::now() < deadline, "the server never got there");
        reactor
            .iterate(Some(Duration::from_millis(5)))
            .expect("iterate");
    }
}

#[test]
fn bulk_downloads_take_the_autotuned_places_then_the_bound() {
    let budget = SendBudget::of_this_machine(max_connections());
    let bounded = budget.bounded.expect("a bounded budget");
    let places = budget.autotuned;
    let poem = vec![7u8; 4 * bounded + 128 * 1024];
    assert!(budget.could_overflow(poem.len() as u64));
    let (mut reactor, port, factory) = start(&poem, Duration::ZERO);
    assert_eq!(factory.borrow().send_budget(), budget);

    let extra = 3;
    let mut clients: Vec<TcpStream> = Vec::new();
    for n in 1..=places + extra {
        clients.push(connect_never_reading(port));
        run_until(&mut reactor, &factory, |f| f.stats().accepted == n as u64);
    }
    assert_eq!(factory.borrow().autotuned_connections(), places);
    let sizes = server_send_buffers(port);
    assert_eq!(sizes.len(), places + extra, "server sockets: {sizes:?}");
    // The kernel reports twice what was set.
    let at_bound = sizes.iter().filter(|&&s| s == 2 * bounded).count();
    assert_eq!(at_bound, extra, "{places} places, sizes {sizes:?}");

    if places > 0 {
        // The first client held a place: its end gives it back, and the next bulk
        // connection takes it.
        drop(clients.remove(0));
        run_until(&mut reactor, &factory, |f| {
            f.autotuned_connections() == places - 1
        });
        clients.push(connect_never_reading(port));
        run_until(&mut reactor, &factory, |f| {
            f.autotuned_connections() == places
        });
        let sizes = server_send_buffers(port);
        assert_eq!(sizes.iter().filter(|&&s| s == 2 * bounded).count(), extra);
    }
    // Every end gives its place back.
    drop(clients);
    run_until(&mut reactor, &factory, |f| f.open_connections() == 0);
    assert_eq!(factory.borrow().autotuned_connections(), 0);
}

#[test]
fn a_poem_that_fits_in_a_bounded_queue_takes_no_place() {
    let budget = SendBudget::of_this_machine(max_connections());
    let poem = vec![7u8; 10 * 1024];
    assert!(!budget.could_overflow(poem.len() as u64));
    let (mut reactor, port, factory) = start(&poem, Duration::ZERO);
    let clients: Vec<TcpStream> = (0..4).map(|_| connect_never_reading(port)).collect();
    run_until(&mut reactor, &factory, |f| f.stats().accepted == 4);
    assert_eq!(factory.borrow().autotuned_connections(), 0);
    drop(clients);
}

#[test]
fn slow_mode_takes_no_place_and_bounds_bulk_poems() {
    let budget = SendBudget::of_this_machine(max_connections());
    let bounded = budget.bounded.expect("a bounded budget");
    let poem = vec![7u8; 4 * bounded + 128 * 1024];
    // One piece now, the next a second later on a clock that never moves.
    let (mut reactor, port, factory) = start(&poem, Duration::from_secs(1));
    let clients: Vec<TcpStream> = (0..3).map(|_| connect_never_reading(port)).collect();
    run_until(&mut reactor, &factory, |f| f.stats().accepted == 3);
    assert_eq!(factory.borrow().autotuned_connections(), 0);
    let sizes = server_send_buffers(port);
    assert_eq!(
        sizes,
        [2 * bounded; 3],
        "every slow connection carries the bound"
    );
    drop(clients);
}
