//! `run`, `stop`, `call_when_running` and shutdown: Twisted's `IReactorCore`.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{IoStatus, Reactor, ReactorError};
use util::{drain, manual_reactor, run_bounded, send, socket_pair, turn, Log, Probe};

const LIMIT: Duration = Duration::from_secs(10);

#[track_caller]
fn run_ok(reactor: &mut Reactor) {
    let (result, watchdog) = run_bounded(reactor, LIMIT);
    assert!(!watchdog, "the reactor did not stop by itself");
    result.expect("run");
}

#[test]
fn stop_from_inside_a_callback_ends_run() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let log2 = log.clone();
    reactor.call_when_running(move |r| {
        assert!(r.is_running());
        r.stop();
        assert!(!r.is_running(), "a stop was requested");
        log2.push("stopped");
    });
    assert!(!reactor.is_running());
    run_ok(&mut reactor);
    assert_eq!(log.take(), ["stopped"]);
    assert!(!reactor.is_running());
}

#[test]
fn stop_finishes_the_current_turn() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (log2, log3) = (log.clone(), log.clone());
    reactor.call_later(Duration::ZERO, |r| r.stop());
    reactor.call_later(Duration::ZERO, move |_| log2.push("same turn"));
    reactor.call_soon(move |r| {
        log3.push("soon, same turn");
        let log4 = log3.clone();
        r.call_soon(move |_| log4.push("never: next turn"));
    });
    run_ok(&mut reactor);
    assert_eq!(log.take(), ["same turn", "soon, same turn"]);
}

#[test]
fn stop_twice_is_harmless_and_stop_before_run_does_nothing() {
    let (_clock, mut reactor) = manual_reactor();
    reactor.stop(); // not running: nothing to do, and run still runs
    let turns = Rc::new(Cell::new(0));
    let t = turns.clone();
    reactor.call_when_running(move |r| {
        t.set(t.get() + 1);
        r.call_soon(|r| {
            r.stop();
            r.stop();
        });
    });
    run_ok(&mut reactor);
    assert_eq!(turns.get(), 1);
    reactor.stop(); // after shutdown: still harmless
}

#[test]
fn run_from_inside_a_callback_is_already_running() {
    let (_clock, mut reactor) = manual_reactor();
    let results = Rc::new(std::cell::RefCell::new(Vec::new()));
    let r1 = results.clone();
    reactor.call_when_running(move |r| {
        r1.borrow_mut().push(r.run());
        r1.borrow_mut().push(r.iterate(Some(Duration::ZERO)));
        let r2 = r1.clone();
        r.call_later(Duration::ZERO, move |r| {
            r2.borrow_mut().push(r.run());
            r2.borrow_mut().push(r.iterate(Some(Duration::ZERO)));
            r.stop();
        });
    });
    run_ok(&mut reactor);
    let results = results.borrow();
    assert_eq!(results.len(), 4);
    for result in results.iter() {
        assert!(
            matches!(result, Err(ReactorError::AlreadyRunning)),
            "{result:?}"
        );
    }
}

#[test]
fn run_or_iterate_from_a_descriptor_or_a_call_under_iterate_is_already_running() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    Probe::new("a", stream, &log)
        .on_read(|s, reactor, _| {
            assert!(matches!(reactor.run(), Err(ReactorError::AlreadyRunning)));
            assert!(matches!(
                reactor.iterate(Some(Duration::ZERO)),
                Err(ReactorError::AlreadyRunning)
            ));
            drain(s)
        })
        .read_in(&mut reactor);
    let checked = Rc::new(Cell::new(false));
    let c = checked.clone();
    reactor.call_soon(move |r| {
        assert!(matches!(r.run(), Err(ReactorError::AlreadyRunning)));
        assert!(matches!(r.iterate(None), Err(ReactorError::AlreadyRunning)));
        c.set(true);
    });
    send(&peer, b"x");
    turn(&mut reactor);
    assert_eq!(log.take(), ["a read"]);
    assert!(checked.get());
}

#[test]
fn run_after_a_completed_run_is_not_restartable() {
    let (_clock, mut reactor) = manual_reactor();
    reactor.call_when_running(|r| r.stop());
    run_ok(&mut reactor);
    reactor.call_when_running(|_| panic!("never runs"));
    assert!(matches!(reactor.run(), Err(ReactorError::NotRestartable)));
    assert!(!reactor.is_running());
}

/// Twisted runs `callWhenRunning` calls as the reactor starts, before its first
/// iteration: before timers already due and `call_soon` calls already queued.
#[test]
fn call_when_running_calls_run_first_in_order() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let l = log.clone();
    reactor.call_later(Duration::ZERO, move |_| l.push("due timer"));
    let l = log.clone();
    reactor.call_soon(move |_| l.push("soon"));
    let l = log.clone();
    reactor.call_when_running(move |r| {
        l.push("when running 1");
        let l2 = l.clone();
        // Already running: it runs on the next turn, like call_soon.
        r.call_when_running(move |r| {
            l2.push("when running, registered while running");
            r.stop();
        });
    });
    let l = log.clone();
    reactor.call_when_running(move |_| l.push("when running 2"));

    run_ok(&mut reactor);
    assert_eq!(
        log.take(),
        [
            "when running 1",
            "when running 2",
            "due timer",
            "soon",
            "when running, registered while running",
        ]
    );
}

#[test]
fn a_panicking_call_when_running_does_not_stop_the_others() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    reactor.call_when_running(|_| panic!("startup trouble"));
    let l = log.clone();
    reactor.call_when_running(move |r| {
        l.push("second");
        r.stop();
    });
    run_ok(&mut reactor);
    assert_eq!(log.take(), ["second"]);
}

#[test]
fn shutdown_triggers_run_in_order_before_descriptors_are_lost_once() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let mut peers = Vec::new();
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let (stream, peer) = socket_pair();
        peers.push(peer);
        ids.push(Probe::new(name, stream, &log).read_in(&mut reactor));
    }
    let l = log.clone();
    reactor.add_shutdown_trigger(move |r| {
        assert_eq!(r.descriptor_count(), 2, "descriptors are still registered");
        l.push("trigger 1");
    });
    reactor.add_shutdown_trigger(|_| panic!("trigger trouble"));
    let l = log.clone();
    reactor.add_shutdown_trigger(move |_| l.push("trigger 3"));
    reactor.call_when_running(|r| r.stop());

    run_ok(&mut reactor);
    assert_eq!(
        log.take(),
        [
            "trigger 1",
            "trigger 3",
            "a lost shutdown",
            "a dropped",
            "b lost shutdown",
            "b dropped"
        ]
    );
    assert_eq!(reactor.descriptor_count(), 0);
    assert!(ids.iter().all(|id| !reactor.contains(*id)));
}

#[test]
fn a_descriptor_can_stop_the_reactor_and_is_then_told_of_the_shutdown() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, peer) = socket_pair();
    Probe::new("a", stream, &log)
        .on_read(|s, reactor, _| {
            drain(s)?;
            reactor.stop();
            Ok(IoStatus::WouldBlock)
        })
        .read_in(&mut reactor);
    send(&peer, b"stop please");
    run_ok(&mut reactor);
    assert_eq!(log.take(), ["a read", "a lost shutdown", "a dropped"]);
}

#[test]
fn run_on_the_real_clock_waits_for_timers() {
    let mut reactor = Reactor::new().unwrap();
    let start = Instant::now();
    let fired_at = Rc::new(Cell::new(None));
    let f = fired_at.clone();
    reactor.call_later(Duration::from_millis(20), move |r| {
        f.set(Some(r.now()));
        r.stop();
    });
    run_ok(&mut reactor);
    let fired_at = fired_at.get().expect("the timer ran");
    assert!(fired_at >= Duration::from_millis(20), "{fired_at:?}");
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn descriptors_inserted_while_shutting_down_are_told_too() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let (stream, _peer) = socket_pair();
    let (late_stream, late_peer) = socket_pair();
    let late = std::cell::RefCell::new(Some(late_stream));
    let late_log = log.clone();
    Probe::new("first", stream, &log)
        .on_lost(move |r, _| {
            // A reconnecting client would insert a new connection here.
            if let Some(stream) = late.borrow_mut().take() {
                Probe::new("late", stream, &late_log).read_in(r);
            }
        })
        .read_in(&mut reactor);
    reactor.call_when_running(|r| r.stop());
    run_ok(&mut reactor);
    let entries = log.take();
    assert!(
        entries.contains(&"first lost shutdown".to_owned()),
        "{entries:?}"
    );
    assert!(
        entries.contains(&"late lost shutdown".to_owned()),
        "{entries:?}"
    );
    assert_eq!(reactor.descriptor_count(), 0);
    drop(late_peer);
}
