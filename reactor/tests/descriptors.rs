//! Descriptors: adding and removing them (also from inside callbacks), stale ids,
//! the level-triggered bridge, and what happens when a descriptor fails.

mod util;

use std::cell::Cell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use reactor::{Descriptor, DescriptorId, IoStatus, LostReason, Reactor, ReactorError, Removed};
use util::{
    drain, id_cell, manual_reactor, read_one_byte, send, slot_of, socket_pair, turn, turn_until,
    Log, Probe,
};

// ===== adding and removing =====

#[test]
fn a_descriptor_removes_itself_from_its_own_do_read() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = Probe::new("a", stream, &log)
        .on_read(|stream, reactor, id| {
            drain(stream)?;
            // The descriptor is being dispatched: it is not handed back, but dropped
            // as soon as this method returns.
            assert!(matches!(
                reactor.remove_descriptor(id),
                Ok(Removed::WhileDispatched)
            ));
            assert!(!reactor.contains(id));
            Ok(IoStatus::Ready) // ignored: the descriptor is gone
        })
        .read_in(&mut reactor);

    send(&peer, b"x");
    turn(&mut reactor);
    assert_eq!(
        log.take(),
        ["a read", "a dropped"],
        "no connection_lost for a removal"
    );
    assert!(!reactor.contains(id));
    assert_eq!(reactor.descriptor_count(), 0);

    // It said Ready, but it is gone: nothing is called on later turns.
    for _ in 0..3 {
        turn(&mut reactor);
    }
    assert!(log.take().is_empty());
}

#[test]
fn a_descriptor_adds_then_removes_another_from_its_callbacks() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (a_stream, a_peer) = socket_pair();
    let (b_stream, b_peer) = socket_pair();
    send(&b_peer, b"for b");

    let b_id = id_cell();
    let mut b_stream = Some(b_stream);
    let (log2, b_id2) = (log.clone(), b_id.clone());
    Probe::new("a", a_stream, &log)
        .on_read(move |stream, reactor, _| {
            drain(stream)?;
            match b_stream.take() {
                // First read: register b, which has data waiting.
                Some(s) => b_id2.set(Some(Probe::new("b", s, &log2).read_in(reactor))),
                // Second read: remove b, which is handed back (it is not the one running).
                None => {
                    let b = reactor
                        .remove_descriptor(b_id2.get().unwrap())
                        .ok()
                        .and_then(Removed::into_descriptor)
                        .expect("b is handed back");
                    assert_eq!(b.log_prefix(), "b");
                }
            }
            Ok(IoStatus::WouldBlock)
        })
        .read_in(&mut reactor);

    send(&a_peer, b"1");
    turn(&mut reactor);
    assert_eq!(reactor.descriptor_count(), 2);
    turn_until(&mut reactor, |_| log.count("b read") == 1);

    send(&a_peer, b"2");
    send(&b_peer, b"more for b");
    turn_until(&mut reactor, |r| !r.contains(b_id.get().unwrap()));
    for _ in 0..3 {
        turn(&mut reactor);
    }
    assert_eq!(log.count("b read"), 1, "b is never read after its removal");
    assert_eq!(log.count("b dropped"), 1);
    assert!(!log.entries().iter().any(|e| e.starts_with("b lost")));
    assert_eq!(reactor.descriptor_count(), 1);
}

/// Two descriptors ready in the same poll, each removing the other when it runs: the
/// second must not be called, whichever order the OS reports them in.
#[test]
fn a_removal_takes_effect_for_the_rest_of_the_batch() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (a_stream, a_peer) = socket_pair();
    let (b_stream, b_peer) = socket_pair();
    let (a_id, b_id) = (id_cell(), id_cell());

    let remover = |other: util::IdCell| {
        move |stream: &mut _, reactor: &mut Reactor, _| {
            let removed = reactor.remove_descriptor(other.get().unwrap());
            assert!(
                matches!(removed, Ok(Removed::Descriptor(_))),
                "the other one is present, not dispatched"
            );
            drain(stream)
        }
    };
    a_id.set(Some(
        Probe::new("a", a_stream, &log)
            .on_read(remover(b_id.clone()))
            .read_in(&mut reactor),
    ));
    b_id.set(Some(
        Probe::new("b", b_stream, &log)
            .on_read(remover(a_id.clone()))
            .read_in(&mut reactor),
    ));

    send(&a_peer, b"a");
    send(&b_peer, b"b");
    turn(&mut reactor);
    let entries = log.take();
    assert!(
        entries == ["a read", "b dropped"] || entries == ["b read", "a dropped"],
        "exactly one read, then the other dropped: {entries:?}"
    );
    assert_eq!(reactor.descriptor_count(), 1);
}

/// The first descriptor of a batch removes the second and inserts a third, which takes
/// over the freed slot: the second's pending event (older generation) must not reach it.
#[test]
fn a_reused_slot_never_receives_its_former_occupants_events() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (a_stream, a_peer) = socket_pair();
    let (b_stream, b_peer) = socket_pair();
    let (c_stream, c_peer) = socket_pair();
    let (a_id, b_id, c_id) = (id_cell(), id_cell(), id_cell());

    let c_stream = Rc::new(Cell::new(Some(c_stream)));
    let build = |name: &'static str, stream, other: util::IdCell| {
        let (log2, c_id, c_stream) = (log.clone(), c_id.clone(), c_stream.clone());
        Probe::new(name, stream, &log).on_read(move |s, reactor, _| {
            drain(s)?;
            let other = other.get().unwrap();
            assert!(matches!(
                reactor.remove_descriptor(other),
                Ok(Removed::Descriptor(_))
            ));
            let c = Probe::new("c", c_stream.take().unwrap(), &log2).read_in(reactor);
            assert_eq!(
                slot_of(c),
                slot_of(other),
                "the freed slot is reused at once"
            );
            assert_ne!(c, other, "with a new generation");
            c_id.set(Some(c));
            Ok(IoStatus::WouldBlock)
        })
    };
    a_id.set(Some(
        build("a", a_stream, b_id.clone()).read_in(&mut reactor),
    ));
    b_id.set(Some(
        build("b", b_stream, a_id.clone()).read_in(&mut reactor),
    ));

    send(&a_peer, b"a");
    send(&b_peer, b"b");
    turn(&mut reactor);
    for _ in 0..3 {
        turn(&mut reactor);
    }
    // Not even as remembered readiness, which a renewed interest would serve.
    let c = c_id.get().unwrap();
    reactor.remove_reader(c).unwrap();
    reactor.add_reader(c).unwrap();
    turn(&mut reactor);
    assert_eq!(
        log.count("c read"),
        0,
        "c got an event meant for its slot's former occupant"
    );

    // c's own readiness does reach it.
    send(&c_peer, b"c");
    turn_until(&mut reactor, |_| log.count("c read") == 1);
    assert!(reactor.contains(c));
}

#[test]
fn an_id_from_another_reactor_is_refused() {
    let (_clock, mut ours) = manual_reactor();
    let (_clock2, mut theirs) = manual_reactor();
    let log = Log::new();
    let (stream, _peer) = socket_pair();
    let (their_stream, _their_peer) = socket_pair();
    let id = ours
        .insert(Box::new(Probe::new("a", stream, &log)))
        .unwrap();
    // Same slot and generation in the other reactor: only the reactor differs.
    let theirs_id = theirs
        .insert(Box::new(Probe::new("b", their_stream, &log)))
        .unwrap();
    assert_ne!(id, theirs_id);
    assert!(!theirs.contains(id));
    assert!(theirs.with_descriptor(id, |_: &mut Probe, _| ()).is_none());
    for result in [
        theirs.add_reader(id),
        theirs.set_ready(id, true, true),
        theirs.remove_descriptor(id).map(|_| ()),
    ] {
        match result {
            Err(ReactorError::WrongReactor(foreign)) => assert_eq!(foreign, id),
            other => panic!("expected WrongReactor, got {other:?}"),
        }
    }
    assert!(!theirs.is_reading(theirs_id), "theirs untouched");
    assert!(ours.contains(id) && theirs.contains(theirs_id));
    assert!(ReactorError::WrongReactor(id)
        .to_string()
        .contains("another reactor"));
}

#[test]
fn stale_ids_are_refused_everywhere() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, _peer) = socket_pair();
    let id = reactor
        .insert(Box::new(Probe::new("a", stream, &log)))
        .unwrap();
    assert!(matches!(
        reactor.remove_descriptor(id),
        Ok(Removed::Descriptor(_))
    ));

    assert!(!reactor.contains(id));
    assert!(!reactor.is_reading(id));
    assert!(!reactor.is_writing(id));
    for result in [
        reactor.add_reader(id),
        reactor.add_writer(id),
        reactor.remove_reader(id),
        reactor.remove_writer(id),
    ] {
        match result {
            Err(ReactorError::UnknownDescriptor(stale)) => assert_eq!(stale, id),
            other => panic!("expected UnknownDescriptor, got {other:?}"),
        }
    }
    assert!(matches!(
        reactor.remove_descriptor(id),
        Err(ReactorError::UnknownDescriptor(_))
    ));
    assert!(reactor.with_descriptor(id, |_: &mut Probe, _| ()).is_none());
    let message = ReactorError::UnknownDescriptor(id).to_string();
    assert!(message.contains(&id.to_string()), "{message}");
}

#[test]
fn remove_descriptor_hands_back_the_box_which_can_be_inserted_again() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = Probe::new("a", stream, &log).read_in(&mut reactor);
    assert!(reactor.is_reading(id));

    let boxed = reactor
        .remove_descriptor(id)
        .ok()
        .and_then(Removed::into_descriptor)
        .expect("handed back");
    assert_eq!(boxed.log_prefix(), "a");
    assert_eq!(reactor.descriptor_count(), 0);
    send(&peer, b"while out");
    turn(&mut reactor);
    assert!(log.take().is_empty(), "not called, not told, not dropped");

    // Its source was deregistered, so it can be registered again, under a new id.
    let again = reactor.insert(boxed).unwrap();
    assert_ne!(again, id);
    assert!(!reactor.is_reading(again), "interest starts empty");
    reactor.add_reader(again).unwrap();
    turn_until(&mut reactor, |_| log.count("a read") == 1);
    drop(reactor);
    assert_eq!(log.take(), ["a read", "a dropped"]);
}

#[test]
fn interest_is_tracked_per_direction() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, _peer) = socket_pair();
    let id = reactor
        .insert(Box::new(Probe::new("a", stream, &log)))
        .unwrap();
    assert!(!reactor.is_reading(id) && !reactor.is_writing(id));
    reactor.add_writer(id).unwrap();
    assert!(!reactor.is_reading(id) && reactor.is_writing(id));
    reactor.add_reader(id).unwrap();
    reactor.remove_writer(id).unwrap();
    assert!(reactor.is_reading(id) && !reactor.is_writing(id));
}

// ===== with_descriptor =====

struct Other {
    stream: reactor::mio::net::UnixStream,
}

impl Descriptor for Other {
    fn source(&mut self) -> &mut dyn reactor::mio::event::Source {
        &mut self.stream
    }

    fn connection_lost(&mut self, _: &mut Reactor, _: DescriptorId, _: LostReason) {}
}

#[test]
fn with_descriptor_lends_the_concrete_type_and_refuses_others() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, _peer) = socket_pair();
    let id = reactor
        .insert(Box::new(Probe::new("a", stream, &log)))
        .unwrap();

    let name = reactor.with_descriptor(id, |probe: &mut Probe, r| {
        // The reactor is usable meanwhile; the descriptor still counts as registered.
        assert!(r.contains(id));
        assert_eq!(r.descriptor_count(), 1);
        probe.name.push_str("-renamed");
        probe.name.clone()
    });
    assert_eq!(name.as_deref(), Some("a-renamed"));

    let called = Cell::new(false);
    let wrong = reactor.with_descriptor(id, |_: &mut Other, _| called.set(true));
    assert!(wrong.is_none());
    assert!(!called.get(), "f is not called on a type mismatch");
    assert!(
        reactor.contains(id),
        "a mismatch leaves the descriptor in place"
    );

    // Removing the lent descriptor from inside f drops it when f returns.
    reactor.with_descriptor(id, |_: &mut Probe, r| {
        assert!(matches!(
            r.remove_descriptor(id),
            Ok(Removed::WhileDispatched)
        ));
        assert!(log.take().is_empty(), "not dropped while lent");
    });
    assert_eq!(log.take(), ["a-renamed dropped"]);
    assert!(!reactor.contains(id));
}

#[test]
fn with_descriptor_on_the_descriptor_being_dispatched_is_none() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let seen = Rc::new(Cell::new(None));
    let seen2 = seen.clone();
    Probe::new("a", stream, &log)
        .on_read(move |s, reactor, id| {
            seen2.set(Some(
                reactor.with_descriptor(id, |_: &mut Probe, _| ()).is_none(),
            ));
            drain(s)
        })
        .read_in(&mut reactor);
    send(&peer, b"x");
    turn(&mut reactor);
    assert_eq!(seen.get(), Some(true));
}

#[test]
fn a_panic_inside_with_descriptor_puts_the_descriptor_back() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = Probe::new("a", stream, &log).read_in(&mut reactor);

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        reactor.with_descriptor(id, |_: &mut Probe, _| panic!("inside with_descriptor"))
    }));
    assert!(outcome.is_err(), "the panic reaches the caller");
    assert_eq!(log.take(), Vec::<String>::new(), "not dropped");

    assert!(reactor.contains(id));
    assert_eq!(
        reactor
            .with_descriptor(id, |p: &mut Probe, _| p.name.clone())
            .as_deref(),
        Some("a")
    );
    send(&peer, b"x");
    turn_until(&mut reactor, |_| log.count("a read") == 1);
    reactor.disconnect_all();
    assert_eq!(log.take(), ["a read", "a lost shutdown", "a dropped"]);
}

// ===== the level-triggered bridge =====

#[test]
fn ready_means_called_again_next_turn_without_a_new_event() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = Probe::new("a", stream, &log)
        .on_read(|s, _, _| read_one_byte(s))
        .read_in(&mut reactor);

    send(&peer, b"12345"); // one readiness event, five bytes
    for expected in 1..=5 {
        turn(&mut reactor);
        assert_eq!(log.count("a read"), expected, "one call per turn");
    }
    // The sixth call finds nothing and says WouldBlock: the reactor then waits.
    turn(&mut reactor);
    assert_eq!(log.count("a read"), 6);
    for _ in 0..3 {
        turn(&mut reactor);
    }
    assert_eq!(log.count("a read"), 6);
    assert!(reactor.contains(id));
}

#[test]
fn readiness_that_arrived_while_not_reading_is_served_after_add_reader() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = reactor
        .insert(Box::new(Probe::new("a", stream, &log)))
        .unwrap();

    send(&peer, b"early");
    for _ in 0..3 {
        turn(&mut reactor);
    }
    assert!(log.take().is_empty(), "not a reader yet");

    reactor.add_reader(id).unwrap();
    turn(&mut reactor);
    assert_eq!(
        log.take(),
        ["a read"],
        "remembered readiness, no new OS event"
    );
}

#[test]
fn pausing_from_do_read_keeps_the_readiness_for_later() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = Probe::new("a", stream, &log)
        .on_read(|s, reactor, id| {
            // Take one byte, then pause (flow control: the consumer is full).
            let status = read_one_byte(s)?;
            reactor.remove_reader(id).unwrap();
            Ok(status)
        })
        .read_in(&mut reactor);

    send(&peer, b"abc");
    turn(&mut reactor);
    for _ in 0..3 {
        turn(&mut reactor);
    }
    assert_eq!(log.take(), ["a read"], "paused after one byte");

    for _ in 0..2 {
        reactor.add_reader(id).unwrap();
        turn(&mut reactor);
        assert_eq!(log.take(), ["a read"], "resumed without a new event");
    }
}

#[test]
fn ready_writers_are_called_once_per_turn_until_they_stop() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, _peer) = socket_pair();
    let mut budget = 3;
    let id = reactor
        .insert(Box::new(Probe::new("a", stream, &log).on_write(
            move |_, reactor, id| {
                budget -= 1;
                if budget == 0 {
                    reactor.remove_writer(id).unwrap();
                }
                Ok(IoStatus::Ready)
            },
        )))
        .unwrap();
    reactor.add_writer(id).unwrap();
    for expected in 1..=3 {
        turn(&mut reactor);
        assert_eq!(log.count("a write"), expected);
    }
    for _ in 0..3 {
        turn(&mut reactor);
    }
    assert_eq!(
        log.count("a write"),
        3,
        "no calls once it removed itself as a writer"
    );
}

// ===== failures =====

#[test]
fn an_error_from_do_read_removes_the_descriptor_and_reports_it_once() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = Probe::new("a", stream, &log)
        .on_read(|_, _, _| Err(io::Error::other("boom")))
        .read_in(&mut reactor);

    send(&peer, b"x");
    turn(&mut reactor);
    for _ in 0..3 {
        turn(&mut reactor);
    }
    assert_eq!(log.take(), ["a read", "a lost error boom", "a dropped"]);
    assert!(!reactor.contains(id));
    reactor.disconnect_all();
    assert!(log.take().is_empty(), "told only once");
}

#[test]
fn connection_lost_receives_the_original_io_error() {
    let (_clock, mut reactor) = manual_reactor();
    let kind = Rc::new(Cell::new(None));

    struct Failing {
        stream: reactor::mio::net::UnixStream,
        kind: Rc<Cell<Option<io::ErrorKind>>>,
    }
    impl Descriptor for Failing {
        fn source(&mut self) -> &mut dyn reactor::mio::event::Source {
            &mut self.stream
        }
        fn do_write(&mut self, _: &mut Reactor, _: DescriptorId) -> io::Result<IoStatus> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn connection_lost(&mut self, _: &mut Reactor, _: DescriptorId, reason: LostReason) {
            match reason {
                LostReason::Error(e) => self.kind.set(Some(e.kind())),
                other => panic!("unexpected reason {other}"),
            }
        }
    }

    let (stream, _peer) = socket_pair();
    let id = reactor
        .insert(Box::new(Failing {
            stream,
            kind: kind.clone(),
        }))
        .unwrap();
    reactor.add_writer(id).unwrap();
    turn_until(&mut reactor, |r| !r.contains(id));
    assert_eq!(kind.get(), Some(io::ErrorKind::BrokenPipe));
}

#[test]
fn a_panicking_do_read_is_isolated() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (a_stream, a_peer) = socket_pair();
    let (b_stream, b_peer) = socket_pair();
    let a = Probe::new("a", a_stream, &log)
        .on_read(|_, _, _| panic!("kaboom {}", 42))
        .read_in(&mut reactor);
    let b = Probe::new("b", b_stream, &log).read_in(&mut reactor);
    let log2 = log.clone();
    reactor.call_later(std::time::Duration::from_secs(1), move |_| {
        log2.push("timer")
    });

    send(&a_peer, b"x");
    send(&b_peer, b"y");
    clock.advance(std::time::Duration::from_secs(1));
    turn(&mut reactor);

    let entries = log.take();
    assert_eq!(
        entries
            .iter()
            .filter(|e| *e == "a lost panicked kaboom 42")
            .count(),
        1,
        "{entries:?}"
    );
    assert!(entries.contains(&"a dropped".to_owned()));
    assert!(entries.contains(&"b read".to_owned()), "{entries:?}");
    assert_eq!(
        entries.last().map(String::as_str),
        Some("timer"),
        "{entries:?}"
    );
    assert!(!reactor.contains(a));
    assert!(reactor.contains(b));

    // Everything else carries on.
    send(&b_peer, b"z");
    turn_until(&mut reactor, |_| log.count("b read") == 1);
}

#[test]
fn disconnect_all_tells_each_descriptor_once_even_if_one_panics() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let mut peers = Vec::new();
    for name in ["a", "b", "c"] {
        let (stream, peer) = socket_pair();
        peers.push(peer);
        let probe = Probe::new(name, stream, &log);
        let probe = if name == "b" {
            probe.on_lost(|_, _| panic!("b cannot take it"))
        } else {
            probe
        };
        probe.read_in(&mut reactor);
    }
    reactor.disconnect_all();
    let entries = log.take();
    for name in ["a", "b", "c"] {
        let lost = format!("{name} lost shutdown");
        assert_eq!(
            entries.iter().filter(|e| **e == lost).count(),
            1,
            "{entries:?}"
        );
        assert!(entries.contains(&format!("{name} dropped")), "{entries:?}");
    }
    assert_eq!(reactor.descriptor_count(), 0);
    reactor.disconnect_all();
    assert!(log.take().is_empty());
}

// ===== interest changes from inside the callbacks =====

#[test]
fn a_descriptor_flips_itself_between_reading_and_writing() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    let id = Probe::new("a", stream, &log)
        .on_read(|s, reactor, id| {
            drain(s)?;
            reactor.remove_reader(id).unwrap();
            reactor.add_writer(id).unwrap(); // the socket is writable: served at once
            Ok(IoStatus::WouldBlock)
        })
        .on_write(|_, reactor, id| {
            reactor.remove_writer(id).unwrap();
            reactor.add_reader(id).unwrap();
            Ok(IoStatus::Ready)
        })
        .read_in(&mut reactor);

    for _ in 0..2 {
        send(&peer, b"ping");
        turn_until(&mut reactor, |_| log.count("a write") >= 1);
        assert_eq!(log.take(), ["a read", "a write"]);
        assert!(reactor.is_reading(id) && !reactor.is_writing(id));
    }
}

// ===== readiness the OS does not report: set_ready =====

#[test]
fn set_ready_serves_an_interested_descriptor_on_the_next_turn() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, _peer) = socket_pair(); // never readable by itself
    let id = reactor
        .insert(Box::new(Probe::new("a", stream, &log)))
        .unwrap();

    reactor.set_ready(id, true, false).unwrap();
    turn(&mut reactor);
    assert!(log.take().is_empty(), "not a reader yet");
    reactor.add_reader(id).unwrap();
    turn(&mut reactor);
    assert_eq!(log.take(), ["a read"], "the readiness was remembered");
    turn(&mut reactor);
    assert!(log.take().is_empty(), "it answered WouldBlock");

    reactor.set_ready(id, true, false).unwrap();
    turn(&mut reactor);
    assert_eq!(log.take(), ["a read"]);

    assert!(reactor.remove_descriptor(id).is_ok());
    assert!(matches!(
        reactor.set_ready(id, true, true),
        Err(ReactorError::UnknownDescriptor(_))
    ));
}
