//! The transport layer's errors: setting up sockets. (How a connection *ended* is a
//! [`DisconnectReason`](crate::DisconnectReason).)

use std::error::Error;
use std::fmt;
use std::io;

use reactor::ReactorError;

use crate::address::Address;

/// What can go wrong while creating a listening port or starting a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The address could not be bound: in use, not local, not permitted.
    Bind {
        /// The address asked for.
        address: Address,
        /// The operating system's answer.
        source: io::Error,
    },
    /// A socket could not be created or configured.
    Socket(io::Error),
    /// The reactor refused to register the socket.
    Reactor(ReactorError),
    /// Standard input or output, or a pipe, could not be set up.
    Pipe(io::Error),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Bind { address, source } => {
                write!(f, "cannot listen on {address}: {source}")
            }
            TransportError::Socket(e) => write!(f, "socket error: {e}"),
            TransportError::Reactor(e) => write!(f, "{e}"),
            TransportError::Pipe(e) => write!(f, "pipe error: {e}"),
        }
    }
}

impl Error for TransportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TransportError::Bind { source, .. } => Some(source),
            TransportError::Socket(e) => Some(e),
            TransportError::Reactor(e) => Some(e),
            TransportError::Pipe(e) => Some(e),
        }
    }
}

impl From<ReactorError> for TransportError {
    fn from(e: ReactorError) -> Self {
        TransportError::Reactor(e)
    }
}
