//! Flow control on the reading side, the close grace period, and the TCP options.

mod util;

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use reactor::{ManualClock, Reactor};
use transport::Connection;
use util::{drain_pattern, pattern, Ended, Probe};

#[test]
fn pause_reading_holds_data_and_eof_until_resumed() {
    for (kind, ours, mut peer) in util::pairs() {
        let (probe, record) = Probe::new();
        let probe = probe.on_made(|t| t.pause_reading());
        let mut reactor = Reactor::new().unwrap();
        let id = util::start(&mut reactor, ours, probe).unwrap();
        // On loopback and socket pairs the bytes are in our receive queue once
        // write_all returns: a few turns would deliver them if reading were on.
        peer.write_all(b"held back").unwrap();
        peer.shut_write().unwrap();
        for _ in 0..5 {
            reactor.iterate(Some(Duration::ZERO)).unwrap();
        }
        assert!(
            record.borrow().received.is_empty(),
            "{kind}: read while paused"
        );
        assert!(
            !record.borrow().is_lost(),
            "{kind}: end of file read while paused"
        );

        Connection::<Probe>::with_handler(&mut reactor, id, |_, t| t.resume_reading()).unwrap();
        util::turn_until(&mut reactor, |_| record.borrow().is_lost());
        let record = record.borrow();
        assert_eq!(record.received, b"held back", "{kind}");
        assert_eq!(record.read_lost, 1, "{kind}");
        assert_eq!(record.only_reason(), Ended::Done, "{kind}");
    }
}

#[test]
fn pausing_inside_data_received_stops_the_next_read() {
    let (ours, mut peer) = util::tcp_pair();
    util::bound_peer(&peer);
    let chunks = Rc::new(RefCell::new(0));
    let seen = chunks.clone();
    let (probe, record) = Probe::new();
    let probe = probe.on_data(move |t, _| {
        *seen.borrow_mut() += 1;
        t.pause_reading();
    });
    let mut reactor = Reactor::new().unwrap();
    let id = util::start(&mut reactor, Box::new(util::into_mio(ours)), probe).unwrap();
    // More than one read's worth, so a second data_received would follow at once.
    peer.write_all(pattern(0, 4 * transport::READ_CHUNK))
        .unwrap();
    util::turn_until(&mut reactor, |_| *chunks.borrow() == 1);
    for _ in 0..5 {
        reactor.iterate(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(*chunks.borrow(), 1, "data_received after pause_reading");
    // Resume a chunk at a time until everything is in.
    util::turn_until(&mut reactor, |r| {
        Connection::<Probe>::with_handler(r, id, |_, t| t.resume_reading());
        record.borrow().received.len() == 4 * transport::READ_CHUNK
    });
    assert_eq!(
        record.borrow().received,
        pattern(0, 4 * transport::READ_CHUNK)
    );
}

#[test]
fn close_grace_period_is_cancelled_when_the_peer_drains_in_time() {
    const TOTAL: usize = 4 << 20;
    let (ours, peer) = util::tcp_pair();
    util::bound_peer(&peer);
    let reader = util::spawn_peer("reader", move || {
        let mut peer = peer;
        drain_pattern(&mut peer, 64 * 1024)
    });
    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(clock).unwrap();
    let (probe, record) = Probe::new();
    let probe = probe.on_made(|t| {
        t.set_close_timeout(Some(Duration::from_secs(10)));
        for offset in (0..TOTAL).step_by(1 << 20) {
            t.write(pattern(offset as u64, 1 << 20));
        }
        t.lose_connection();
    });
    util::start(&mut reactor, Box::new(util::into_mio(ours)), probe).unwrap();
    util::turn_until(&mut reactor, |_| record.borrow().is_lost());
    assert_eq!(record.borrow().only_reason(), Ended::Done);
    assert_eq!(
        reactor.pending_calls(),
        0,
        "the grace-period timer is cancelled"
    );
    let drained = reader.join().unwrap();
    assert_eq!(drained.total, TOTAL as u64);
    assert!(drained.matched && drained.error.is_none());
}

#[test]
fn tcp_options_apply_to_tcp_only() {
    for (kind, ours, _peer) in util::pairs() {
        let results = Rc::new(RefCell::new(None));
        let keep = results.clone();
        let (probe, _record) = Probe::new();
        let probe = probe.on_made(move |t| {
            let nodelay = t.set_tcp_nodelay(true).map_err(|e| e.kind());
            let keepalive = t
                .set_tcp_keepalive(Some(Duration::from_secs(60)))
                .map_err(|e| e.kind());
            let off = t.set_tcp_keepalive(None).map_err(|e| e.kind());
            *keep.borrow_mut() = Some((nodelay, keepalive, off));
        });
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, probe).unwrap();
        let results = results.borrow_mut().take().unwrap();
        if kind == "unix" {
            let unsupported = Err(io::ErrorKind::Unsupported);
            assert_eq!(results, (unsupported, unsupported, unsupported));
        } else {
            assert_eq!(results, (Ok(()), Ok(()), Ok(())), "{kind}");
        }
    }
}

/// A pull producer that never has anything to write; counts how often it is asked.
struct Idle {
    asked: Rc<std::cell::Cell<usize>>,
}

impl transport::Handler for Idle {
    fn connection_made(&mut self, t: &mut transport::Transport<'_>) {
        t.register_producer(false);
    }
    fn data_received(&mut self, _: &mut transport::Transport<'_>, _: &[u8]) {}
    fn resume_producing(&mut self, _: &mut transport::Transport<'_>) {
        self.asked.set(self.asked.get() + 1);
    }
    fn connection_lost(
        &mut self,
        _: &mut transport::Transport<'_>,
        _: &transport::DisconnectReason,
    ) {
    }
}

#[test]
fn pull_producer_with_nothing_to_write_does_not_spin() {
    let (ours, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let asked = Rc::new(std::cell::Cell::new(0));
    let mut reactor = Reactor::new().unwrap();
    let idle = Idle {
        asked: asked.clone(),
    };
    util::start(
        &mut reactor,
        Box::new(mio::net::UnixStream::from_std(ours)),
        idle,
    )
    .unwrap();
    for _ in 0..10 {
        reactor.iterate(Some(Duration::from_millis(1))).unwrap();
    }
    assert!(asked.get() <= 2, "asked {} times in 10 turns", asked.get());
    assert!(
        !reactor.has_pending_work(),
        "the loop would not sleep: it has work queued for the next turn"
    );
}

#[test]
fn close_grace_period_ends_when_the_buffer_drains() {
    use std::io::Read;
    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
    let (ours, mut peer) = transport::MemoryStream::pair(4);
    let (probe, record) = Probe::new();
    let probe = probe.on_made(|t| {
        t.set_close_timeout(Some(Duration::from_secs(1)));
        t.register_producer(false); // a pull producer holds the close until it unregisters
        t.write(b"more than four bytes");
        t.lose_connection();
    });
    let id = util::start(&mut reactor, Box::new(ours), probe).unwrap();
    let buffered = |r: &mut Reactor| {
        Connection::<Probe>::with_handler(r, id, |_, t| t.buffered()).expect("still open")
    };
    let mut got = Vec::new();
    for _ in 0..20 {
        if buffered(&mut reactor) == 0 {
            break;
        }
        let mut buf = [0u8; 16];
        let n = peer.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        reactor.set_ready(id, false, true).unwrap();
        reactor.iterate(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(buffered(&mut reactor), 0, "the buffer drained");
    clock.advance(Duration::from_secs(5));
    reactor.iterate(Some(Duration::ZERO)).unwrap();
    assert!(
        !record.borrow().is_lost(),
        "aborted after the buffer drained"
    );
    Connection::<Probe>::with_handler(&mut reactor, id, |_, t| t.unregister_producer());
    assert_eq!(record.borrow().only_reason(), Ended::Done);
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    got.extend_from_slice(&rest);
    assert_eq!(got, b"more than four bytes");
}
