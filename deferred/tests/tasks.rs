//! Futures on the reactor: `ensure_deferred`, awaiting Deferreds, `with_reactor`, wakes
//! from the reactor's thread and from other threads, cancellation, and failures that
//! keep the places they passed.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use deferred::{
    catch_unhandled, defer_later, ensure_deferred, gather_results, succeed, with_reactor, Deferred,
    DeferredError, Failure,
};
use reactor::{ManualClock, Reactor};

fn manual() -> (Reactor, ManualClock) {
    let clock = ManualClock::new();
    (Reactor::with_clock(clock.clone()).unwrap(), clock)
}

/// Turns until nothing is due (bounded).
fn settle(reactor: &mut Reactor) {
    for _ in 0..100 {
        reactor.iterate(Some(Duration::ZERO)).unwrap();
        if !reactor.has_pending_work() {
            return;
        }
    }
    panic!("the reactor did not settle");
}

#[test]
fn a_future_that_never_waits_completes_inside_ensure_deferred() {
    let _guard = catch_unhandled();
    let (mut reactor, _) = manual();
    let mut d = ensure_deferred(&mut reactor, async {
        let a = succeed(20).await?; // a fired Deferred is ready on the first poll
        Ok::<_, Failure>(a + 1)
    });
    assert_eq!(
        d.take_result().unwrap().unwrap(),
        21,
        "run at once, as ensureDeferred does"
    );
}

#[test]
fn an_awaited_deferred_fired_on_the_reactor_thread_resumes_the_task_next_turn() {
    let _guard = catch_unhandled();
    let (mut reactor, _) = manual();
    let (inner, resolver) = Deferred::<&str>::new();
    let steps = Rc::new(RefCell::new(Vec::new()));
    let s = steps.clone();
    let mut d = ensure_deferred(&mut reactor, async move {
        s.borrow_mut().push("started");
        let word = inner.await?;
        s.borrow_mut().push(word);
        Ok::<_, Failure>(word.len())
    });
    assert_eq!(*steps.borrow(), ["started"]);
    reactor.call_soon(move |_| resolver.callback("resumed").unwrap());
    reactor.iterate(Some(Duration::ZERO)).unwrap(); // fires; the wake queues the task
    assert!(
        reactor.has_pending_work(),
        "woken without a system call: due next turn"
    );
    // The poll must not wait: the local queue says there is work.
    let start = Instant::now();
    reactor.iterate(Some(Duration::from_secs(30))).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(*steps.borrow(), ["started", "resumed"]);
    assert_eq!(d.take_result().unwrap().unwrap(), 7);
}

#[test]
fn with_reactor_lets_a_task_schedule_calls_and_sleep_on_the_clock() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let mut d = ensure_deferred(&mut reactor, async {
        let mut ticks = Vec::new();
        for i in 0..3u64 {
            let nap = with_reactor(move |r| {
                defer_later(r, Duration::from_secs(1), move || Ok::<_, Failure>(i))
            })
            .await?;
            ticks.push(nap.await?);
        }
        let now = with_reactor(|r| r.now()).await?;
        Ok::<_, Failure>((ticks, now))
    });
    for _ in 0..3 {
        settle(&mut reactor);
        clock.advance(Duration::from_secs(1));
    }
    settle(&mut reactor);
    let (ticks, now) = d.take_result().unwrap().unwrap();
    assert_eq!(ticks, [0, 1, 2]);
    assert_eq!(now, Duration::from_secs(3));
}

#[test]
fn with_reactor_outside_the_executor_is_an_error_not_a_panic() {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut call = std::pin::pin!(with_reactor(|r| r.now()));
    match call.as_mut().poll(&mut cx) {
        Poll::Ready(Err(failure)) => {
            assert_eq!(failure.downcast_ref(), Some(&DeferredError::NotOnReactor));
        }
        other => panic!("expected NotOnReactor, got {:?}", other.map(|r| r.is_ok())),
    }
}

/// A future completed by another thread: the shape of any cross-thread wake.
struct FromThread {
    shared: Arc<Mutex<(Option<u64>, Option<Waker>)>>,
}

impl Future for FromThread {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut shared = self.shared.lock().unwrap();
        match shared.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                shared.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[test]
fn a_task_woken_from_another_thread_resumes_on_the_reactor() {
    let _guard = catch_unhandled();
    let mut reactor = Reactor::new().unwrap();
    let shared = Arc::new(Mutex::new((None, None::<Waker>)));
    let future = FromThread {
        shared: shared.clone(),
    };
    let mut d = ensure_deferred(
        &mut reactor,
        async move { Ok::<_, Failure>(future.await * 2) },
    );
    assert!(!d.has_result());
    let worker = std::thread::spawn(move || {
        let waker = loop {
            if let Some(w) = shared.lock().unwrap().1.take() {
                break w;
            }
            std::thread::yield_now();
        };
        shared.lock().unwrap().0 = Some(21);
        waker.wake(); // not the reactor's thread: goes through call_from_thread
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.has_result() && Instant::now() < deadline {
        reactor.iterate(Some(Duration::from_millis(100))).unwrap();
    }
    worker.join().unwrap();
    assert_eq!(d.take_result().unwrap().unwrap(), 42);
}

#[test]
fn a_failure_crossing_awaits_keeps_every_place_it_passed() {
    let _guard = catch_unhandled();
    let (mut reactor, _) = manual();
    async fn innermost(d: Deferred<u8>) -> Result<u8, Failure> {
        d.await // passed here
    }
    async fn middle(d: Deferred<u8>) -> Result<u8, Failure> {
        let v = innermost(d).await?; // `?` on a Failure keeps it as it is
        Ok(v)
    }
    let (inner, resolver) = Deferred::new();
    let mut d = ensure_deferred(&mut reactor, middle(inner));
    let made_at = line!() + 1;
    resolver.errback(Failure::msg("deep")).unwrap();
    settle(&mut reactor);
    let failure = d.take_result().unwrap().unwrap_err();
    assert_eq!(failure.origin().line(), made_at);
    assert!(
        failure.trail().len() >= 2,
        "the await and the task: {:?}",
        failure.trail()
    );
    assert!(failure
        .trail()
        .iter()
        .all(|l| l.file().ends_with("tasks.rs")));
    assert!(failure.report().contains("passed"));
}

struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn cancelling_a_task_cancels_what_it_awaits_and_drops_it_at_once() {
    let guard = catch_unhandled();
    let (mut reactor, _) = manual();
    let inner_cancelled = Rc::new(Cell::new(false));
    let flag = inner_cancelled.clone();
    let (inner, _keep) = Deferred::<u8>::with_canceller(move |_| flag.set(true));
    let dropped = Rc::new(Cell::new(false));
    let witness = DropFlag(dropped.clone());
    let mut d = ensure_deferred(&mut reactor, async move {
        let _witness = witness;
        inner.await
    });
    d.cancel();
    assert!(
        inner_cancelled.get(),
        "the awaited Deferred's canceller ran"
    );
    assert!(dropped.get(), "the future was dropped by cancel, not later");
    assert!(d.take_result().unwrap().unwrap_err().is_cancelled());
    settle(&mut reactor);
    assert!(
        guard.take().is_empty(),
        "the awaited Deferred's cancellation is not unhandled"
    );
}

#[test]
fn a_panicking_task_fails_its_deferred() {
    let _guard = catch_unhandled();
    let (mut reactor, _) = manual();
    let (inner, resolver) = Deferred::<u8>::new();
    let mut d = ensure_deferred(&mut reactor, async move {
        let v = inner.await?;
        if v > 0 {
            panic!("task bug");
        }
        Ok::<_, Failure>(v)
    });
    resolver.callback(1).unwrap();
    settle(&mut reactor);
    let failure = d.take_result().unwrap().unwrap_err();
    assert_eq!(
        failure.downcast_ref(),
        Some(&DeferredError::Panicked("task bug".into()))
    );
}

#[test]
fn a_detached_task_runs_on_and_its_failure_is_reported() {
    let guard = catch_unhandled();
    let (mut reactor, _) = manual();
    let (inner, resolver) = Deferred::<u8>::new();
    drop(ensure_deferred(&mut reactor, async move {
        inner.await?;
        Err::<(), _>(Failure::msg("detached and failed"))
    }));
    resolver.callback(1).unwrap();
    settle(&mut reactor);
    let reported = guard.take();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].to_string(), "detached and failed");
}

#[test]
fn many_tasks_gathered_from_inside_a_task() {
    let _guard = catch_unhandled();
    let (mut reactor, clock) = manual();
    let mut d = ensure_deferred(&mut reactor, async {
        let naps = with_reactor(|r| {
            (1..=5u64)
                .map(|i| defer_later(r, Duration::from_secs(i), move || Ok::<_, Failure>(i)))
                .collect::<Vec<_>>()
        })
        .await?;
        let all = gather_results(naps).await?;
        Ok::<_, Failure>(all.iter().sum::<u64>())
    });
    clock.advance(Duration::from_secs(5));
    settle(&mut reactor);
    assert_eq!(d.take_result().unwrap().unwrap(), 15);
}

#[test]
fn a_task_asking_for_the_reactor_in_a_loop_yields_to_the_next_turn() {
    let _guard = catch_unhandled();
    let (mut reactor, _) = manual();
    let mut d = ensure_deferred(&mut reactor, async {
        for _ in 0..1000 {
            with_reactor(|_| ()).await?;
        }
        Ok::<_, Failure>(())
    });
    let mut turns = 0;
    while !d.has_result() && turns < 100 {
        reactor.iterate(Some(Duration::ZERO)).unwrap();
        turns += 1;
    }
    assert!(d.take_result().unwrap().is_ok());
    assert!(
        turns > 1,
        "a thousand reactor calls are spread over several turns"
    );
}
