//! [`Deferred`] and [`Resolver`]: the typed faces of a chain.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;

use crate::core::{self, Core, Next, Outcome, Step};
use crate::{DeferredError, Failure, IntoFailure};

/// A result that is not there yet, and the chain of callbacks that will process it:
/// Twisted's `Deferred`.
///
/// A `Deferred<T>` will be fired once, by its [`Resolver`], with a `T` or a
/// [`Failure`]. Callbacks added with [`add_callback`](Self::add_callback) and friends
/// run in order; each gets the result of the one before. Adding a callback *consumes*
/// the handle and returns a new one whose type is the callback's output, so every step
/// of a chain is type-checked and the value type can change from step to step:
///
/// ```
/// use deferred::{Deferred, Failure};
///
/// let (d, resolver) = Deferred::<&str>::new();
/// let d = d
///     .add_callback(|text| Ok::<_, Failure>(text.len()))   // Deferred<usize>
///     .add_callback(|n| if n > 3 { Err(Failure::msg("too long")) } else { Ok(n * 2) })
///     .add_errback(|failure| { println!("recovered from {failure}"); Ok(0) });
/// resolver.callback("abcde").unwrap();
/// let mut d = d;
/// assert_eq!(d.take_result().unwrap().unwrap(), 0);
/// ```
///
/// A callback whose result is `Err` (or that panics: the panic is caught) switches the
/// chain to its errbacks; an errback that returns `Ok` switches it back. A callback may
/// also return another `Deferred`: the chain then pauses until that one fires and goes
/// on with its result (Twisted's "Deferred all the way down").
///
/// A `Deferred` dropped while it holds a failure, or whose failure arrives after it
/// was dropped, reports "Unhandled error in Deferred" at that moment (see
/// [`catch_unhandled`](crate::catch_unhandled)). A `Deferred` is not `Send`: it
/// belongs to the thread (the reactor) that made it.
#[doc(alias = "twisted.internet.defer.Deferred")]
#[must_use = "a Deferred does nothing unless callbacks are added, it is awaited or it is kept"]
pub struct Deferred<T> {
    core: Option<Rc<Core>>,
    _value: PhantomData<fn() -> T>,
}

/// The right to fire a [`Deferred`]: Twisted's `Deferred.callback` and
/// `Deferred.errback`, held apart from the chain so the chain can change type.
///
/// Clones fire the same Deferred; only the first firing counts, later ones get
/// [`DeferredError::AlreadyCalled`].
pub struct Resolver<T> {
    core: Rc<Core>,
    _value: PhantomData<fn(T)>,
}

/// What a callback hands on: a value now, a failure, or a Deferred to wait for.
///
/// You do not name it: any callback returning `Result<U, Failure>` or `Deferred<U>`
/// fits, and the chain continues as a `Deferred<U>`.
pub trait CallbackOutput: sealed::Sealed + 'static {
    /// The value type the chain continues with.
    type Value: 'static;
    #[doc(hidden)]
    fn into_then(self) -> Then<Self::Value>;
}

/// The two shapes of a [`CallbackOutput`]; used by the crate only.
#[doc(hidden)]
#[derive(Debug)]
pub enum Then<U> {
    Now(Result<U, Failure>),
    Later(Deferred<U>),
}

mod sealed {
    pub trait Sealed {}
    impl<U: 'static> Sealed for Result<U, crate::Failure> {}
    impl<U: 'static> Sealed for crate::Deferred<U> {}
}

impl<U: 'static> CallbackOutput for Result<U, Failure> {
    type Value = U;
    fn into_then(self) -> Then<U> {
        Then::Now(self)
    }
}

impl<U: 'static> CallbackOutput for Deferred<U> {
    type Value = U;
    fn into_then(self) -> Then<U> {
        Then::Later(self)
    }
}

/// What a step hands on, given its callback's output and the box its input came in
/// (reused for the output when the type is the same).
fn next_of<R: CallbackOutput, T: 'static>(output: R, emptied: Option<core::Emptied<T>>) -> Next {
    match output.into_then() {
        Then::Now(Ok(value)) => Next::Done(Ok(match emptied {
            Some(emptied) => core::refill(emptied, value),
            None => core::erase(value),
        })),
        Then::Now(Err(failure)) => Next::Done(Err(failure)),
        Then::Later(d) => Next::Wait(d.into_core()),
    }
}

/// The value of an erased result, as the type the chain was built for.
fn unerase<T: 'static>(value: Box<dyn Any>, at: &'static Location<'static>) -> Result<T, Failure> {
    unerase_keeping_box(value, at).map(|(value, _)| value)
}

/// As [`unerase`], also handing back the emptied box for the step's output.
fn unerase_keeping_box<T: 'static>(
    erased: Box<dyn Any>,
    at: &'static Location<'static>,
) -> Result<(T, core::Emptied<T>), Failure> {
    match core::take_value::<T>(erased) {
        Ok(taken) => Ok(taken),
        Err(_) => {
            debug_assert!(false, "a chain's value has the type its handle says");
            let error = DeferredError::Panicked("a chain's value had an unexpected type".into());
            Err(Failure::from_boxed(Box::new(error), at))
        }
    }
}

// ===== construction =====

impl<T: 'static> Deferred<T> {
    /// A Deferred not fired yet, and its [`Resolver`] (Twisted's `Deferred()`).
    #[allow(clippy::new_ret_no_self)] // Twisted's constructor; the pair is the point.
    pub fn new() -> (Deferred<T>, Resolver<T>) {
        let core = Core::new();
        (Deferred::from_core(core.clone()), Resolver::from_core(core))
    }

    /// A Deferred with a canceller (Twisted's `Deferred(canceller)`): [`cancel`](Self::cancel)
    /// runs it first, with the Resolver, so it can stop the work and fire the Deferred
    /// its own way; if it does not, the Deferred fails with [`DeferredError::Cancelled`].
    /// A canceller that panics is logged and the Deferred is cancelled all the same.
    pub fn with_canceller(
        canceller: impl FnOnce(&Resolver<T>) + 'static,
    ) -> (Deferred<T>, Resolver<T>) {
        let core = Core::new();
        core.set_canceller(Box::new(move |core: &Rc<Core>| {
            canceller(&Resolver::from_core(core.clone()));
        }));
        (Deferred::from_core(core.clone()), Resolver::from_core(core))
    }

    pub(crate) fn from_core(core: Rc<Core>) -> Deferred<T> {
        Deferred {
            core: Some(core),
            _value: PhantomData,
        }
    }

    pub(crate) fn core(&self) -> &Rc<Core> {
        match &self.core {
            Some(core) => core,
            None => unreachable!("only into_core empties a Deferred, and it consumes it"),
        }
    }

    /// The chain, without the drop-time check (the chain goes on elsewhere).
    pub(crate) fn into_core(mut self) -> Rc<Core> {
        match self.core.take() {
            Some(core) => core,
            None => unreachable!("only into_core empties a Deferred, and it consumes it"),
        }
    }

    fn push<U: 'static>(
        self,
        at: &'static Location<'static>,
        f: impl FnOnce(Outcome, &'static Location<'static>) -> Next + 'static,
    ) -> Deferred<U> {
        let core = self.into_core();
        core::add(&core, Step::Call(Box::new(f), at));
        Deferred::from_core(core)
    }
}

// ===== the chain: addCallback, addErrback, addCallbacks, addBoth =====

impl<T: 'static> Deferred<T> {
    /// Adds a callback (Twisted's `addCallback`): it gets the value when the chain
    /// succeeds and returns the next result — `Ok(u)`, `Err(failure)`, or a
    /// `Deferred<U>` to wait for. A failure passes it by.
    #[doc(alias = "addCallback")]
    #[track_caller]
    pub fn add_callback<R, F>(self, f: F) -> Deferred<R::Value>
    where
        R: CallbackOutput,
        F: FnOnce(T) -> R + 'static,
    {
        let at = Location::caller();
        self.push(at, move |outcome, at| match outcome {
            Ok(value) => match unerase_keeping_box::<T>(value, at) {
                Ok((value, emptied)) => next_of(f(value), Some(emptied)),
                Err(failure) => Next::Done(Err(failure)),
            },
            Err(failure) => Next::Done(Err(failure)),
        })
    }

    /// Adds an errback (Twisted's `addErrback`): it gets the failure when the chain
    /// fails, and recovers (`Ok`) or passes a failure on (`Err`). A value passes it by.
    #[doc(alias = "addErrback")]
    #[track_caller]
    pub fn add_errback<R, F>(self, f: F) -> Deferred<T>
    where
        R: CallbackOutput<Value = T>,
        F: FnOnce(Failure) -> R + 'static,
    {
        self.push(Location::caller(), move |outcome, _| match outcome {
            Ok(value) => Next::Done(Ok(value)),
            Err(failure) => next_of(f(failure), None::<core::Emptied<T>>),
        })
    }

    /// Adds a callback and an errback as one step (Twisted's `addCallbacks`): exactly
    /// one of them runs, so the errback does not see a failure of the callback.
    #[doc(alias = "addCallbacks")]
    #[track_caller]
    pub fn add_callbacks<R, E, F, G>(self, callback: F, errback: G) -> Deferred<R::Value>
    where
        R: CallbackOutput,
        E: CallbackOutput<Value = R::Value>,
        F: FnOnce(T) -> R + 'static,
        G: FnOnce(Failure) -> E + 'static,
    {
        let at = Location::caller();
        self.push(at, move |outcome, at| match outcome {
            Ok(value) => match unerase_keeping_box::<T>(value, at) {
                Ok((value, emptied)) => next_of(callback(value), Some(emptied)),
                Err(failure) => Next::Done(Err(failure)),
            },
            Err(failure) => next_of(errback(failure), None::<core::Emptied<T>>),
        })
    }

    /// Adds one function for both cases (Twisted's `addBoth`): it gets the result,
    /// value or failure.
    #[doc(alias = "addBoth")]
    #[track_caller]
    pub fn add_both<R, F>(self, f: F) -> Deferred<R::Value>
    where
        R: CallbackOutput,
        F: FnOnce(Result<T, Failure>) -> R + 'static,
    {
        let at = Location::caller();
        self.push(at, move |outcome, at| {
            let (result, emptied) = match outcome {
                Ok(value) => match unerase_keeping_box::<T>(value, at) {
                    Ok((value, emptied)) => (Ok(value), Some(emptied)),
                    Err(failure) => (Err(failure), None),
                },
                Err(failure) => (Err(failure), None),
            };
            next_of(f(result), emptied)
        })
    }

    /// Fires `other` with this chain's result when the chain reaches this point
    /// (Twisted's `chainDeferred`); this chain goes on with `()`. If `other` was
    /// already fired, this chain fails with [`DeferredError::AlreadyCalled`]. Chains of
    /// any length run without recursion.
    #[doc(alias = "chainDeferred")]
    #[track_caller]
    pub fn chain_deferred(self, other: &Resolver<T>) -> Deferred<()> {
        let core = self.into_core();
        core::add(&core, Step::Chain(other.core.clone(), Location::caller()));
        Deferred::from_core(core)
    }
}

// ===== state: pause, unpause, cancel, called, result =====

impl<T: 'static> Deferred<T> {
    /// Stops the chain from running callbacks until as many [`unpause`](Self::unpause)
    /// calls (Twisted's `pause`).
    pub fn pause(&self) {
        self.core().pause();
    }

    /// Undoes one [`pause`](Self::pause); the last one runs whatever is waiting
    /// (Twisted's `unpause`).
    pub fn unpause(&self) {
        core::unpause(self.core());
    }

    /// Cancels the Deferred (Twisted's `cancel`). Not fired yet: its canceller runs (a
    /// panic in it is caught), then, if that did not fire it, it fails with
    /// [`DeferredError::Cancelled`] — and a later firing by its original source is
    /// ignored if it had no canceller. Waiting for a Deferred a callback returned: that
    /// one is cancelled. Fired and settled: nothing happens. Calling it again is
    /// harmless.
    #[track_caller]
    pub fn cancel(&self) {
        core::cancel(self.core(), Location::caller());
    }

    /// Whether the Deferred has been fired (Twisted's `called`).
    #[doc(alias = "called")]
    pub fn is_called(&self) -> bool {
        self.core().is_called()
    }

    /// Whether the chain has run to its end and holds a result now.
    pub fn has_result(&self) -> bool {
        self.core().is_settled()
    }

    /// Takes the result if the chain has run to its end (trial's `successResultOf` /
    /// `failureResultOf`); `None` while it is pending or paused, and once taken.
    #[doc(alias = "successResultOf")]
    #[doc(alias = "failureResultOf")]
    pub fn take_result(&mut self) -> Option<Result<T, Failure>> {
        let at = Location::caller();
        self.core()
            .take_settled()
            .map(|outcome| outcome.and_then(|v| unerase::<T>(v, at)))
    }
}

impl<T> Drop for Deferred<T> {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.drop_handle();
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let called = self.core.as_ref().is_some_and(|c| c.is_called());
        f.debug_struct("Deferred")
            .field("called", &called)
            .finish_non_exhaustive()
    }
}

// ===== Resolver: callback, errback =====

impl<T: 'static> Resolver<T> {
    pub(crate) fn from_core(core: Rc<Core>) -> Resolver<T> {
        Resolver {
            core,
            _value: PhantomData,
        }
    }

    /// Fires the Deferred with a value (Twisted's `callback`); its callbacks run now.
    ///
    /// # Errors
    ///
    /// [`DeferredError::AlreadyCalled`] if it was fired already (Twisted's
    /// `AlreadyCalledError`); the value is dropped. After a cancel without a canceller,
    /// the first late firing is absorbed silently instead, as in Twisted.
    pub fn callback(&self, value: T) -> Result<(), DeferredError> {
        core::fire(&self.core, Ok(core::erase(value)))
    }

    /// Fires the Deferred with a failure (Twisted's `errback`); its errbacks run now. An
    /// error given here becomes a failure made at the caller's location.
    ///
    /// # Errors
    ///
    /// As [`callback`](Self::callback).
    #[track_caller]
    pub fn errback(&self, failure: impl IntoFailure) -> Result<(), DeferredError> {
        core::fire(&self.core, Err(failure.into_failure()))
    }

    /// Fires with `result`: [`callback`](Self::callback) or [`errback`](Self::errback).
    ///
    /// # Errors
    ///
    /// As [`callback`](Self::callback).
    pub fn resolve(&self, result: Result<T, Failure>) -> Result<(), DeferredError> {
        core::fire(&self.core, result.map(core::erase))
    }

    /// Whether the Deferred has been fired.
    pub fn is_called(&self) -> bool {
        self.core.is_called()
    }
}

impl<T> Clone for Resolver<T> {
    fn clone(&self) -> Self {
        Resolver {
            core: self.core.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("called", &self.core.is_called())
            .finish()
    }
}

// ===== succeed, fail, maybeDeferred =====

/// A Deferred already fired with `value` (Twisted's `succeed`).
pub fn succeed<T: 'static>(value: T) -> Deferred<T> {
    Deferred::from_core(Core::fired(Ok(core::erase(value))))
}

/// A Deferred already failed (Twisted's `fail`). An error given here becomes a failure
/// made at the caller's location.
#[track_caller]
pub fn fail<T: 'static>(failure: impl IntoFailure) -> Deferred<T> {
    Deferred::from_core(Core::fired(Err(failure.into_failure())))
}

/// Calls `f` now and gives its outcome as a Deferred, whatever it returned: a
/// `Result` becomes a fired Deferred, a Deferred is passed through, a panic becomes a
/// failed Deferred (Twisted's `maybeDeferred`, Part 14).
///
/// ```
/// use deferred::{maybe_deferred, succeed, Failure};
///
/// let mut cached = maybe_deferred(|| Ok::<_, Failure>("from the cache"));
/// let mut fetched = maybe_deferred(|| succeed("from the network"));
/// assert_eq!(cached.take_result().unwrap().unwrap(), "from the cache");
/// assert_eq!(fetched.take_result().unwrap().unwrap(), "from the network");
/// ```
#[doc(alias = "maybeDeferred")]
#[track_caller]
pub fn maybe_deferred<R: CallbackOutput>(f: impl FnOnce() -> R) -> Deferred<R::Value> {
    let at = Location::caller();
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(output) => match output.into_then() {
            Then::Now(result) => Deferred::from_core(Core::fired(result.map(core::erase))),
            Then::Later(d) => d,
        },
        Err(payload) => {
            Deferred::from_core(Core::fired(Err(Failure::from_panic(payload.as_ref(), at))))
        }
    }
}
