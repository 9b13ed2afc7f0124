//! [`DeferredError`]: the layer's own failures (Twisted's `AlreadyCalledError`,
//! `CancelledError`, `TimeoutError`), and [`FirstError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::Failure;

/// What can go wrong in the deferred layer itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeferredError {
    /// A Deferred was fired a second time (Twisted's `AlreadyCalledError`).
    #[doc(alias = "AlreadyCalledError")]
    AlreadyCalled,
    /// The Deferred was cancelled and its canceller did not fire it (Twisted's
    /// `CancelledError`).
    #[doc(alias = "CancelledError")]
    Cancelled,
    /// [`add_timeout`](crate::Deferred::add_timeout) cancelled the Deferred after this
    /// long (Twisted's `TimeoutError`).
    #[doc(alias = "TimeoutError")]
    TimedOut(Duration),
    /// A callback, errback, canceller or task panicked; the message of the panic.
    Panicked(String),
    /// A callback returned the very Deferred it was added to, which could never fire.
    ReturnedItself,
    /// A reactor was needed but this code is not running on one (see
    /// [`with_reactor`](crate::with_reactor)), or the reactor is gone.
    NotOnReactor,
}

impl fmt::Display for DeferredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeferredError::AlreadyCalled => f.write_str("the deferred was already called"),
            DeferredError::Cancelled => f.write_str("the deferred was cancelled"),
            DeferredError::TimedOut(after) => {
                write!(f, "timed out after {:.3}s", after.as_secs_f64())
            }
            DeferredError::Panicked(msg) => write!(f, "panicked: {msg}"),
            DeferredError::ReturnedItself => {
                f.write_str("a callback returned the deferred it was added to")
            }
            DeferredError::NotOnReactor => f.write_str("not running on a reactor"),
        }
    }
}

impl Error for DeferredError {}

/// The first failure among several Deferreds (Twisted's `FirstError`): which one
/// failed, and how.
///
/// [`gather_results`](crate::gather_results) and a [`DeferredList`](crate::DeferredList)
/// made with `fire_on_one_errback` fail with it.
#[derive(Debug)]
pub struct FirstError {
    /// The position of the failed Deferred in the list given.
    pub index: usize,
    /// Its failure.
    pub failure: Failure,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deferred {} failed: {}", self.index, self.failure)
    }
}

impl Error for FirstError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.failure.error())
    }
}
