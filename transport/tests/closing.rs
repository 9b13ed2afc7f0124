//! How connections end: graceful and abortive closes, half-closes both ways, and a
//! peer that resets the connection mid-stream.

mod util;

use std::io::{self, Read, Write};

use reactor::Reactor;
use transport::{Connection, DisconnectReason, EofAction, Handler, Transport};
use util::{drain_pattern, ended, pattern, Ended, Probe};

const MIB: usize = 1 << 20;

/// Writes `total` bytes of the pattern at once, in slices of a mebibyte.
fn write_pattern(t: &mut Transport<'_>, total: usize) {
    let mut offset = 0;
    while offset < total {
        let n = MIB.min(total - offset);
        t.write(pattern(offset as u64, n));
        offset += n;
    }
}

#[test]
fn lose_connection_delivers_everything_written_before_it() {
    const TOTAL: usize = 8 * MIB;
    for (kind, ours, mut peer) in util::pairs() {
        let reader = util::spawn_peer("reader", move || drain_pattern(&mut peer, 64 * 1024));
        let (probe, record) = Probe::new();
        let probe = probe.on_made(|t| {
            write_pattern(t, TOTAL);
            t.lose_connection();
        });
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, probe).unwrap();
        util::turn_until(&mut reactor, |_| record.borrow().is_lost());

        let drained = reader.join().unwrap();
        assert!(drained.error.is_none(), "{kind}: {drained:?}");
        assert_eq!(drained.total, TOTAL as u64, "{kind}");
        assert!(
            drained.matched,
            "{kind}: the bytes differ from what was sent"
        );
        assert_eq!(record.borrow().only_reason(), Ended::Done, "{kind}");
    }
}

#[test]
fn abort_connection_discards_the_buffer_and_resets() {
    const TOTAL: usize = 16 * MIB;
    let (ours, peer) = util::tcp_pair();
    util::bound_peer(&peer);
    let (probe, record) = Probe::new();
    let buffered_at_abort = std::rc::Rc::new(std::cell::Cell::new(0));
    let at_abort = buffered_at_abort.clone();
    let probe = probe.on_made(move |t| {
        write_pattern(t, TOTAL);
        at_abort.set(t.buffered());
        t.abort_connection();
    });
    let mut reactor = Reactor::new().unwrap();
    util::start(&mut reactor, Box::new(util::into_mio(ours)), probe).unwrap();
    util::turn_until(&mut reactor, |_| record.borrow().is_lost());
    assert_eq!(record.borrow().only_reason(), Ended::Aborted);
    assert!(buffered_at_abort.get() > 0);

    // The peer reads what the kernel had taken before the abort, then the reset.
    let mut peer = peer;
    let drained = drain_pattern(&mut peer, 64 * 1024);
    assert!(
        drained.total < TOTAL as u64,
        "the buffered bytes were sent: {drained:?}"
    );
    assert!(drained.matched);
    let reset = drained
        .error
        .as_ref()
        .is_some_and(|e| e.kind() == io::ErrorKind::ConnectionReset);
    assert!(
        reset,
        "the peer saw a clean end instead of a reset: {drained:?}"
    );
}

#[test]
fn lose_write_connection_sends_eof_and_keeps_reading() {
    for (kind, ours, mut peer) in util::pairs() {
        let peer_thread = util::spawn_peer("peer", move || -> io::Result<Vec<u8>> {
            let mut request = Vec::new();
            peer.read_to_end(&mut request)?;
            peer.write_all(b"reply after your eof")?;
            peer.shut_write()?;
            Ok(request)
        });
        let (probe, record) = Probe::new();
        let probe = probe.on_made(|t| {
            t.write(b"request");
            t.lose_write_connection();
        });
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, probe).unwrap();
        util::turn_until(&mut reactor, |_| record.borrow().is_lost());

        assert_eq!(peer_thread.join().unwrap().unwrap(), b"request", "{kind}");
        let record = record.borrow();
        assert_eq!(record.only_reason(), Ended::Done, "{kind}");
        assert_eq!(record.received, b"reply after your eof", "{kind}");
        assert_eq!(record.write_lost, 1, "{kind}");
        assert_eq!(
            record.calls,
            [
                "connection_made",
                "write_connection_lost",
                "data_received",
                "connection_lost"
            ],
            "{kind}"
        );
    }
}

#[test]
fn abort_inside_write_connection_lost_takes_effect_at_once() {
    for (kind, ours, peer) in util::pairs() {
        let (probe, record) = Probe::new();
        let probe = probe
            .on_made(|t| t.lose_write_connection())
            .on_write_lost(|t| t.abort_connection());
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, probe).unwrap();
        // The peer stays silent: no later event would act on the abort for us.
        assert_eq!(record.borrow().only_reason(), Ended::Aborted, "{kind}");
        assert_eq!(reactor.descriptor_count(), 0, "{kind}");
        drop(peer);
    }
}

#[test]
fn writes_made_while_the_writing_half_closes_are_still_sent() {
    for (kind, ours, mut peer) in util::pairs() {
        let (probe, record) = Probe::new();
        let probe = probe.on_made(|t| {
            t.write(b"before ");
            t.lose_write_connection();
            // Closing, not closed: as Twisted's loseWriteConnection, this still goes
            // out ahead of the shutdown (as writes after lose_connection do).
            t.write(b"after");
        });
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, probe).unwrap();
        util::turn_until(&mut reactor, |_| record.borrow().write_lost == 1);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"before after", "{kind}");
        assert!(!record.borrow().is_lost(), "{kind}: still reading");
    }
}

#[test]
fn peer_eof_with_keep_writing_lets_us_write_after_it() {
    for (kind, ours, mut peer) in util::pairs() {
        let peer_thread = util::spawn_peer("peer", move || -> io::Result<Vec<u8>> {
            peer.write_all(b"question")?;
            peer.shut_write()?;
            let mut answer = Vec::new();
            peer.read_to_end(&mut answer)?;
            Ok(answer)
        });
        let (probe, record) = Probe::new();
        let probe = probe.on_eof(|t| {
            // Answer later, from outside any callback of this connection.
            let id = t.id();
            t.reactor().call_soon(move |reactor| {
                Connection::<Probe>::with_handler(reactor, id, |_, t| {
                    assert!(t.is_open(), "half-closed, not closed");
                    t.write(b"answer after eof");
                    t.lose_connection();
                });
            });
            EofAction::KeepWriting
        });
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, probe).unwrap();
        util::turn_until(&mut reactor, |_| record.borrow().is_lost());

        assert_eq!(
            peer_thread.join().unwrap().unwrap(),
            b"answer after eof",
            "{kind}"
        );
        let record = record.borrow();
        assert_eq!(record.only_reason(), Ended::Done, "{kind}");
        assert_eq!(record.received, b"question", "{kind}");
        assert_eq!(record.read_lost, 1, "{kind}");
    }
}

#[test]
fn peer_eof_closes_by_default_after_flushing() {
    const TOTAL: usize = 4 * MIB;
    for (kind, ours, mut peer) in util::pairs() {
        let peer_thread = util::spawn_peer("peer", move || {
            peer.write_all(b"send me four mebibytes").unwrap();
            peer.shut_write().unwrap();
            drain_pattern(&mut peer, 64 * 1024)
        });
        let (probe, record) = Probe::new();
        let probe = probe.on_data(|t, _| {
            if t.bytes_received() == b"send me four mebibytes".len() as u64 {
                write_pattern(t, TOTAL);
            }
        });
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, probe).unwrap();
        util::turn_until(&mut reactor, |_| record.borrow().is_lost());

        let drained = peer_thread.join().unwrap();
        assert!(drained.error.is_none(), "{kind}: {drained:?}");
        assert_eq!(drained.total, TOTAL as u64, "{kind}");
        assert!(drained.matched, "{kind}");
        let record = record.borrow();
        assert_eq!(record.read_lost, 1, "{kind}");
        assert_eq!(record.only_reason(), Ended::Done, "{kind}");
    }
}

/// Writes the pattern for ever, a chunk each time the buffer drains.
struct Endless {
    sent: u64,
    lost: std::rc::Rc<std::cell::RefCell<Vec<(Ended, String)>>>,
}

impl Handler for Endless {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer(false);
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        t.write(pattern(self.sent, 64 * 1024));
        self.sent += 64 * 1024;
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.lost
            .borrow_mut()
            .push((ended(reason), reason.to_string()));
    }
}

#[test]
fn peer_reset_mid_stream_is_lost_not_done() {
    let (ours, peer) = util::tcp_pair();
    util::bound_peer(&peer);
    let peer_thread = util::spawn_peer("resetting peer", move || {
        let mut peer = peer;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while total < MIB {
            total += peer.read(&mut buf).unwrap();
        }
        // Close while the writer is still writing, with a reset.
        util::Peer::reset_on_close(&peer).unwrap();
        drop(peer);
    });
    let lost = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let writer = Endless {
        sent: 0,
        lost: lost.clone(),
    };
    let mut reactor = Reactor::new().unwrap();
    util::start(&mut reactor, Box::new(util::into_mio(ours)), writer).unwrap();
    util::turn_until(&mut reactor, |_| !lost.borrow().is_empty());
    peer_thread.join().unwrap();

    let lost = lost.borrow();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].0, Ended::Lost, "{}", lost[0].1);
}

/// A pull producer that writes `chunks`, one per `resume_producing`, then
/// unregisters; it asks for the half-close (and whatever `made` adds) first thing.
struct Chunks {
    chunks: Vec<&'static [u8]>,
    refused: std::rc::Rc<std::cell::Cell<Option<u64>>>,
    lost: std::rc::Rc<std::cell::RefCell<Vec<Ended>>>,
}

impl Handler for Chunks {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.chunks.reverse();
        t.register_producer(false);
        t.lose_write_connection();
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        if let Some(chunk) = self.chunks.pop() {
            t.write(chunk);
        }
        if self.chunks.is_empty() {
            t.unregister_producer();
        }
    }

    fn write_connection_lost(&mut self, t: &mut Transport<'_>) {
        t.write(b"too late");
        self.refused.set(Some(t.bytes_refused()));
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.lost.borrow_mut().push(ended(reason));
    }
}

#[test]
fn lose_write_connection_waits_for_a_registered_producer() {
    for (kind, ours, mut peer) in util::pairs() {
        let refused = std::rc::Rc::new(std::cell::Cell::new(None));
        let lost = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let producer = Chunks {
            chunks: vec![b"one ", b"two ", b"three"],
            refused: refused.clone(),
            lost: lost.clone(),
        };
        let mut reactor = Reactor::new().unwrap();
        util::start(&mut reactor, ours, producer).unwrap();
        util::turn_until(&mut reactor, |_| refused.get().is_some());
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(
            got, b"one two three",
            "{kind}: every chunk, then end of file"
        );
        assert_eq!(
            refused.get(),
            Some(b"too late".len() as u64),
            "{kind}: a write after the half-close is counted as refused"
        );
        drop(peer);
        util::turn_until(&mut reactor, |_| !lost.borrow().is_empty());
        assert_eq!(*lost.borrow(), [Ended::Done], "{kind}");
    }
}
