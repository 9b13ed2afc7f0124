//! Delayed calls on a manual clock: ordering, Twisted's `IDelayedCall` semantics,
//! panics, and many timers at once.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use reactor::{DelayedCall, Reactor, TimerError};
use util::{manual_reactor, turn, Log};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Schedules a call that logs `name`.
fn log_later(reactor: &mut Reactor, delay: Duration, log: &Log, name: &str) -> DelayedCall {
    let (log, name) = (log.clone(), name.to_owned());
    reactor.call_later(delay, move |_| log.push(name))
}

#[test]
fn calls_run_by_deadline_and_equal_deadlines_in_scheduling_order() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    for name in ["late-1", "late-2", "late-3"] {
        log_later(&mut reactor, secs(5), &log, name);
    }
    for name in ["early-1", "early-2"] {
        log_later(&mut reactor, secs(3), &log, name);
    }
    log_later(&mut reactor, secs(5), &log, "late-4");

    clock.advance(secs(4));
    turn(&mut reactor);
    assert_eq!(log.take(), ["early-1", "early-2"]);
    clock.advance(secs(100));
    turn(&mut reactor);
    assert_eq!(log.take(), ["late-1", "late-2", "late-3", "late-4"]);
    assert_eq!(reactor.pending_calls(), 0);
}

#[test]
fn nothing_runs_before_its_time() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    log_later(&mut reactor, Duration::from_millis(1500), &log, "a");
    clock.advance(Duration::from_millis(1499));
    turn(&mut reactor);
    assert!(log.take().is_empty());
    assert_eq!(reactor.now(), Duration::from_millis(1499));
    clock.advance(Duration::from_millis(1));
    turn(&mut reactor);
    assert_eq!(log.take(), ["a"]);
}

#[test]
fn active_get_time_and_errors_after_the_call_ran() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    clock.advance(secs(2));
    let call = log_later(&mut reactor, secs(3), &log, "a");
    assert!(call.active(&mut reactor));
    assert_eq!(call.get_time(&mut reactor), Ok(secs(5)), "absolute time");

    clock.advance(secs(3));
    turn(&mut reactor);
    assert_eq!(log.take(), ["a"]);
    assert!(!call.active(&mut reactor));
    assert_eq!(call.cancel(&mut reactor), Err(TimerError::AlreadyCalled));
    assert_eq!(
        call.reset(&mut reactor, secs(1)),
        Err(TimerError::AlreadyCalled)
    );
    assert_eq!(
        call.delay(&mut reactor, secs(1)),
        Err(TimerError::AlreadyCalled)
    );
    assert_eq!(call.get_time(&mut reactor), Err(TimerError::AlreadyCalled));
}

#[test]
fn cancel_stops_the_call_and_drops_what_it_captured() {
    let (clock, mut reactor) = manual_reactor();
    let captured = Rc::new(());
    let ran = Rc::new(Cell::new(false));
    let (c, r) = (captured.clone(), ran.clone());
    let call = reactor.call_later(secs(1), move |_| {
        let _keep = &c;
        r.set(true);
    });
    assert_eq!(Rc::strong_count(&captured), 2);
    assert_eq!(reactor.pending_calls(), 1);

    call.cancel(&mut reactor).unwrap();
    assert_eq!(Rc::strong_count(&captured), 1, "dropped at cancel time");
    assert_eq!(reactor.pending_calls(), 0);
    assert!(!call.active(&mut reactor));
    assert_eq!(call.cancel(&mut reactor), Err(TimerError::AlreadyCancelled));
    assert_eq!(
        call.reset(&mut reactor, secs(1)),
        Err(TimerError::AlreadyCancelled)
    );
    assert_eq!(
        call.delay(&mut reactor, secs(1)),
        Err(TimerError::AlreadyCancelled)
    );
    assert_eq!(
        call.get_time(&mut reactor),
        Err(TimerError::AlreadyCancelled)
    );

    clock.advance(secs(10));
    turn(&mut reactor);
    assert!(!ran.get());
}

#[test]
fn a_call_cancelling_itself_while_running_is_already_called() {
    let (_clock, mut reactor) = manual_reactor();
    let me: Rc<Cell<Option<DelayedCall>>> = Rc::new(Cell::new(None));
    let outcome = Rc::new(Cell::new(None));
    let (me2, outcome2) = (me.clone(), outcome.clone());
    me.set(Some(reactor.call_later(Duration::ZERO, move |r| {
        let call = me2.get().unwrap();
        outcome2.set(Some((call.active(r), call.cancel(r))));
    })));
    turn(&mut reactor);
    assert_eq!(outcome.get(), Some((false, Err(TimerError::AlreadyCalled))));
}

#[test]
fn a_call_can_cancel_a_later_one_due_in_the_same_turn() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let victim: Rc<Cell<Option<DelayedCall>>> = Rc::new(Cell::new(None));
    let v = victim.clone();
    reactor.call_later(secs(1), move |r| v.get().unwrap().cancel(r).unwrap());
    victim.set(Some(log_later(&mut reactor, secs(1), &log, "victim")));
    log_later(&mut reactor, secs(1), &log, "bystander");
    clock.advance(secs(1));
    turn(&mut reactor);
    assert_eq!(log.take(), ["bystander"]);
    assert_eq!(reactor.pending_calls(), 0);
}

#[test]
fn reset_reschedules_from_now() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let sooner = log_later(&mut reactor, secs(10), &log, "sooner");
    let later = log_later(&mut reactor, secs(2), &log, "later");
    clock.advance(secs(1));
    sooner.reset(&mut reactor, secs(3)).unwrap();
    later.reset(&mut reactor, secs(5)).unwrap();
    assert_eq!(sooner.get_time(&mut reactor), Ok(secs(4)));
    assert_eq!(later.get_time(&mut reactor), Ok(secs(6)));
    assert_eq!(
        reactor.pending_calls(),
        2,
        "reset does not duplicate a call"
    );

    clock.advance_to(secs(3));
    turn(&mut reactor);
    assert!(
        log.take().is_empty(),
        "later's old time (2s) has passed without it"
    );
    clock.advance_to(secs(4));
    turn(&mut reactor);
    assert_eq!(log.take(), ["sooner"]);
    clock.advance_to(secs(6));
    turn(&mut reactor);
    assert_eq!(log.take(), ["later"]);
}

#[test]
fn a_reset_call_goes_after_calls_already_due_at_its_new_time() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let moved = log_later(&mut reactor, secs(1), &log, "moved");
    log_later(&mut reactor, secs(2), &log, "first");
    moved.reset(&mut reactor, secs(2)).unwrap();
    log_later(&mut reactor, secs(2), &log, "last");
    clock.advance(secs(2));
    turn(&mut reactor);
    assert_eq!(log.take(), ["first", "moved", "last"]);
}

#[test]
fn delay_postpones_from_the_scheduled_time() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let call = log_later(&mut reactor, secs(10), &log, "a");
    clock.advance(secs(3));
    call.delay(&mut reactor, secs(5)).unwrap();
    assert_eq!(call.get_time(&mut reactor), Ok(secs(15)));
    clock.advance_to(secs(14));
    turn(&mut reactor);
    assert!(log.take().is_empty());
    assert!(call.active(&mut reactor));
    clock.advance_to(secs(15));
    turn(&mut reactor);
    assert_eq!(log.take(), ["a"]);
}

#[test]
fn a_stale_handle_never_touches_the_call_that_reuses_its_slot() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let old = log_later(&mut reactor, secs(1), &log, "old");
    clock.advance(secs(1));
    turn(&mut reactor);
    // The next call takes over the old one's storage.
    let new = log_later(&mut reactor, secs(1), &log, "new");
    assert_ne!(old, new);
    assert_eq!(old.cancel(&mut reactor), Err(TimerError::AlreadyCalled));
    assert!(!old.active(&mut reactor));
    assert!(new.active(&mut reactor));
    clock.advance(secs(1));
    turn(&mut reactor);
    assert_eq!(log.take(), ["old", "new"]);
    // Two occupants later, the reactor no longer knows what became of `old`.
    assert_eq!(old.cancel(&mut reactor), Err(TimerError::Expired));
    assert_eq!(new.cancel(&mut reactor), Err(TimerError::AlreadyCalled));
}

#[test]
fn a_zero_delay_call_scheduled_by_a_call_waits_for_the_next_turn() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let log2 = log.clone();
    reactor.call_later(Duration::ZERO, move |r| {
        log2.push("outer");
        let log3 = log2.clone();
        r.call_later(Duration::ZERO, move |_| log3.push("inner"));
    });
    turn(&mut reactor);
    assert_eq!(log.take(), ["outer"]);
    assert_eq!(reactor.pending_calls(), 1);
    turn(&mut reactor);
    assert_eq!(log.take(), ["inner"]);
}

#[test]
fn a_call_rescheduling_itself_runs_once_per_turn() {
    let (_clock, mut reactor) = manual_reactor();
    let count = Rc::new(Cell::new(0));

    fn again(r: &mut Reactor, count: Rc<Cell<u32>>) {
        count.set(count.get() + 1);
        if count.get() < 100 {
            r.call_later(Duration::ZERO, move |r| again(r, count));
        }
    }
    let c = count.clone();
    reactor.call_later(Duration::ZERO, move |r| again(r, c));
    for expected in 1..=5 {
        turn(&mut reactor);
        assert_eq!(count.get(), expected);
    }
}

#[test]
fn call_soon_from_call_soon_waits_for_the_next_turn() {
    let (_clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let log2 = log.clone();
    reactor.call_soon(move |r| {
        log2.push("outer");
        let log3 = log2.clone();
        r.call_soon(move |_| log3.push("inner"));
    });
    turn(&mut reactor);
    assert_eq!(log.take(), ["outer"]);
    turn(&mut reactor);
    assert_eq!(log.take(), ["inner"]);
}

#[test]
fn a_panicking_call_does_not_stop_later_calls() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    log_later(&mut reactor, secs(1), &log, "before");
    reactor.call_later(secs(1), |_| panic!("timer trouble"));
    log_later(&mut reactor, secs(1), &log, "after");
    log_later(&mut reactor, secs(2), &log, "next turn");
    clock.advance(secs(1));
    turn(&mut reactor);
    assert_eq!(log.take(), ["before", "after"]);
    clock.advance(secs(1));
    turn(&mut reactor);
    assert_eq!(log.take(), ["next turn"]);
    assert_eq!(reactor.pending_calls(), 0);
}

/// Schedules `n` calls one millisecond apart, cancels every other one, and runs the
/// rest in a single turn, checking their order.
fn many_timers(n: u64) {
    let (clock, mut reactor) = manual_reactor();
    let ran = Rc::new(RefCell::new(Vec::with_capacity(n as usize / 2)));
    let calls: Vec<DelayedCall> = (0..n)
        .map(|i| {
            let ran = ran.clone();
            // Scheduled in a shuffled order, so the queue really has to sort them.
            let when = (i * 7919) % n;
            reactor.call_later(Duration::from_millis(when), move |_| {
                ran.borrow_mut().push(when)
            })
        })
        .collect();
    assert_eq!(reactor.pending_calls(), n as usize);
    for call in calls.iter().step_by(2) {
        call.cancel(&mut reactor).unwrap();
    }
    assert_eq!(reactor.pending_calls(), (n / 2) as usize);

    clock.advance(Duration::from_millis(n / 2));
    turn(&mut reactor);
    let first_half = ran.borrow().len();
    assert!(first_half > 0 && first_half < (n / 2) as usize);
    assert_eq!(reactor.pending_calls(), (n / 2) as usize - first_half);

    clock.advance(Duration::from_millis(n));
    turn(&mut reactor);
    assert_eq!(reactor.pending_calls(), 0);
    let ran = ran.borrow();
    assert_eq!(ran.len(), (n / 2) as usize);
    assert!(ran.windows(2).all(|w| w[0] < w[1]), "run in deadline order");
    assert!(calls.iter().all(|c| !c.active(&mut reactor)));
}

/// About a second in a debug build.
#[test]
fn a_million_timers_half_cancelled() {
    many_timers(1_000_000);
}

#[test]
fn delaying_a_due_call_during_the_timer_step_holds_back_no_other_due_call() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let b = log_later(&mut reactor, secs(2), &log, "B");
    let a_log = log.clone();
    reactor.call_later(secs(1), move |r| {
        a_log.push("A".to_owned());
        b.delay(r, Duration::ZERO).unwrap();
    });
    log_later(&mut reactor, secs(3), &log, "C");
    clock.advance(secs(10));
    turn(&mut reactor);
    assert_eq!(log.take(), ["A", "B", "C"]);
}

#[test]
fn a_due_call_moved_earlier_during_the_timer_step_still_runs_in_it() {
    let (clock, mut reactor) = manual_reactor();
    let log = Log::new();
    let b = log_later(&mut reactor, secs(20), &log, "B");
    let a_log = log.clone();
    reactor.call_later(secs(1), move |r| {
        a_log.push("A".to_owned());
        // Due at 10 s, after C: it runs in this step, but C is not held back.
        b.reset(r, Duration::ZERO).unwrap();
    });
    log_later(&mut reactor, secs(3), &log, "C");
    let new_log = log.clone();
    reactor.call_later(secs(4), move |r| {
        let log = new_log.clone();
        r.call_later(Duration::ZERO, move |_| log.push("new".to_owned()));
    });
    clock.advance(secs(10));
    turn(&mut reactor);
    assert_eq!(log.take(), ["A", "C", "B"], "a call new in this step waits");
    turn(&mut reactor);
    assert_eq!(log.take(), ["new"]);
}

#[test]
fn a_delayed_call_is_refused_by_another_reactor() {
    let (clock, mut ours) = manual_reactor();
    let (_, mut theirs) = manual_reactor();
    let log = Log::new();
    // Same slot and generation in both reactors: only the reactor tells them apart.
    let our_call = log_later(&mut ours, secs(1), &log, "ours");
    let their_call = log_later(&mut theirs, secs(1), &log, "theirs");
    assert_eq!(our_call.cancel(&mut theirs), Err(TimerError::WrongReactor));
    assert_eq!(
        our_call.reset(&mut theirs, secs(5)),
        Err(TimerError::WrongReactor)
    );
    assert_eq!(
        our_call.delay(&mut theirs, secs(5)),
        Err(TimerError::WrongReactor)
    );
    assert_eq!(
        our_call.get_time(&mut theirs),
        Err(TimerError::WrongReactor)
    );
    assert!(!our_call.active(&mut theirs));
    assert!(their_call.active(&mut theirs));
    assert!(our_call.active(&mut ours));
    clock.advance(secs(1));
    turn(&mut ours);
    assert_eq!(log.take(), ["ours"]);
    assert_eq!(
        TimerError::WrongReactor.to_string(),
        "delayed call belongs to another reactor"
    );
}
