//! Deferreds on the reactor's clock: `defer_later` and `add_timeout`, on a manual clock.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use deferred::{catch_unhandled, defer_later, Deferred, DeferredError, Failure};
use reactor::{ManualClock, Reactor};

fn manual() -> (Reactor, ManualClock) {
    let clock = ManualClock::new();
    (Reactor::with_clock(clock.clone()).unwrap(), clock)
}

fn turn(reactor: &mut Reactor) {
    reactor.iterate(Some(Duration::ZERO)).unwrap();
}

#[test]
fn defer_later_fires_after_its_delay_and_not_before() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let mut d = defer_later(&mut reactor, Duration::from_secs(2), || Ok::<_, Failure>(7));
    clock.advance(Duration::from_millis(1999));
    turn(&mut reactor);
    assert!(!d.has_result());
    clock.advance(Duration::from_millis(1));
    turn(&mut reactor);
    assert_eq!(d.take_result().unwrap().unwrap(), 7);
}

#[test]
fn defer_later_passes_on_a_deferred_or_a_panic() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let (inner, inner_r) = Deferred::<u8>::new();
    let mut chained = defer_later(&mut reactor, Duration::from_secs(1), move || inner);
    let mut panicked = defer_later(
        &mut reactor,
        Duration::from_secs(1),
        || -> Result<u8, Failure> { panic!("in f") },
    );
    clock.advance(Duration::from_secs(1));
    turn(&mut reactor);
    assert!(!chained.has_result());
    inner_r.callback(3).unwrap();
    assert_eq!(chained.take_result().unwrap().unwrap(), 3);
    let failure = panicked.take_result().unwrap().unwrap_err();
    assert_eq!(
        failure.downcast_ref(),
        Some(&DeferredError::Panicked("in f".into()))
    );
}

#[test]
fn cancelling_defer_later_cancels_the_call() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let mut d = defer_later(&mut reactor, Duration::from_secs(5), move || {
        r.set(true);
        Ok::<_, Failure>(())
    });
    d.cancel();
    assert!(d.take_result().unwrap().unwrap_err().is_cancelled());
    turn(&mut reactor);
    assert_eq!(reactor.pending_calls(), 0, "the delayed call is gone");
    clock.advance(Duration::from_secs(10));
    turn(&mut reactor);
    assert!(!ran.get());
}

#[test]
fn add_timeout_times_out_with_timed_out() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let (d, r) = Deferred::<u8>::new();
    let mut d = d.add_timeout(&mut reactor, Duration::from_secs(3));
    clock.advance(Duration::from_secs(3));
    turn(&mut reactor);
    let failure = d.take_result().unwrap().unwrap_err();
    assert_eq!(
        failure.downcast_ref(),
        Some(&DeferredError::TimedOut(Duration::from_secs(3)))
    );
    assert_eq!(
        r.callback(1),
        Ok(()),
        "the source's late answer is absorbed"
    );
}

#[test]
fn add_timeout_is_disarmed_when_the_deferred_fires_first() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let (d, r) = Deferred::<u8>::new();
    let mut d = d.add_timeout(&mut reactor, Duration::from_secs(3));
    r.callback(9).unwrap();
    assert_eq!(d.take_result().unwrap().unwrap(), 9);
    turn(&mut reactor);
    assert_eq!(reactor.pending_calls(), 0, "the timer was cancelled");
    clock.advance(Duration::from_secs(5));
    turn(&mut reactor);
}

#[test]
fn add_timeout_times_out_even_when_the_canceller_panics() {
    // twisted#9534: a raising canceller meant the Deferred never timed out.
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let (d, _r) = Deferred::<u8>::with_canceller(|_| panic!("canceller bug"));
    let mut d = d.add_timeout(&mut reactor, Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    turn(&mut reactor);
    let failure = d.take_result().unwrap().unwrap_err();
    assert_eq!(
        failure.downcast_ref(),
        Some(&DeferredError::TimedOut(Duration::from_secs(1)))
    );
}

#[test]
fn a_canceller_that_fires_its_own_answer_wins_over_the_timeout() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let (d, _r) = Deferred::<&str>::with_canceller(|r| r.callback("partial").unwrap());
    let mut d = d.add_timeout(&mut reactor, Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    turn(&mut reactor);
    assert_eq!(d.take_result().unwrap().unwrap(), "partial");
}
