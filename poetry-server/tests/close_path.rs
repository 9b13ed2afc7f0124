//! The close path after a whole poem (issue 16): once the poem and its end are in the
//! kernel, a close from any side of the server — the reactor stopping, as on SIGTERM —
//! must let the kernel deliver them. The client's window is kept closed so that the
//! tail and the FIN wait in the server's kernel when the reactor stops: a socket still
//! lingering {on, 0} then resets, and the client sees a reset where a whole poem was.
//!
//! In-process, on loopback, with a manual clock that never moves (the lingering
//! connection's timer never fires); every loop is bounded.

mod fault_util;
mod util;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use fault_util::{connect_small, read_to_end_or_reset};
use poetry_server::{serve, Poem, SendBuffer, ServerOptions};
use reactor::{ManualClock, Reactor};

/// Bytes waiting to be read on `stream` (`FIONREAD`).
fn unread_bytes(stream: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer given.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::FIONREAD,
            &mut n,
        )
    };
    assert_eq!(rc, 0, "ioctl FIONREAD");
    usize::try_from(n).unwrap_or(0)
}

#[test]
fn a_stop_while_lingering_lets_the_kernel_deliver_the_whole_poem() {
    let poem: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut reactor = Reactor::with_clock(ManualClock::new()).expect("reactor");
    let options = ServerOptions {
        delay: Duration::ZERO,
        idle_timeout: None,
        // Room in the kernel for the whole poem: it is handed over, and its end with
        // it, while the client reads nothing.
        send_buffer: SendBuffer::Bytes(1024 * 1024),
        ..ServerOptions::default()
    };
    let (port, factory) =
        serve(&mut reactor, Poem::from_bytes("lingering", &poem), options).expect("serve");
    let port = port.get_host().port().expect("a TCP port");
    // A small receive buffer: most of the poem, and the FIN, wait in the server's kernel.
    let mut client = connect_small(port, 8 * 1024);
    let deadline = Instant::now() + Duration::from_secs(10);
    while factory.borrow().lingering_connections() == 0 {
        assert!(Instant::now() < deadline, "the poem never ended");
        reactor
            .iterate(Some(Duration::from_millis(10)))
            .expect("iterate");
    }
    let unread = unread_bytes(&client);
    assert!(
        unread < poem.len(),
        "the client's buffer took the whole poem: the test needs its tail in the server's kernel"
    );
    // What SIGTERM does: every connection is closed with the reactor.
    reactor.disconnect_all();
    drop(reactor);
    let (got, reset) = read_to_end_or_reset(&mut client).expect("reading the poem");
    assert!(
        !reset,
        "a whole poem was reset after {} of {} bytes",
        got.len(),
        poem.len()
    );
    assert_eq!(got.len(), poem.len());
    assert!(got == poem, "the poem arrived changed");
    let stats = factory.borrow().stats();
    assert_eq!((stats.completed, stats.interrupted), (1, 0));
}
