//! The reactor layer's errors.

use std::error::Error;
use std::fmt;
use std::io;

use crate::descriptor::DescriptorId;

/// What can go wrong when driving the reactor itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReactorError {
    /// `run` or `iterate` was called while the reactor was already running, for example
    /// from inside one of its own callbacks (Twisted: `ReactorAlreadyRunning`).
    AlreadyRunning,
    /// `run` was called on a reactor that has already run and shut down (Twisted:
    /// `ReactorNotRestartable`).
    NotRestartable,
    /// The descriptor id is stale: that descriptor was removed (or never existed).
    UnknownDescriptor(DescriptorId),
    /// The descriptor id was issued by another reactor.
    WrongReactor(DescriptorId),
    /// The reactor this handle points at has been dropped.
    Closed,
    /// The operating system refused a poll, registration or signal operation.
    Io(io::Error),
}

impl fmt::Display for ReactorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReactorError::AlreadyRunning => f.write_str("reactor is already running"),
            ReactorError::NotRestartable => {
                f.write_str("reactor has shut down and cannot be restarted")
            }
            ReactorError::UnknownDescriptor(id) => write!(f, "no descriptor {id} in this reactor"),
            ReactorError::WrongReactor(id) => {
                write!(f, "descriptor {id} belongs to another reactor")
            }
            ReactorError::Closed => f.write_str("reactor is gone"),
            ReactorError::Io(e) => write!(f, "reactor i/o error: {e}"),
        }
    }
}

impl Error for ReactorError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ReactorError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ReactorError {
    fn from(e: io::Error) -> Self {
        ReactorError::Io(e)
    }
}

/// Why a [`DelayedCall`](crate::DelayedCall) operation was refused (Twisted:
/// `AlreadyCalled`, `AlreadyCancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerError {
    /// The call has already run.
    AlreadyCalled,
    /// The call was cancelled.
    AlreadyCancelled,
    /// The call finished so long ago that the reactor no longer remembers whether it
    /// ran or was cancelled (its slot was reused by a later call).
    Expired,
    /// The call was scheduled on another reactor.
    WrongReactor,
}

impl fmt::Display for TimerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimerError::AlreadyCalled => "delayed call has already been called",
            TimerError::AlreadyCancelled => "delayed call has already been cancelled",
            TimerError::Expired => "delayed call has already been called or cancelled",
            TimerError::WrongReactor => "delayed call belongs to another reactor",
        })
    }
}

impl Error for TimerError {}
