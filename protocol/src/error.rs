//! The protocol layer's errors.

use std::error::Error;
use std::fmt;
use std::io;

use transport::{DisconnectReason, TransportError};

/// Why a connect attempt failed: what [`ClientFactory::client_connection_failed`]
/// receives (Twisted's `ConnectError` family).
///
/// [`ClientFactory::client_connection_failed`]: crate::ClientFactory::client_connection_failed
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The host name did not resolve (Twisted's `DNSLookupError`).
    Lookup {
        /// The name asked for.
        host: String,
        /// The resolver's answer.
        source: io::Error,
    },
    /// The connection could not be made: refused, timed out, unreachable.
    Failed(DisconnectReason),
    /// `stop_connecting` was called (Twisted's `UserError`).
    Cancelled,
    /// The factory's `build_protocol` refused the connection (or panicked).
    Refused,
    /// A socket could not be created.
    Setup(TransportError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Lookup { host, source } => write!(f, "cannot resolve {host}: {source}"),
            ConnectError::Failed(reason) => write!(f, "{reason}"),
            ConnectError::Cancelled => f.write_str("connection attempt was cancelled"),
            ConnectError::Refused => f.write_str("factory refused the connection"),
            ConnectError::Setup(e) => write!(f, "{e}"),
        }
    }
}

/// The cause is part of the message (`Display`), so `source()` is `None`: an error
/// chain printed whole says it once.
impl Error for ConnectError {}

/// Why a port could not listen.
#[derive(Debug)]
#[non_exhaustive]
pub enum ListenError {
    /// The interface name did not resolve to a local address.
    Interface {
        /// The interface asked for.
        interface: String,
        /// The resolver's answer.
        source: io::Error,
    },
    /// The socket could not be bound or registered (port in use, not permitted).
    Transport(TransportError),
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::Interface { interface, source } => {
                write!(f, "cannot use interface {interface}: {source}")
            }
            ListenError::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// The cause is part of the message (`Display`), so `source()` is `None`.
impl Error for ListenError {}

impl From<TransportError> for ListenError {
    fn from(e: TransportError) -> Self {
        ListenError::Transport(e)
    }
}
