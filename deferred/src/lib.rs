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
//! | `.await` on a `Deferred` ([`Awaiting`]) | `await d` in a coroutine |
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
//! # What it does not do
//!
//! A `Deferred` is not `Send`: it lives on the thread of the reactor that will fire it.
//! It does not run callbacks later or on another thread: they run when the result
//! arrives, inside the call that fires it.

mod core;
mod deferred;
mod error;
mod failure;
mod future;
mod unhandled;

pub use crate::deferred::{
    fail, maybe_deferred, succeed, CallbackOutput, Deferred, Resolver, Then,
};
pub use crate::error::{DeferredError, FirstError};
pub use crate::failure::{Failure, IntoFailure};
pub use crate::future::Awaiting;
pub use crate::unhandled::{catch_unhandled, UnhandledGuard};
