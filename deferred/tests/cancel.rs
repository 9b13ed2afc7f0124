//! Cancellation (Part 19), after `test_defer.py`'s cancellation cases, and the
//! canceller that panics (twisted#6676).

use std::cell::Cell;
use std::rc::Rc;

use deferred::{catch_unhandled, Deferred, DeferredError, Failure};

fn cancelled<T: 'static>(d: &mut Deferred<T>) -> bool {
    d.take_result()
        .is_some_and(|r| r.is_err_and(|f| f.is_cancelled()))
}

#[test]
fn without_a_canceller_cancel_fails_it_and_absorbs_one_late_firing() {
    let _guard = catch_unhandled();
    let (mut d, r) = Deferred::<u8>::new();
    d.cancel();
    assert!(cancelled(&mut d));
    assert_eq!(
        r.callback(1),
        Ok(()),
        "the source's late firing is absorbed"
    );
    assert_eq!(
        r.callback(2),
        Err(DeferredError::AlreadyCalled),
        "only once"
    );
}

#[test]
fn a_canceller_that_fires_the_deferred_decides_the_result() {
    let _guard = catch_unhandled();
    let (d, _r) = Deferred::<&str>::with_canceller(|r| {
        r.callback("stopped early").unwrap();
    });
    let mut d = d.add_callback(|s| Ok::<_, Failure>(s.len()));
    d.cancel();
    assert_eq!(d.take_result().unwrap().unwrap(), 13);
}

#[test]
fn a_canceller_that_does_not_fire_leaves_cancelled_and_late_firings_are_errors() {
    let _guard = catch_unhandled();
    let ran = Rc::new(Cell::new(0));
    let seen = ran.clone();
    let (mut d, r) = Deferred::<u8>::with_canceller(move |_| seen.set(seen.get() + 1));
    d.cancel();
    d.cancel(); // idempotent: the canceller runs once
    assert_eq!(ran.get(), 1);
    assert!(cancelled(&mut d));
    assert_eq!(r.callback(1), Err(DeferredError::AlreadyCalled));
}

#[test]
fn a_panicking_canceller_still_cancels() {
    let _guard = catch_unhandled();
    let (mut d, _r) = Deferred::<u8>::with_canceller(|_| panic!("canceller bug"));
    d.cancel();
    assert!(
        cancelled(&mut d),
        "twisted#6676: cancellation happens anyway"
    );
}

#[test]
fn cancelling_a_fired_deferred_does_nothing() {
    let _guard = catch_unhandled();
    let (mut d, r) = Deferred::<u8>::with_canceller(|_| unreachable!("not called once fired"));
    r.callback(4).unwrap();
    d.cancel();
    assert_eq!(d.take_result().unwrap().unwrap(), 4);
}

#[test]
fn cancelling_a_chain_that_waits_on_a_returned_deferred_cancels_that_one() {
    let _guard = catch_unhandled();
    let inner_cancelled = Rc::new(Cell::new(false));
    let flag = inner_cancelled.clone();
    let (inner, _inner_r) = Deferred::<String>::with_canceller(move |_| flag.set(true));
    let (outer, outer_r) = Deferred::<u8>::new();
    let mut outer = outer.add_callback(move |_| inner).add_errback(|f| {
        assert!(f.is_cancelled());
        Ok::<_, Failure>("recovered".to_owned())
    });
    outer_r.callback(1).unwrap();
    outer.cancel();
    assert!(inner_cancelled.get());
    assert_eq!(outer.take_result().unwrap().unwrap(), "recovered");
}

#[test]
fn cancelling_follows_nested_waits_to_the_innermost() {
    let _guard = catch_unhandled();
    let (innermost, _r) = Deferred::<u8>::new();
    let mut d = innermost;
    for _ in 0..1000 {
        let inner = d;
        d = deferred::succeed(()).add_callback(move |()| inner);
    }
    d.cancel();
    assert!(cancelled(&mut d));
}

#[test]
fn the_cancel_failure_points_at_the_cancel() {
    let _guard = catch_unhandled();
    let (mut d, _r) = Deferred::<u8>::new();
    let line = line!() + 1;
    d.cancel();
    let failure = d.take_result().unwrap().unwrap_err();
    assert_eq!(failure.origin().line(), line);
}
