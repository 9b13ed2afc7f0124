//! `timers-bench [COUNT]`: schedules COUNT `call_later`s (default 1,000,000) with
//! scattered delays, cancels every other one, fires the rest on a manual clock, and
//! prints the cost of each step and the memory the pending calls held, as one
//! `RESULT {json}` line for `cargo xtask bench timers`.
//!
//! ```text
//! cargo run --release -p timers-bench -- 1000000
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reactor::{DelayedCall, ManualClock, Reactor};

/// Resident memory of this process, in bytes (Linux `/proc/self/statm`).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The COUNT argument (a million by default); exits 2 on anything but a positive
/// whole number.
fn count_arg() -> usize {
    match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("timers-bench: COUNT must be a positive whole number");
            std::process::exit(2);
        }
    }
}

/// The times taken and the memory the pending calls held.
struct Measured {
    count: usize,
    cancelled: usize,
    schedule: Duration,
    cancel: Duration,
    fire: Duration,
    /// Resident bytes the reactor gained for `count` pending calls.
    reactor_bytes: u64,
}

/// Prints the RESULT line xtask reads.
fn print_result(m: &Measured) {
    let per = |d: Duration, n: usize| d.as_nanos() as f64 / n.max(1) as f64;
    println!(
        "RESULT {{\"count\":{},\"schedule_ns\":{:.1},\"cancel_ns\":{:.1},\"fire_ns\":{:.1},\"bytes_per_pending_call\":{:.1},\"structure_bytes_per_call\":{}}}",
        m.count,
        per(m.schedule, m.count),
        per(m.cancel, m.cancelled),
        per(m.fire, m.count - m.cancelled),
        m.reactor_bytes as f64 / m.count as f64,
        Reactor::TIMER_BYTES_PER_CALL
    );
}

fn main() {
    let count = count_arg();
    let clock = ManualClock::new();
    let mut reactor = match Reactor::with_clock(clock.clone()) {
        Ok(reactor) => reactor,
        Err(e) => {
            eprintln!("timers-bench: {e}");
            std::process::exit(1);
        }
    };
    // A static counter keeps the closures empty, so the memory measured is the
    // reactor's own and not what callbacks capture.
    static FIRED: AtomicUsize = AtomicUsize::new(0);
    // Delays scattered over 0..1000 s by a multiplicative hash, so the heap works.
    let delay = |i: usize| {
        Duration::from_micros(((i as u64).wrapping_mul(2_654_435_761) % 1_000_000_000) + 1)
    };
    let mut calls: Vec<DelayedCall> = Vec::with_capacity(count);
    let rss_before = rss_bytes();

    let start = Instant::now();
    for i in 0..count {
        calls.push(reactor.call_later(delay(i), |_| {
            FIRED.fetch_add(1, Ordering::Relaxed);
        }));
    }
    let schedule = start.elapsed();
    let rss_pending = rss_bytes();

    let start = Instant::now();
    for call in calls.iter().step_by(2) {
        call.cancel(&mut reactor).expect("pending call cancels");
    }
    let cancel = start.elapsed();
    let cancelled = count.div_ceil(2);
    assert_eq!(reactor.pending_calls(), count - cancelled);

    let start = Instant::now();
    clock.advance(Duration::from_secs(1001));
    reactor.iterate(Some(Duration::ZERO)).expect("iterate");
    let fire = start.elapsed();
    assert_eq!(
        FIRED.load(Ordering::Relaxed),
        count - cancelled,
        "every call not cancelled fired once"
    );
    assert_eq!(reactor.pending_calls(), 0);

    // The handles vector is the benchmark's own; subtract it from the reactor's share.
    let handles = (count * std::mem::size_of::<DelayedCall>()) as u64;
    print_result(&Measured {
        count,
        cancelled,
        schedule,
        cancel,
        fire,
        reactor_bytes: rss_pending
            .saturating_sub(rss_before)
            .saturating_sub(handles),
    });
}
