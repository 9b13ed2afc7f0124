//! `DeferredList` and `gather_results` (Part 18): the options of Twisted's, and
//! cancelling the losers (twisted#9329).

use deferred::{
    catch_unhandled, fail, gather_results, succeed, Deferred, DeferredList, Failure, FirstError,
    ListResult,
};

fn pending(n: usize) -> (Vec<Deferred<u32>>, Vec<deferred::Resolver<u32>>) {
    (0..n).map(|_| Deferred::new()).unzip()
}

#[test]
fn it_fires_with_every_result_in_the_order_given_once_all_fired() {
    let _guard = catch_unhandled();
    let (ds, rs) = pending(3);
    let mut list = DeferredList::new(ds).build();
    rs[2].callback(2).unwrap();
    rs[0].errback(Failure::msg("zero failed")).unwrap();
    assert!(!list.has_result());
    rs[1].callback(1).unwrap();
    let ListResult::All(results) = list.take_result().unwrap().unwrap() else {
        panic!("not fire_on_one_callback")
    };
    assert_eq!(results[0].as_ref().unwrap_err().to_string(), "zero failed");
    assert_eq!(*results[1].as_ref().unwrap(), 1);
    assert_eq!(*results[2].as_ref().unwrap(), 2);
}

#[test]
fn an_empty_list_fires_at_once() {
    let _guard = catch_unhandled();
    let mut list = DeferredList::<u8>::new([]).build();
    assert!(matches!(list.take_result(), Some(Ok(ListResult::All(v))) if v.is_empty()));
}

#[test]
fn fire_on_one_callback_fires_with_the_first_value_and_its_index() {
    let _guard = catch_unhandled();
    let (ds, rs) = pending(3);
    let mut list = DeferredList::new(ds)
        .fire_on_one_callback()
        .consume_errors()
        .build();
    rs[0].errback(Failure::msg("no")).unwrap();
    rs[2].callback(22).unwrap();
    assert!(matches!(
        list.take_result(),
        Some(Ok(ListResult::First {
            index: 2,
            value: 22
        }))
    ));
    rs[1].callback(11).unwrap(); // after the list fired: ignored
}

#[test]
fn fire_on_one_callback_with_no_success_fires_with_everything() {
    let _guard = catch_unhandled();
    let list = DeferredList::new([fail::<u8>(Failure::msg("a")), fail(Failure::msg("b"))]);
    let mut list = list.fire_on_one_callback().build();
    let ListResult::All(results) = list.take_result().unwrap().unwrap() else {
        panic!("nothing succeeded")
    };
    assert!(results.iter().all(Result::is_err));
}

#[test]
fn fire_on_one_errback_fails_with_the_first_failure_and_its_index() {
    let _guard = catch_unhandled();
    let (ds, rs) = pending(3);
    let mut list = DeferredList::new(ds)
        .fire_on_one_errback()
        .consume_errors()
        .build();
    rs[0].callback(0).unwrap();
    rs[1].errback(Failure::msg("one failed")).unwrap();
    let failure = list.take_result().unwrap().unwrap_err();
    let first = failure.trap::<FirstError>().unwrap();
    assert_eq!(first.index, 1);
    assert_eq!(first.failure.to_string(), "one failed");
    rs[2].errback(Failure::msg("consumed")).unwrap();
}

#[test]
fn without_consume_errors_a_failure_the_list_does_not_hand_on_is_reported() {
    let guard = catch_unhandled();
    let (ds, rs) = pending(2);
    let mut list = DeferredList::new(ds).fire_on_one_errback().build();
    rs[0].errback(Failure::msg("first")).unwrap();
    drop(list.take_result());
    rs[1]
        .errback(Failure::msg("second, after the list fired"))
        .unwrap();
    let reported = guard.take();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].to_string(), "second, after the list fired");
}

#[test]
fn cancel_losers_cancels_the_pending_ones_when_the_list_fires_early() {
    let _guard = catch_unhandled();
    let (ds, rs) = pending(3);
    let mut list = DeferredList::new(ds)
        .fire_on_one_callback()
        .cancel_losers()
        .build();
    rs[1].callback(5).unwrap();
    assert!(matches!(
        list.take_result(),
        Some(Ok(ListResult::First { index: 1, value: 5 }))
    ));
    assert!(
        rs[0].is_called() && rs[2].is_called(),
        "the losers were cancelled"
    );
}

#[test]
fn cancel_losers_also_reaches_deferreds_after_an_already_fired_winner() {
    let _guard = catch_unhandled();
    let (late, late_r) = Deferred::<u32>::new();
    let list = DeferredList::new([succeed(1), late])
        .fire_on_one_callback()
        .cancel_losers();
    let mut list = list.build();
    assert!(matches!(
        list.take_result(),
        Some(Ok(ListResult::First { index: 0, value: 1 }))
    ));
    assert!(late_r.is_called());
}

#[test]
fn cancelling_the_list_cancels_every_deferred_in_it() {
    let _guard = catch_unhandled();
    let (ds, rs) = pending(2);
    let mut list = DeferredList::new(ds).build();
    list.cancel();
    assert!(rs.iter().all(deferred::Resolver::is_called));
    let ListResult::All(results) = list.take_result().unwrap().unwrap() else {
        panic!("all results")
    };
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_err_and(Failure::is_cancelled)));
}

#[test]
fn gather_results_gives_the_values_in_order_or_the_first_failure() {
    let _guard = catch_unhandled();
    let (ds, rs) = pending(2);
    let mut all = gather_results(ds);
    rs[1].callback(1).unwrap();
    rs[0].callback(0).unwrap();
    assert_eq!(all.take_result().unwrap().unwrap(), vec![0, 1]);

    let (ds, rs) = pending(2);
    let mut failed = DeferredList::new(ds)
        .consume_errors()
        .cancel_losers()
        .gather();
    rs[0].errback(Failure::msg("broken")).unwrap();
    let first = failed
        .take_result()
        .unwrap()
        .unwrap_err()
        .trap::<FirstError>()
        .unwrap();
    assert_eq!(
        (first.index, first.failure.to_string()),
        (0, "broken".to_owned())
    );
    assert!(rs[1].is_called(), "the other was cancelled");
}
