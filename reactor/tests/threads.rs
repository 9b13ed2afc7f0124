//! Reaching the reactor from other threads: `ReactorHandle::call_from_thread`
//! (Twisted's `callFromThread`).

mod util;

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reactor::{ReactorError, ReactorHandle};
use util::{manual_reactor, run_bounded, turn};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn the_handle_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<ReactorHandle>();
}

#[test]
fn calls_from_many_threads_all_arrive_in_per_thread_order() {
    const THREADS: usize = 8;
    const CALLS: usize = 1_000;

    // A manual clock and no timers: between calls the reactor blocks in poll with no
    // timeout, so every call has to wake it.
    let (_clock, mut reactor) = manual_reactor();
    let received = Arc::new(Mutex::new(Vec::with_capacity(THREADS * CALLS)));
    let start = Arc::new(Barrier::new(THREADS));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (handle, received, start) = (reactor.handle(), received.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for i in 0..CALLS {
                    let received = received.clone();
                    handle
                        .call_from_thread(move |r| {
                            let mut received = received.lock().unwrap();
                            received.push((t, i));
                            if received.len() == THREADS * CALLS {
                                r.stop();
                            }
                        })
                        .expect("reactor alive");
                }
            })
        })
        .collect();

    let (result, watchdog) = run_bounded(&mut reactor, LIMIT);
    for sender in senders {
        sender.join().unwrap();
    }
    result.unwrap();
    assert!(!watchdog, "calls went missing");

    let received = received.lock().unwrap();
    assert_eq!(received.len(), THREADS * CALLS);
    for t in 0..THREADS {
        let from_t: Vec<usize> = received
            .iter()
            .filter(|(sender, _)| *sender == t)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(from_t, (0..CALLS).collect::<Vec<_>>(), "thread {t}'s order");
    }
}

#[test]
fn a_call_from_a_thread_wakes_a_reactor_blocked_in_poll() {
    let (_clock, mut reactor) = manual_reactor();
    let handle = reactor.handle();
    let ran = Arc::new(Mutex::new(false));
    let ran2 = ran.clone();
    let sender = thread::spawn(move || {
        // Only makes it likely that the reactor is already blocked; the test holds
        // either way (a wake-up sent before the poll is not lost).
        thread::sleep(Duration::from_millis(50));
        handle
            .call_from_thread(move |_| *ran2.lock().unwrap() = true)
            .unwrap();
    });
    let start = Instant::now();
    // Nothing else to do: without the wake-up this would wait the full 30 seconds.
    reactor.iterate(Some(LIMIT)).unwrap();
    let waited = start.elapsed();
    sender.join().unwrap();
    assert!(*ran.lock().unwrap(), "the call ran in that turn");
    assert!(waited < LIMIT / 2, "woken after {waited:?}");
}

#[test]
fn stop_through_the_handle_from_another_thread() {
    let (_clock, mut reactor) = manual_reactor();
    let handle = reactor.handle();
    let stopper = thread::spawn(move || handle.stop());
    let (result, watchdog) = run_bounded(&mut reactor, LIMIT);
    stopper.join().unwrap().unwrap();
    result.unwrap();
    assert!(!watchdog);
}

#[test]
fn a_handle_outliving_its_reactor_reports_closed() {
    let (_clock, reactor) = manual_reactor();
    let handle = reactor.handle();
    drop(reactor);
    assert!(matches!(
        handle.call_from_thread(|_| {}),
        Err(ReactorError::Closed)
    ));
    assert!(matches!(handle.stop(), Err(ReactorError::Closed)));
    let from_elsewhere = thread::spawn(move || handle.call_from_thread(|r| r.stop()));
    assert!(matches!(
        from_elsewhere.join().unwrap(),
        Err(ReactorError::Closed)
    ));
    assert_eq!(ReactorError::Closed.to_string(), "reactor is gone");
}

/// A thread call that queues another must not keep the reactor in one turn: as with
/// `call_later`, calls that arrive while thread calls run wait for the next turn.
#[test]
fn thread_calls_queued_while_thread_calls_run_wait_for_the_next_turn() {
    let (_clock, mut reactor) = manual_reactor();
    let count = Arc::new(Mutex::new(0u32));

    fn again(handle: ReactorHandle, count: Arc<Mutex<u32>>) {
        let h = handle.clone();
        handle
            .call_from_thread(move |_| {
                let mut n = count.lock().unwrap();
                *n += 1;
                if *n < 1_000 {
                    drop(n);
                    again(h, count);
                }
            })
            .unwrap();
    }
    again(reactor.handle(), count.clone());
    for expected in 1..=5 {
        turn(&mut reactor);
        assert_eq!(*count.lock().unwrap(), expected);
    }
}

#[test]
fn calls_from_threads_run_after_due_timers_in_a_turn() {
    let (_clock, mut reactor) = manual_reactor();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    reactor
        .handle()
        .call_from_thread(move |_| o.lock().unwrap().push("thread"))
        .unwrap();
    let o = order.clone();
    reactor.call_soon(move |_| o.lock().unwrap().push("soon"));
    let o = order.clone();
    reactor.call_later(Duration::ZERO, move |_| o.lock().unwrap().push("timer"));
    turn(&mut reactor);
    assert_eq!(*order.lock().unwrap(), ["timer", "thread", "soon"]);
}

#[test]
fn a_local_handle_call_runs_next_turn_without_waiting_for_io() {
    let mut reactor = reactor::Reactor::with_clock(reactor::ManualClock::new()).unwrap();
    let local = reactor.local_handle();
    let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let o = order.clone();
    local
        .call_soon(move |r| {
            o.borrow_mut().push("first");
            let again = o.clone();
            // queued while the soon step runs: waits for the next turn
            r.local_handle()
                .call_soon(move |_| again.borrow_mut().push("second"))
                .unwrap();
        })
        .unwrap();
    assert!(reactor.has_pending_work());
    let started = std::time::Instant::now();
    // A long poll timeout: the queued call must keep the poll from waiting.
    reactor
        .iterate(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    assert_eq!(*order.borrow(), ["first"]);
    reactor
        .iterate(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    assert_eq!(*order.borrow(), ["first", "second"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(local.is_alive() && local.same_reactor(&reactor.local_handle()));
    drop(reactor);
    assert!(!local.is_alive());
    assert!(matches!(local.call_soon(|_| ()), Err(ReactorError::Closed)));
}
