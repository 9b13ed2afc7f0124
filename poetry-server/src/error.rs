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
    /// The port cannot be listened on (in use, bad interface).
    Listen(ListenError),
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
            ServerError::Listen(e) => write!(f, "{e}"),
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
            ServerError::NotAFile(_) => None,
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
