//! `deferred-bench ours|tokio [COUNT]`: the deferred layer's costs, or a tokio oneshot's
//! on a current-thread runtime for comparison, printed as one `RESULT {json}` line for
//! `cargo xtask bench deferred` (Twisted's are measured by
//! `bench/peers/twisted/deferred_bench.py`).
//!
//! ```text
//! cargo run --release -p deferred-bench -- ours 100000
//! ```
//!
//! * `chain_ns`: a Deferred created, given 10 callbacks, fired, and its result taken
//!   (ours only: a oneshot has no callbacks).
//! * `await_ns`: inside one task, a Deferred (a oneshot) created, fired (sent) and
//!   awaited: ready on the first poll.
//! * `wake_ns`: tasks each waiting on its own Deferred (oneshot), 1,000 at a time; the
//!   time to fire them all and run the reactor (runtime) until every task has been
//!   woken, polled and finished, per task.
//! * `bytes_per_pending`: heap bytes per pending Deferred and its Resolver (per
//!   oneshot sender and receiver), counted by the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deferred::{ensure_deferred, Deferred, Failure};
use reactor::{ManualClock, Reactor};

/// The system allocator, counting the bytes it hands out while [`allocated_by`]
/// measures, so memory per pending Deferred is exact (resident memory would show
/// pages reused from the earlier measurements as free). Outside a measurement it
/// counts nothing: a locked add per allocation would be the benchmark's own cost in
/// the timed figures, which Twisted's and tokio's allocators do not pay.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNTED_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on unchanged to the system allocator; the counter is
// only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            COUNTED_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and gives its value with the bytes allocated meanwhile (for code that
/// only allocates: what it frees is not subtracted).
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    COUNTED_BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let value = f();
    COUNTING.store(false, Ordering::SeqCst);
    (value, COUNTED_BYTES.load(Ordering::Relaxed))
}

fn per(elapsed: Duration, count: usize) -> f64 {
    elapsed.as_nanos() as f64 / count as f64
}

fn ours(count: usize) -> Result<[f64; 4], String> {
    // A Deferred through a chain of 10 callbacks.
    let start = Instant::now();
    for i in 0..count as u64 {
        let (mut d, resolver) = Deferred::<u64>::new();
        for _ in 0..10 {
            d = d.add_callback(|x| Ok::<_, Failure>(black_box(x + 1)));
        }
        resolver.callback(i).map_err(|e| e.to_string())?;
        black_box(d.take_result());
    }
    let chain = per(start.elapsed(), count);

    // Created, fired and awaited inside one task.
    let mut reactor = Reactor::with_clock(ManualClock::new()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut sum = ensure_deferred(&mut reactor, async move {
        let mut sum = 0u64;
        for i in 0..count as u64 {
            let (d, resolver) = Deferred::new();
            resolver.callback(i)?;
            sum += d.await?;
        }
        Ok::<_, Failure>(sum)
    });
    black_box(sum.take_result());
    let awaited = per(start.elapsed(), count);

    let woken = per(
        ours_wakes(&mut reactor, count)?,
        count.div_ceil(BATCH) * BATCH,
    );

    // Memory per pending Deferred and Resolver (the Vec holding them not counted).
    let mut pending = Vec::with_capacity(count);
    let ((), allocated) =
        allocated_by(|| pending.extend((0..count).map(|_| Deferred::<u64>::new())));
    let bytes = allocated as f64 / count as f64;
    drop(black_box(pending));
    Ok([chain, awaited, woken, bytes])
}

/// Tasks woken on the reactor's thread and polled on its next turn, a batch of
/// [`BATCH`] at a time (a steady state, not the allocator's first touch of a hundred
/// thousand tasks): the time from firing a batch to the last task finishing.
fn ours_wakes(reactor: &mut Reactor, count: usize) -> Result<Duration, String> {
    let mut timed = Duration::ZERO;
    for _ in 0..count.div_ceil(BATCH) {
        let done = Rc::new(Cell::new(0usize));
        let mut resolvers = Vec::with_capacity(BATCH);
        let mut tasks = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let (d, resolver) = Deferred::<u64>::new();
            let done = done.clone();
            tasks.push(ensure_deferred(reactor, async move {
                let v = d.await?;
                done.set(done.get() + 1);
                Ok::<_, Failure>(v)
            }));
            resolvers.push(resolver);
        }
        let start = Instant::now();
        for (i, resolver) in resolvers.iter().enumerate() {
            resolver.callback(i as u64).map_err(|e| e.to_string())?;
        }
        for _ in 0..10 {
            if done.get() == BATCH {
                break;
            }
            reactor
                .iterate(Some(Duration::ZERO))
                .map_err(|e| e.to_string())?;
        }
        timed += start.elapsed();
        if done.get() != BATCH {
            return Err(format!("only {} of {BATCH} tasks finished", done.get()));
        }
    }
    Ok(timed)
}

/// Tasks per wake batch.
const BATCH: usize = 1000;

fn tokio(count: usize) -> Result<[f64; 3], String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let start = Instant::now();
        let mut sum = 0u64;
        for i in 0..count as u64 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(i);
            sum += rx.await.unwrap_or(0);
        }
        black_box(sum);
        let awaited = per(start.elapsed(), count);

        let mut timed = Duration::ZERO;
        for _ in 0..count.div_ceil(BATCH) {
            let done = Arc::new(AtomicUsize::new(0));
            let mut senders = Vec::with_capacity(BATCH);
            for _ in 0..BATCH {
                let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                let done = done.clone();
                tokio::spawn(async move {
                    black_box(rx.await.unwrap_or(0));
                    done.fetch_add(1, Ordering::Relaxed);
                });
                senders.push(tx);
            }
            tokio::task::yield_now().await; // every task runs once and waits
            let start = Instant::now();
            for (i, tx) in senders.into_iter().enumerate() {
                let _ = tx.send(i as u64);
            }
            while done.load(Ordering::Relaxed) < BATCH {
                tokio::task::yield_now().await;
            }
            timed += start.elapsed();
        }
        let woken = per(timed, count.div_ceil(BATCH) * BATCH);

        let mut pending = Vec::with_capacity(count);
        let ((), allocated) = allocated_by(|| {
            pending.extend((0..count).map(|_| tokio::sync::oneshot::channel::<u64>()))
        });
        let bytes = allocated as f64 / count as f64;
        drop(black_box(pending));
        Ok([awaited, woken, bytes])
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let count: usize = match args.next().map(|a| a.parse()) {
        None => 100_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("deferred-bench: COUNT must be a positive whole number");
            std::process::exit(2);
        }
    };
    let line = match which.as_str() {
        "ours" => ours(count).map(|[chain, awaited, woken, bytes]| {
            format!("{{\"chain_ns\":{chain:.1},\"await_ns\":{awaited:.1},\"wake_ns\":{woken:.1},\"bytes_per_pending\":{bytes:.1}}}")
        }),
        "tokio" => tokio(count).map(|[awaited, woken, bytes]| {
            format!("{{\"await_ns\":{awaited:.1},\"wake_ns\":{woken:.1},\"bytes_per_pending\":{bytes:.1}}}")
        }),
        _ => {
            eprintln!("usage: deferred-bench ours|tokio [COUNT]");
            std::process::exit(2);
        }
    };
    match line {
        Ok(json) => println!("RESULT {json}"),
        Err(e) => {
            eprintln!("deferred-bench: {e}");
            std::process::exit(1);
        }
    }
}
