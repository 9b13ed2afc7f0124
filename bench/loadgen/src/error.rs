//! Why a run could not be made at all. (A run that was made but went badly is a
//! [`Report`](crate::Report) with `ok: false`, not an error.)

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// What stops `loadgen` before it has a result to print.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The arguments parse but make no sense together (for example zero connections).
    InvalidArgs(String),
    /// The one connection of `bulk` could not be made.
    Connect {
        /// Where it tried.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// A local resource could not be had: a poll, a thread, a file, a descriptor limit.
    Setup {
        /// What was being set up.
        what: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// A worker thread panicked (a bug in `loadgen`).
    WorkerPanicked,
}

impl Error {
    pub(crate) fn setup(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Setup { what, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgs(why) => write!(f, "invalid arguments: {why}"),
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Setup { what, source } => write!(f, "cannot {what}: {source}"),
            Error::WorkerPanicked => f.write_str("a worker thread panicked"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Setup { source, .. } => Some(source),
            Error::InvalidArgs(_) | Error::WorkerPanicked => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_lowercase_line() {
        let e = Error::Setup {
            what: "create a poll",
            source: io::Error::other("boom"),
        };
        assert_eq!(e.to_string(), "cannot create a poll: boom");
        let e = Error::InvalidArgs("--connections must be at least 1".into());
        assert_eq!(
            e.to_string(),
            "invalid arguments: --connections must be at least 1"
        );
    }
}
