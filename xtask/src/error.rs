//! Why a task failed.

use std::error::Error;
use std::fmt;
use std::io;

/// What can make a task fail.
#[derive(Debug)]
pub(crate) enum TaskError {
    /// A command could not be started.
    Spawn { what: String, source: io::Error },
    /// A command ran and failed.
    Failed { what: String, status: Option<i32> },
    /// A server did not say which port it listens on.
    NoPort(String),
    /// The command line was wrong.
    Usage(String),
    /// A task ran but what it checks did not hold.
    Check(String),
    /// Any other I/O error.
    Io(io::Error),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Spawn { what, source } => write!(f, "cannot start {what}: {source}"),
            TaskError::Failed {
                what,
                status: Some(code),
            } => write!(f, "{what} failed with exit status {code}"),
            TaskError::Failed { what, status: None } => write!(f, "{what} was killed by a signal"),
            TaskError::NoPort(name) => write!(f, "{name} did not report its port"),
            TaskError::Usage(msg) | TaskError::Check(msg) => write!(f, "{msg}"),
            TaskError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl Error for TaskError {}
