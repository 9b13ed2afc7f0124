//! The poetry server's errors.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;

use protocol::ListenError;
use reactor::ReactorError;

/// What stops the poetry server from starting or running.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The poem file cannot be opened or read.
    Poem {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The poem path names a directory or something else that is not a file.
    NotAFile(PathBuf),
    /// The poem's size reads as small (a file of `/proc` reads as empty) but it holds
    /// more than [`IN_MEMORY_LIMIT`](crate::poem::IN_MEMORY_LIMIT): it can be neither
    /// held in memory nor streamed by its size.
    Unsized(PathBuf),
    /// The port cannot be listened on (in use, bad interface).
    Listen(ListenError),
    /// Another process already listens on the port, sharing it with `SO_REUSEPORT`.
    PortShared(u16),
    /// The descriptor limit cannot serve a single client.
    Descriptors {
        /// The limit (`RLIMIT_NOFILE`).
        limit: u64,
    },
    /// A socket option the server was told to set cannot be set (an unknown or
    /// forbidden congestion control).
    SocketOption {
        /// What was asked, as given.
        option: String,
        /// Why.
        source: io::Error,
    },
    /// The reactor failed.
    Reactor(ReactorError),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Poem { path, source } => {
                write!(f, "cannot read poem {}: {source}", path.display())
            }
            ServerError::NotAFile(path) => write!(f, "poem {} is not a file", path.display()),
            ServerError::Unsized(path) => write!(
                f,
                "poem {} holds more than its size says and more than {} bytes",
                path.display(),
                crate::poem::IN_MEMORY_LIMIT
            ),
            ServerError::Listen(e) => write!(f, "{e}"),
            ServerError::PortShared(port) => {
                write!(f, "port {port} is in use by another process")
            }
            ServerError::Descriptors { limit } => write!(
                f,
                "a descriptor limit of {limit} cannot serve a single client (raise it with ulimit -n)"
            ),
            ServerError::SocketOption { option, source } => write!(f, "{option}: {source}"),
            ServerError::Reactor(e) => write!(f, "{e}"),
        }
    }
}

impl Error for ServerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ServerError::Poem { source, .. } => Some(source),
            ServerError::Listen(e) => Some(e),
            ServerError::Reactor(e) => Some(e),
            ServerError::SocketOption { source, .. } => Some(source),
            ServerError::NotAFile(_)
            | ServerError::Unsized(_)
            | ServerError::PortShared(_)
            | ServerError::Descriptors { .. } => None,
        }
    }
}

impl From<ListenError> for ServerError {
    fn from(e: ListenError) -> Self {
        ServerError::Listen(e)
    }
}

impl From<ReactorError> for ServerError {
    fn from(e: ReactorError) -> Self {
        ServerError::Reactor(e)
    }
}
