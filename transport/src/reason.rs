//! [`DisconnectReason`]: why a connection ended (Twisted's `ConnectionDone`,
//! `ConnectionLost`, `ConnectionAborted`, `TimeoutError`, `ConnectionRefusedError`).

use std::error::Error;
use std::fmt;
use std::io;

use reactor::LostReason;

/// Why a connection ended, or why it never began.
///
/// Only [`Done`](DisconnectReason::Done) means the stream ended cleanly; a protocol
/// that must know "everything arrived" (the poetry client) checks
/// [`is_clean`](DisconnectReason::is_clean).
///
/// Not `#[non_exhaustive]`: the crates of this workspace match it exhaustively, so a
/// new variant is handled everywhere the compiler points, never by a wildcard.
#[derive(Debug)]
pub enum DisconnectReason {
    /// A clean close: the peer's end of file, or our `lose_connection` completing
    /// (Twisted's `ConnectionDone`).
    Done,
    /// The connection broke: reset by the peer, broken pipe (Twisted's
    /// `ConnectionLost`).
    Lost(io::Error),
    /// We aborted it with `abort_connection` (Twisted's `ConnectionAborted`).
    Aborted,
    /// A deadline passed: the close grace period, the connect timeout, or a
    /// protocol's idle timeout (Twisted's `TimeoutError`).
    TimedOut,
    /// The peer refused the connection (Twisted's `ConnectionRefusedError`).
    Refused,
    /// The write buffer passed its hard limit; the connection was aborted.
    BufferOverflow {
        /// The limit that was passed, in bytes.
        limit: usize,
    },
    /// A callback panicked; the panic message.
    Panicked(String),
    /// The reactor shut down while the connection was open.
    Shutdown,
    /// Any other I/O error.
    Io(io::Error),
}

impl DisconnectReason {
    /// Whether the connection ended cleanly ([`Done`](Self::Done)).
    pub fn is_clean(&self) -> bool {
        matches!(self, DisconnectReason::Done)
    }

    /// Classifies an I/O error met on a connected socket: resets and broken pipes
    /// become [`Lost`](Self::Lost), refusals [`Refused`](Self::Refused), timeouts
    /// [`TimedOut`](Self::TimedOut), the rest [`Io`](Self::Io).
    pub fn from_io(e: io::Error) -> Self {
        use io::ErrorKind::*;
        match e.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                DisconnectReason::Lost(e)
            }
            ConnectionRefused => DisconnectReason::Refused,
            TimedOut => DisconnectReason::TimedOut,
            _ => DisconnectReason::Io(e),
        }
    }
}

impl From<LostReason> for DisconnectReason {
    fn from(reason: LostReason) -> Self {
        match reason {
            LostReason::Error(e) => DisconnectReason::from_io(e),
            LostReason::Panicked(msg) => DisconnectReason::Panicked(msg),
            LostReason::Shutdown => DisconnectReason::Shutdown,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Done => f.write_str("connection was closed cleanly"),
            DisconnectReason::Lost(e) => write!(f, "connection was lost: {e}"),
            DisconnectReason::Aborted => f.write_str("connection was aborted"),
            DisconnectReason::TimedOut => f.write_str("connection timed out"),
            DisconnectReason::Refused => f.write_str("connection was refused"),
            DisconnectReason::BufferOverflow { limit } => {
                write!(f, "write buffer passed its limit of {limit} bytes")
            }
            DisconnectReason::Panicked(msg) => write!(f, "protocol panicked: {msg}"),
            DisconnectReason::Shutdown => f.write_str("reactor shut down"),
            DisconnectReason::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl Error for DisconnectReason {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DisconnectReason::Lost(e) | DisconnectReason::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_socket_errors() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(
            DisconnectReason::from_io(reset),
            DisconnectReason::Lost(_)
        ));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            DisconnectReason::from_io(refused),
            DisconnectReason::Refused
        ));
        let other = io::Error::other("odd");
        assert!(matches!(
            DisconnectReason::from_io(other),
            DisconnectReason::Io(_)
        ));
        assert!(DisconnectReason::Done.is_clean());
        assert!(!DisconnectReason::Shutdown.is_clean());
        assert_eq!(
            DisconnectReason::Done.to_string(),
            "connection was closed cleanly"
        );
    }
}
