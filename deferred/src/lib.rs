//! Deferred results: Twisted's `twisted.internet.defer`, in Rust.
//!
//! Part 5 of the Twisted Introduction ends with a client that is not reusable: a
//! function cannot *return* a poem that has not arrived without blocking. Twisted's
//! answer is the `Deferred` (Parts 7–9, 13): an object standing for a result that is
//! not there yet, to which the caller attaches what to do with it. This crate is that
//! layer. It sits on the reactor (for time and for running async code) and knows
//! nothing of transports or protocols.
//!
//! | here | Twisted |
//! |---|---|
//! | [`Deferred<T>`] made by [`Deferred::new`] / [`Deferred::with_canceller`], fired through its [`Resolver`] | `Deferred()`, `Deferred(canceller)`, `d.callback`, `d.errback` |
//! | [`add_callback`](Deferred::add_callback), [`add_errback`](Deferred::add_errback), [`add_callbacks`](Deferred::add_callbacks), [`add_both`](Deferred::add_both) | `addCallback`, `addErrback`, `addCallbacks`, `addBoth` |
//! | a callback returning a `Deferred<U>` | returning a Deferred from a callback (Part 13) |
//! | [`chain_deferred`](Deferred::chain_deferred), [`pause`](Deferred::pause), [`unpause`](Deferred::unpause), [`is_called`](Deferred::is_called) | `chainDeferred`, `pause`, `unpause`, `called` |
//! | [`cancel`](Deferred::cancel), [`DeferredError::Cancelled`] | `cancel`, `CancelledError` (Part 19) |
//! | [`DeferredError::AlreadyCalled`] | `AlreadyCalledError` |
//! | [`Failure`]: [`check`](Failure::check), [`trap`](Failure::trap), [`report`](Failure::report) | `twisted.python.failure.Failure`: `check`, `trap`, `getTraceback` |
//! | [`succeed`], [`fail`], [`maybe_deferred`] | `succeed`, `fail`, `maybeDeferred` (Part 14) |
//! | [`take_result`](Deferred::take_result) | trial's `successResultOf` / `failureResultOf` |
//! | "Unhandled error in Deferred" at the drop; [`catch_unhandled`] | the same log line at garbage collection |
//! | [`defer_later`], [`add_timeout`](Deferred::add_timeout), [`DeferredError::TimedOut`] | `task.deferLater`, `addTimeout`, `TimeoutError` |
//! | [`DeferredList`] (`fire_on_one_callback`, `fire_on_one_errback`, `consume_errors`, `cancel_losers`), [`ListResult`], [`gather_results`], [`FirstError`] | `DeferredList` (`fireOnOneCallback`, `fireOnOneErrback`, `consumeErrors`), `gatherResults`, `FirstError` (Part 18) |
//! | `.await` on a `Deferred` ([`Awaiting`]) | `await d` in a coroutine |
//! | [`ensure_deferred`] (an `async` block or `async fn` on the reactor) | `ensureDeferred`, `Deferred.fromCoroutine`, `inlineCallbacks` (Part 17) |
//! | [`with_reactor`] | using the global `reactor` from inside a coroutine |
//!
//! # Typed chains
//!
//! A Twisted Deferred is one object whose result changes type as callbacks run. Here
//! adding a callback *consumes* the `Deferred<T>` and returns a `Deferred<U>`, where
//! `U` is what the callback produces, so the compiler checks every step and nobody can
//! add to a stale handle. Firing is done through the [`Resolver<T>`], which stays with
//! whoever produces the result, while the `Deferred` goes to whoever consumes it. A
//! callback returns `Result<U, Failure>` (an `Err` switches the chain to its errbacks;
//! `?` turns any error into a [`Failure`] that records where it happened), or a
//! `Deferred<U>` to wait for. A panic in a callback is caught and becomes a failure.
//!
//! ```
//! use deferred::{Deferred, Failure};
//!
//! // The producer keeps the resolver; the consumer gets the Deferred.
//! let (d, resolver) = Deferred::<String>::new();
//! let mut lines = d
//!     .add_callback(|poem| Ok::<_, Failure>(poem.lines().count()))
//!     .add_errback(|failure| {
//!         eprintln!("no poem: {failure}");
//!         Ok(0)
//!     });
//! resolver.callback("one\ntwo\n".to_owned()).unwrap();
//! assert_eq!(lines.take_result().unwrap().unwrap(), 2);
//! ```
//!
//! # Pushed and polled: a Deferred and a Future
//!
//! A Deferred is *pushed*: whoever has the result calls [`Resolver::callback`], and the
//! callbacks run right there, inside that call. Nothing asks; nothing is scheduled.
//!
//! ```
//! use deferred::{Deferred, Failure};
//!
//! let (d, resolver) = Deferred::<u32>::new();
//! let d = d.add_callback(|n| { println!("pushed {n}"); Ok::<_, Failure>(()) });
//! resolver.callback(7).unwrap(); // prints "pushed 7" before this line returns
//! # drop(d);
//! ```
//!
//! A Rust `Future` is *polled*: something (an executor) calls `poll`; the future either
//! answers `Ready` or keeps the `Waker` it was given and answers `Pending`. When its
//! result arrives, it calls `wake`, and the executor polls it again later.
//!
//! They meet in two places. Awaiting a `Deferred` turns push into poll: the awaiting
//! future leaves its waker in the chain, and firing the chain wakes it (a chain that
//! has already fired is `Ready` on the first poll: no waker, no scheduling). And
//! [`ensure_deferred`] turns poll into push: it runs a future on the reactor and fires a
//! Deferred with its output.
//!
//! ```
//! use std::time::Duration;
//! use deferred::{ensure_deferred, Deferred, Failure};
//! use reactor::Reactor;
//!
//! let mut reactor = Reactor::new().unwrap();
//! let (poem, resolver) = Deferred::<String>::new();
//! let lines = ensure_deferred(&mut reactor, async move {
//!     let poem = poem.await?; // polled: waits here until the poem is pushed
//!     Ok::<_, Failure>(poem.lines().count())
//! });
//! let mut lines = lines.add_callback(|n| { println!("{n} lines"); Ok::<_, Failure>(n) });
//! reactor.call_later(Duration::from_millis(1), move |_| {
//!     resolver.callback("roses\nare red\n".into()).unwrap(); // pushed
//! });
//! while !lines.has_result() {
//!     reactor.iterate(Some(Duration::from_millis(10))).unwrap();
//! }
//! assert_eq!(lines.take_result().unwrap().unwrap(), 2);
//! ```
//!
//! # What `ensure_deferred` does on each turn of the reactor
//!
//! 1. When called, it polls the future once, at once (as Twisted runs a coroutine up to
//!    its first `await`). A future that never waits fires its Deferred before
//!    `ensure_deferred` returns.
//! 2. A future that waits leaves a waker. When what it waits for happens on the
//!    reactor's thread (a Deferred fired by a protocol, a timer), the wake queues the
//!    task and, once per turn, one call on the reactor's
//!    [`LocalHandle`](reactor::LocalHandle): no system call, and the reactor's next poll
//!    does not block. From another thread, the wake goes through
//!    [`call_from_thread`](reactor::ReactorHandle::call_from_thread), which does wake
//!    the poll.
//! 3. On the next turn, after I/O, timers and calls from threads, that call polls every
//!    task woken before it began, once each, in wake order. A task woken while it runs
//!    waits for the following turn, so tasks cannot starve I/O.
//! 4. A task that awaits [`with_reactor`] yields; the executor runs the function with
//!    its `&mut Reactor` right after that poll and polls the task again at once (up to
//!    64 times per turn). The reactor is never reached from inside a poll, so no borrow
//!    can fail.
//! 5. When the future is ready, its output fires the Deferred, and that Deferred's
//!    callbacks run there and then.
//!
//! # What is better here than in Twisted
//!
//! * **No depth limit.** Callbacks, Deferreds returned from callbacks and
//!   `chain_deferred` all run in one iterative loop: 100,000-deep chains of each kind
//!   are tested (twisted#4593 left `chainDeferred` recursive).
//! * **Unhandled failures surface at once**, when the last handle that could see
//!   them is dropped, with the place the failure was made — not at some garbage
//!   collection (twisted#2652); [`catch_unhandled`] lets a test fail on them
//!   (twisted#10089).
//! * **A failure keeps its story**: its origin (`#[track_caller]`), every `.await`
//!   it crossed ([`Failure::trail`]), and a backtrace when `RUST_BACKTRACE` asks
//!   (twisted#5178, #9176).
//! * **Cancellation cannot fail**: a panicking canceller is caught and the Deferred
//!   still fails with `Cancelled` (twisted#6676, #9534).
//!
//! * **Tasks are owned by the reactor's executor**, never lost for want of a
//!   reference; cancelling a task cancels what it awaits and drops it at once.
//! * **`DeferredList` can cancel the losers** (twisted#9329), since it owns them.
//! * **Every step is typed** (twisted#9816, #11772).
//!
//! # What it does not do
//!
//! A `Deferred` is not `Send`: it lives on the thread of the reactor that will fire it
//! (other threads reach it through the reactor's `call_from_thread`). It does not run
//! callbacks later or on another thread: they run when the result arrives, inside the
//! call that fires it. It knows no transports: the poetry client builds `get_poetry`
//! on it, one layer up.

mod core;
mod deferred;
mod error;
mod failure;
mod future;
mod list;
mod task;
mod time;
mod unhandled;

pub use crate::deferred::{
    fail, maybe_deferred, succeed, CallbackOutput, Deferred, Resolver, Then,
};
pub use crate::error::{DeferredError, FirstError};
pub use crate::failure::{Failure, IntoFailure};
pub use crate::future::Awaiting;
pub use crate::list::{gather_results, DeferredList, ListResult};
pub use crate::task::{ensure_deferred, with_reactor, WithReactor};
pub use crate::time::defer_later;
pub use crate::unhandled::{catch_unhandled, UnhandledGuard};
