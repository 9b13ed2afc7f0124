//! [`DelayedCall`]: the handle `call_later` returns (Twisted's `IDelayedCall`).

use std::time::Duration;

use crate::error::TimerError;
use crate::timers::TimerKey;
use crate::Reactor;

/// A call scheduled with [`Reactor::call_later`]: Twisted's `IDelayedCall`.
///
/// The handle is a small copyable id; every operation takes the reactor that owns the
/// call. Once the call has run or been cancelled the handle is inert: `active` answers
/// `false` and the other operations return a [`TimerError`]; it never reaches a later
/// call (generations do not wrap), nor a call of another reactor
/// ([`TimerError::WrongReactor`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reactor::{ManualClock, Reactor, TimerError};
///
/// let clock = ManualClock::new();
/// let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
/// let call = reactor.call_later(Duration::from_secs(10), |_| println!("never"));
/// assert!(call.active(&mut reactor));
/// call.delay(&mut reactor, Duration::from_secs(5)).unwrap();
/// assert_eq!(call.get_time(&mut reactor), Ok(Duration::from_secs(15)));
/// call.cancel(&mut reactor).unwrap();
/// assert_eq!(call.cancel(&mut reactor), Err(TimerError::AlreadyCancelled));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DelayedCall {
    pub(crate) reactor: u32,
    pub(crate) key: TimerKey,
}

impl DelayedCall {
    /// Cancels the call: it will not run, and what it captured is dropped now.
    ///
    /// # Errors
    ///
    /// [`TimerError::AlreadyCalled`] or [`TimerError::AlreadyCancelled`] (or
    /// [`TimerError::Expired`] for a call long gone), as Twisted raises.
    pub fn cancel(self, reactor: &mut Reactor) -> Result<(), TimerError> {
        let key = reactor.own_timer(self)?;
        reactor.timers.cancel(key)
    }

    /// Reschedules the call to run `delay` from now (Twisted's `reset`).
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel), if the call is no longer pending.
    pub fn reset(self, reactor: &mut Reactor, delay: Duration) -> Result<(), TimerError> {
        let key = reactor.own_timer(self)?;
        let deadline = reactor.deadline_after(delay);
        reactor.timers.reschedule(key, deadline)
    }

    /// Postpones the call by `by` from its current scheduled time (Twisted's `delay`).
    /// A zero delay changes nothing, not even the call's place among calls due at the
    /// same time.
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel), if the call is no longer pending.
    pub fn delay(self, reactor: &mut Reactor, by: Duration) -> Result<(), TimerError> {
        let key = reactor.own_timer(self)?;
        let current = reactor.timers.deadline(key)?;
        if by.is_zero() {
            return Ok(());
        }
        let deadline = current.saturating_add(crate::clock::duration_to_nanos(by));
        reactor.timers.reschedule(key, deadline)
    }

    /// Whether the call is still pending (Twisted's `active`).
    pub fn active(self, reactor: &mut Reactor) -> bool {
        reactor
            .own_timer(self)
            .is_ok_and(|key| reactor.timers.is_active(key))
    }

    /// When the call is scheduled to run, on the reactor's clock (Twisted's `getTime`).
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel), if the call is no longer pending.
    pub fn get_time(self, reactor: &mut Reactor) -> Result<Duration, TimerError> {
        let key = reactor.own_timer(self)?;
        reactor.timers.deadline(key).map(Duration::from_nanos)
    }
}
