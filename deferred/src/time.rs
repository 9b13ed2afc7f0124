//! Deferreds and the reactor's clock: [`defer_later`] and
//! [`Deferred::add_timeout`].

use std::cell::Cell;
use std::panic::Location;
use std::rc::Rc;
use std::time::Duration;

use reactor::{DelayedCall, Reactor};

use crate::{CallbackOutput, Deferred, DeferredError, Failure};

/// A Deferred that fires with `f()`'s outcome after `delay` on the reactor's clock
/// (Twisted's `task.deferLater`). Cancelling it before then cancels the call: `f`
/// never runs and the Deferred fails with [`DeferredError::Cancelled`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use deferred::{defer_later, Failure};
/// use reactor::{ManualClock, Reactor};
///
/// let clock = ManualClock::new();
/// let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
/// let mut d = defer_later(&mut reactor, Duration::from_secs(3), || Ok::<_, Failure>("ding"));
/// clock.advance(Duration::from_secs(3));
/// reactor.iterate(Some(Duration::ZERO)).unwrap();
/// assert_eq!(d.take_result().unwrap().unwrap(), "ding");
/// ```
#[doc(alias = "deferLater")]
pub fn defer_later<R, F>(reactor: &mut Reactor, delay: Duration, f: F) -> Deferred<R::Value>
where
    R: CallbackOutput,
    F: FnOnce() -> R + 'static,
{
    let call: Rc<Cell<Option<DelayedCall>>> = Rc::default();
    let local = reactor.local_handle();
    let pending = call.clone();
    let (d, resolver) = Deferred::with_canceller(move |_| {
        if let Some(call) = pending.take() {
            let _ = local.call_soon(move |r| {
                let _ = call.cancel(r);
            });
        }
    });
    let fired = call.clone();
    let delayed = reactor.call_later(delay, move |_| {
        fired.take();
        if resolver.is_called() {
            return; // cancelled meanwhile
        }
        // The outcome, whatever its shape, goes on to the Deferred without recursion.
        drop(crate::maybe_deferred(f).chain_deferred(&resolver));
    });
    call.set(Some(delayed));
    d
}

impl<T: 'static> Deferred<T> {
    /// Cancels the Deferred if it has not fired `timeout` from now on the reactor's
    /// clock, and then fails it with [`DeferredError::TimedOut`] instead of
    /// `Cancelled` (Twisted's `addTimeout`). Its canceller runs as for any cancel; one
    /// that panics cannot stop the timeout (twisted#9534). If the Deferred fires first
    /// the timer is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use deferred::{Deferred, DeferredError};
    /// use reactor::{ManualClock, Reactor};
    ///
    /// let clock = ManualClock::new();
    /// let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
    /// let (d, _never) = Deferred::<u8>::new();
    /// let mut d = d.add_timeout(&mut reactor, Duration::from_secs(5));
    /// clock.advance(Duration::from_secs(5));
    /// reactor.iterate(Some(Duration::ZERO)).unwrap();
    /// let failure = d.take_result().unwrap().unwrap_err();
    /// assert_eq!(failure.downcast_ref(), Some(&DeferredError::TimedOut(Duration::from_secs(5))));
    /// ```
    #[doc(alias = "addTimeout")]
    #[track_caller]
    pub fn add_timeout(self, reactor: &mut Reactor, timeout: Duration) -> Deferred<T> {
        let at = Location::caller();
        let fired = Rc::new(Cell::new(false));
        let done = Rc::new(Cell::new(false));
        let target = Rc::downgrade(self.core());
        let (fired_in_timer, done_in_timer) = (fired.clone(), done.clone());
        let timer = reactor.call_later(timeout, move |_| {
            if done_in_timer.get() {
                return;
            }
            fired_in_timer.set(true);
            if let Some(core) = target.upgrade() {
                crate::core::cancel(&core, at);
            }
        });
        let local = reactor.local_handle();
        self.add_both(move |result| {
            done.set(true);
            if !fired.get() {
                let _ = local.call_soon(move |r| {
                    let _ = timer.cancel(r);
                });
            }
            match result {
                Err(failure) if fired.get() && failure.is_cancelled() => {
                    let error = Box::new(DeferredError::TimedOut(timeout));
                    Err(Failure::from_boxed(error, at))
                }
                other => other,
            }
        })
    }
}
