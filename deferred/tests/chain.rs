//! The callback chain, after the cases of Twisted's `test_defer.py`: ordering, switching
//! between callbacks and errbacks, firing twice, callbacks added after firing, chaining
//! and pausing, deep chains.

use std::cell::RefCell;
use std::rc::Rc;

use deferred::{catch_unhandled, fail, succeed, Deferred, DeferredError, Failure};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::default()
}

fn note(log: &Log, what: impl Into<String>) {
    log.borrow_mut().push(what.into());
}

fn seen(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

#[test]
fn callbacks_run_in_order_each_getting_the_previous_result() {
    let _guard = catch_unhandled();
    let (d, r) = Deferred::<u32>::new();
    let trace = log();
    let (t1, t2) = (trace.clone(), trace.clone());
    let mut d = d
        .add_callback(move |x| {
            note(&t1, format!("first {x}"));
            Ok::<_, Failure>(x + 1)
        })
        .add_callback(move |x| {
            note(&t2, format!("second {x}"));
            Ok::<_, Failure>(format!("<{x}>"))
        });
    assert!(
        trace.borrow().is_empty(),
        "nothing runs before the Deferred fires"
    );
    assert!(!d.is_called());
    r.callback(1).unwrap();
    assert_eq!(seen(&trace), ["first 1", "second 2"]);
    assert!(d.is_called());
    assert_eq!(d.take_result().unwrap().unwrap(), "<2>");
}

#[test]
fn a_failing_callback_switches_to_errbacks_and_a_recovering_errback_switches_back() {
    let _guard = catch_unhandled();
    let trace = log();
    let (t1, t2, t3, t4) = (trace.clone(), trace.clone(), trace.clone(), trace.clone());
    let (d, r) = Deferred::<i32>::new();
    let mut d = d
        .add_callback(move |x| {
            note(&t1, "cb1");
            if x < 0 {
                Err(Failure::msg("negative"))
            } else {
                Ok(x)
            }
        })
        .add_callback(move |x| {
            note(&t2, "cb2 (skipped)");
            Ok::<_, Failure>(x)
        })
        .add_errback(move |f| {
            note(&t3, format!("eb: {f}"));
            Ok::<_, Failure>(0)
        })
        .add_callback(move |x| {
            note(&t4, format!("cb3 {x}"));
            Ok::<_, Failure>(x + 10)
        });
    r.callback(-5).unwrap();
    assert_eq!(seen(&trace), ["cb1", "eb: negative", "cb3 0"]);
    assert_eq!(d.take_result().unwrap().unwrap(), 10);
}

#[test]
fn add_callbacks_runs_exactly_one_of_its_pair() {
    let _guard = catch_unhandled();
    let mut ok = succeed(2).add_callbacks(
        |x| Err::<i32, _>(Failure::msg(format!("callback saw {x}"))),
        |_| Ok(-1),
    );
    // The errback of the same pair does not see the callback's failure.
    let failure = ok.take_result().unwrap().unwrap_err();
    assert_eq!(failure.to_string(), "callback saw 2");
    let mut bad =
        fail::<i32>(Failure::msg("x")).add_callbacks(Ok, |f| Ok(f.to_string().len() as i32));
    assert_eq!(bad.take_result().unwrap().unwrap(), 1);
}

#[test]
fn add_both_sees_values_and_failures() {
    let _guard = catch_unhandled();
    let describe = |r: Result<u8, Failure>| Ok::<_, Failure>(format!("{r:?}").starts_with("Ok"));
    assert!(succeed(1u8)
        .add_both(describe)
        .take_result()
        .unwrap()
        .unwrap());
    assert!(!fail::<u8>(Failure::msg("no"))
        .add_both(describe)
        .take_result()
        .unwrap()
        .unwrap());
}

#[test]
fn a_panicking_callback_becomes_a_failure() {
    let _guard = catch_unhandled();
    let mut d = succeed(1).add_callback(|_: i32| -> Result<i32, Failure> { panic!("boom") });
    let failure = d.take_result().unwrap().unwrap_err();
    assert_eq!(
        failure.downcast_ref::<DeferredError>(),
        Some(&DeferredError::Panicked("boom".into()))
    );
    assert!(
        failure.origin().file().ends_with("chain.rs"),
        "the failure points at the callback's place"
    );
}

#[test]
fn firing_twice_is_already_called() {
    let _guard = catch_unhandled();
    let (mut d, r) = Deferred::<u8>::new();
    r.callback(1).unwrap();
    assert_eq!(r.callback(2), Err(DeferredError::AlreadyCalled));
    assert_eq!(
        r.clone().errback(Failure::msg("late")),
        Err(DeferredError::AlreadyCalled)
    );
    assert_eq!(d.take_result().unwrap().unwrap(), 1);
}

#[test]
fn callbacks_added_after_firing_run_at_once() {
    let _guard = catch_unhandled();
    let trace = log();
    let t = trace.clone();
    let d = succeed("now").add_callback(move |s| {
        note(&t, s);
        Ok::<_, Failure>(())
    });
    assert_eq!(seen(&trace), ["now"]);
    drop(d);
}

#[test]
fn a_returned_deferred_pauses_the_outer_chain_until_it_fires() {
    let _guard = catch_unhandled();
    let trace = log();
    let (inner, inner_r) = Deferred::<String>::new();
    let t = trace.clone();
    let (d, r) = Deferred::<u32>::new();
    let mut d = d
        .add_callback(move |_| inner) // Deferred "all the way down"
        .add_callback(move |s| {
            note(&t, format!("outer got {s}"));
            Ok::<_, Failure>(s.len())
        });
    r.callback(7).unwrap();
    assert!(
        trace.borrow().is_empty(),
        "the outer chain waits for the inner one"
    );
    assert!(!d.has_result());
    inner_r.callback("poem".into()).unwrap();
    assert_eq!(seen(&trace), ["outer got poem"]);
    assert_eq!(d.take_result().unwrap().unwrap(), 4);
}

#[test]
fn an_already_fired_inner_deferred_continues_at_once_and_failures_cross_over() {
    let _guard = catch_unhandled();
    let mut d = succeed(1)
        .add_callback(|_| fail::<u8>(Failure::msg("inner")))
        .add_errback(|f| {
            assert_eq!(f.to_string(), "inner");
            Ok::<_, Failure>(9)
        });
    assert_eq!(d.take_result().unwrap().unwrap(), 9);
}

#[test]
fn a_callback_returning_its_own_deferred_fails_instead_of_hanging() {
    // Only reachable by smuggling the chain's own handle into it through a cell.
    let guard = catch_unhandled();
    let slot: Rc<RefCell<Option<Deferred<u8>>>> = Rc::default();
    let (d, r) = Deferred::<u8>::new();
    let s = slot.clone();
    let d = d.add_callback(move |_| {
        s.borrow_mut()
            .take()
            .unwrap_or_else(|| fail(Failure::msg("empty")))
    });
    *slot.borrow_mut() = Some(d);
    r.callback(1).unwrap();
    drop(r); // the chain's last owner: its failure can no longer be handled
    let reported = guard.take();
    assert_eq!(reported.len(), 1);
    assert_eq!(
        reported[0].downcast_ref::<DeferredError>(),
        Some(&DeferredError::ReturnedItself)
    );
}

#[test]
fn pause_holds_the_chain_and_unpause_releases_it() {
    let _guard = catch_unhandled();
    let trace = log();
    let t = trace.clone();
    let (d, r) = Deferred::<u8>::new();
    d.pause();
    d.pause();
    let mut d = d.add_callback(move |x| {
        note(&t, format!("ran {x}"));
        Ok::<_, Failure>(x)
    });
    r.callback(3).unwrap();
    assert!(trace.borrow().is_empty());
    d.unpause();
    assert!(trace.borrow().is_empty(), "paused twice, unpaused once");
    d.unpause();
    assert_eq!(seen(&trace), ["ran 3"]);
    assert_eq!(d.take_result().unwrap().unwrap(), 3);
}

#[test]
fn chain_deferred_fires_the_other_and_continues_with_unit() {
    let _guard = catch_unhandled();
    let (other, other_r) = Deferred::<u8>::new();
    let mut first = succeed(5u8).chain_deferred(&other_r);
    assert_eq!(first.take_result().unwrap().unwrap(), ());
    let mut other = other;
    assert_eq!(other.take_result().unwrap().unwrap(), 5);
    // chaining into a fired Deferred fails the first chain, as AlreadyCalledError does
    let mut again = succeed(6u8).chain_deferred(&other_r);
    let failure = again.take_result().unwrap().unwrap_err();
    assert_eq!(
        failure.trap::<DeferredError>().unwrap(),
        DeferredError::AlreadyCalled
    );
}

const DEEP: usize = 100_000;

#[test]
fn a_hundred_thousand_callbacks_run_without_recursion() {
    let _guard = catch_unhandled();
    let (mut d, r) = Deferred::<usize>::new();
    for _ in 0..DEEP {
        d = d.add_callback(|x| Ok::<_, Failure>(x + 1));
    }
    r.callback(0).unwrap();
    assert_eq!(d.take_result().unwrap().unwrap(), DEEP);
}

#[test]
fn a_hundred_thousand_nested_returned_deferreds_unwind_without_recursion() {
    // Each chain waits on the next one's; the innermost fires last.
    let _guard = catch_unhandled();
    let (innermost, fire) = Deferred::<usize>::new();
    let mut d = innermost;
    for _ in 0..DEEP {
        let inner = d;
        d = succeed(())
            .add_callback(move |()| inner)
            .add_callback(|x| Ok::<_, Failure>(x + 1));
    }
    fire.callback(0).unwrap();
    assert_eq!(d.take_result().unwrap().unwrap(), DEEP);
}

#[test]
fn a_hundred_thousand_chain_deferred_links_run_without_recursion() {
    let _guard = catch_unhandled();
    let (first, fire) = Deferred::<u64>::new();
    let mut tails = Vec::with_capacity(DEEP);
    let mut prev = first;
    for _ in 0..DEEP {
        let (next, next_r) = Deferred::<u64>::new();
        tails.push(prev.chain_deferred(&next_r));
        prev = next;
    }
    fire.callback(42).unwrap();
    assert_eq!(prev.take_result().unwrap().unwrap(), 42);
    assert!(tails.iter().all(Deferred::has_result));
}

#[test]
fn a_failure_dropped_unhandled_is_reported_at_the_drop_with_its_origin() {
    let guard = catch_unhandled();
    let line = line!() + 1;
    let d = fail::<u8>(Failure::msg("lost"));
    assert!(guard.take().is_empty(), "held: not yet unhandled");
    drop(d);
    let reported = guard.take();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].origin().line(), line);
    assert!(reported[0].report().contains("chain.rs"));
}

#[test]
fn a_failure_arriving_after_the_handle_was_dropped_is_reported_when_it_arrives() {
    let guard = catch_unhandled();
    let (d, r) = Deferred::<u8>::new();
    drop(d.add_callback(Ok::<_, Failure>));
    assert!(guard.take().is_empty());
    r.errback(Failure::msg("too late to handle")).unwrap();
    let reported = guard.take();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].to_string(), "too late to handle");
}

#[test]
fn handled_failures_and_values_are_never_reported() {
    let guard = catch_unhandled();
    drop(fail::<u8>(Failure::msg("handled")).add_errback(|_| Ok::<_, Failure>(0)));
    drop(succeed(1));
    let (d, r) = Deferred::<u8>::new();
    drop(d);
    r.callback(1).unwrap();
    assert!(guard.take().is_empty());
}

#[test]
#[should_panic(expected = "unhandled error(s) in Deferred")]
fn the_test_hook_fails_a_test_that_leaves_a_failure_unhandled() {
    let _guard = catch_unhandled();
    drop(fail::<u8>(Failure::msg("forgotten")));
}
