//! The callback contract: `connection_lost` exactly once whatever ended the
//! connection, addresses still answered inside it, and a panicking handler closing
//! only its own connection.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use reactor::{ManualClock, Reactor};
use transport::{Address, DisconnectReason, Handler, Transport};
use util::{pattern, Ended, Probe};

/// How a test ends the connection.
#[derive(Debug, Clone, Copy)]
enum Ending {
    OurClose,
    OurAbort,
    PeerClose,
    PeerReset,
    PanicInDataReceived,
    BufferOverflow,
    CloseTimeout,
    ReactorShutdown,
}

impl Ending {
    fn expected(self) -> Ended {
        match self {
            Ending::OurClose | Ending::PeerClose => Ended::Done,
            Ending::OurAbort => Ended::Aborted,
            Ending::PeerReset => Ended::Lost,
            Ending::PanicInDataReceived => Ended::Panicked,
            Ending::BufferOverflow => Ended::BufferOverflow,
            Ending::CloseTimeout => Ended::TimedOut,
            Ending::ReactorShutdown => Ended::Shutdown,
        }
    }
}

/// Runs one connection to its end by `ending`; returns its probe's record and the
/// addresses of our end and the peer's, as the sockets give them.
fn end_by(ending: Ending) -> (util::Record, Address, Address) {
    let (ours, peer) = util::tcp_pair();
    util::bound_peer(&peer);
    let host = Address::Tcp(ours.local_addr().unwrap());
    let remote = Address::Tcp(ours.peer_addr().unwrap());
    let (probe, record) = Probe::new();
    let probe = match ending {
        Ending::OurClose => probe.on_made(|t| t.lose_connection()),
        Ending::OurAbort => probe.on_made(|t| t.abort_connection()),
        Ending::PanicInDataReceived => probe.on_data(|_, _| panic!("boom in data_received")),
        Ending::BufferOverflow => probe.on_made(|t| {
            t.set_max_write_buffer(Some(1 << 20));
            for offset in (0..16u64 << 20).step_by(1 << 20) {
                t.write(pattern(offset, 1 << 20));
            }
        }),
        Ending::CloseTimeout => probe.on_made(|t| {
            t.set_close_timeout(Some(Duration::from_secs(10)));
            for offset in (0..16u64 << 20).step_by(1 << 20) {
                t.write(pattern(offset, 1 << 20));
            }
            t.lose_connection();
        }),
        Ending::PeerClose | Ending::PeerReset | Ending::ReactorShutdown => probe,
    };
    let clock = ManualClock::new();
    let mut reactor = match ending {
        Ending::CloseTimeout => Reactor::with_clock(clock.clone()).unwrap(),
        _ => Reactor::new().unwrap(),
    };
    util::start(&mut reactor, Box::new(util::into_mio(ours)), probe).unwrap();
    let mut peer = Some(peer);
    match ending {
        Ending::PeerClose => drop(peer.take()),
        Ending::PeerReset => {
            let peer = peer.take().unwrap();
            util::Peer::reset_on_close(&peer).unwrap();
            drop(peer);
        }
        Ending::PanicInDataReceived => peer.as_mut().unwrap().write_all(b"boom").unwrap(),
        Ending::CloseTimeout => {
            for _ in 0..3 {
                reactor.iterate(Some(Duration::ZERO)).unwrap();
            }
            assert!(
                !record.borrow().is_lost(),
                "closed before the grace period ended"
            );
            clock.advance(Duration::from_secs(10));
        }
        _ => {}
    }
    if let Ending::ReactorShutdown = ending {
        reactor.call_soon(|r| r.stop());
        util::run_with_watchdog(&mut reactor, util::LIMIT);
    } else {
        util::turn_until(&mut reactor, |_| record.borrow().is_lost());
        // Nothing more happens to a connection that is over.
        for _ in 0..5 {
            reactor.iterate(Some(Duration::ZERO)).unwrap();
        }
        assert_eq!(
            reactor.descriptor_count(),
            0,
            "{ending:?}: still registered"
        );
    }
    drop(reactor);
    let record = std::rc::Rc::try_unwrap(record)
        .expect("the connection is gone")
        .into_inner();
    (record, host, remote)
}

#[test]
fn connection_lost_exactly_once_with_addresses_whatever_ended_it() {
    for ending in [
        Ending::OurClose,
        Ending::OurAbort,
        Ending::PeerClose,
        Ending::PeerReset,
        Ending::PanicInDataReceived,
        Ending::BufferOverflow,
        Ending::CloseTimeout,
        Ending::ReactorShutdown,
    ] {
        let (record, host, peer) = end_by(ending);
        assert_eq!(record.made, 1, "{ending:?}");
        assert_eq!(
            record.only_reason(),
            ending.expected(),
            "{ending:?}: {:?}",
            record.lost_text
        );
        assert_eq!(record.calls.first(), Some(&"connection_made"), "{ending:?}");
        assert_eq!(record.calls.last(), Some(&"connection_lost"), "{ending:?}");
        let expected = Some((host, peer));
        assert_eq!(record.addresses_made, expected, "{ending:?}");
        assert_eq!(
            record.addresses_lost, expected,
            "{ending:?}: addresses inside connection_lost"
        );
        if let Ending::PanicInDataReceived = ending {
            let text = record.lost_text.unwrap();
            assert!(text.contains("boom in data_received"), "{text}");
        }
    }
}

#[test]
fn a_panicking_handler_closes_only_its_own_connection() {
    let mut reactor = Reactor::new().unwrap();

    // Panics in connection_made.
    let (ours_a, mut peer_a) = util::tcp_pair();
    util::bound_peer(&peer_a);
    let (probe_a, record_a) = Probe::new();
    let probe_a = probe_a.on_made(|_| panic!("boom in connection_made"));
    util::start(&mut reactor, Box::new(util::into_mio(ours_a)), probe_a).unwrap();
    assert_eq!(record_a.borrow().only_reason(), Ended::Panicked);

    // Panics in data_received.
    let (ours_b, mut peer_b) = util::tcp_pair();
    util::bound_peer(&peer_b);
    let (probe_b, record_b) = Probe::new();
    let probe_b = probe_b.on_data(|_, _| panic!("boom in data_received"));
    util::start(&mut reactor, Box::new(util::into_mio(ours_b)), probe_b).unwrap();

    // Echoes, on the same reactor.
    let (ours_c, mut peer_c) = util::tcp_pair();
    util::bound_peer(&peer_c);
    let (probe_c, record_c) = Probe::new();
    let probe_c = probe_c.on_data(|t, data| t.write(data));
    util::start(&mut reactor, Box::new(util::into_mio(ours_c)), probe_c).unwrap();

    peer_b.write_all(b"boom").unwrap();
    peer_c.write_all(b"one").unwrap();
    util::turn_until(&mut reactor, |_| {
        record_b.borrow().is_lost() && record_c.borrow().received == b"one"
    });
    let mut reply = [0u8; 3];
    peer_c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"one");

    peer_c.write_all(b"two").unwrap();
    util::turn_until(&mut reactor, |_| record_c.borrow().received == b"onetwo");
    peer_c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"two", "the other connection keeps working");
    assert!(!record_c.borrow().is_lost());

    for (record, text) in [
        (&record_a, "boom in connection_made"),
        (&record_b, "boom in data_received"),
    ] {
        let record = record.borrow();
        assert_eq!(record.only_reason(), Ended::Panicked);
        assert!(record.lost_text.as_ref().unwrap().contains(text));
    }
    // Their peers see the connections end (with a reset: a panic aborts).
    for peer in [&mut peer_a, &mut peer_b] {
        let mut buf = [0u8; 16];
        match peer.read(&mut buf) {
            Ok(0) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            Ok(n) => panic!("{n} unexpected bytes"),
        }
    }

    drop(peer_c);
    util::turn_until(&mut reactor, |_| record_c.borrow().is_lost());
    assert_eq!(record_c.borrow().only_reason(), Ended::Done);
}

/// Asks for the addresses for the first time inside `connection_lost`.
struct LateAddresses(Rc<RefCell<Option<(Address, Address, Ended)>>>);

impl Handler for LateAddresses {
    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &DisconnectReason) {
        *self.0.borrow_mut() = Some((
            t.get_host().clone(),
            t.get_peer().clone(),
            util::ended(reason),
        ));
    }
}

#[test]
fn addresses_first_asked_after_a_reset_are_still_right() {
    for family in ["127.0.0.1:0", "[::1]:0"] {
        if family.starts_with('[') && !util::ipv6_available() {
            continue;
        }
        let (ours, peer) = util::tcp_pair_on(family.parse().unwrap());
        let host = Address::Tcp(ours.local_addr().unwrap());
        let remote = Address::Tcp(ours.peer_addr().unwrap());
        let seen = Rc::new(RefCell::new(None));
        let mut reactor = Reactor::new().unwrap();
        util::start(
            &mut reactor,
            Box::new(util::into_mio(ours)),
            LateAddresses(seen.clone()),
        )
        .unwrap();
        util::Peer::reset_on_close(&peer).unwrap();
        drop(peer);
        util::turn_until(&mut reactor, |_| seen.borrow().is_some());
        assert_eq!(
            seen.borrow_mut().take(),
            Some((host, remote, Ended::Lost)),
            "{family}"
        );
    }
}
