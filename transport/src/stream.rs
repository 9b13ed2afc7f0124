//! [`Stream`]: the small byte-stream trait the transport's logic is written over.
//!
//! TCP and Unix sockets implement it here; [`MemoryStream`](crate::MemoryStream)
//! implements it in memory, so tests drive the very same transport code.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};

use crate::address::Address;

/// A non-blocking byte stream the reactor can poll.
///
/// `read` and `write` must never block: they return `WouldBlock` instead, and a
/// readiness event must follow when they can make progress again (for streams that
/// are not sockets, see [`MemoryStream`](crate::MemoryStream)).
pub trait Stream: Read + Write + Source + 'static {
    /// Shuts down the writing half: the peer reads end of file after what was written.
    ///
    /// # Errors
    ///
    /// As `shutdown(2)`.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// This end's address.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`.
    fn local_address(&self) -> io::Result<Address>;

    /// The other end's address.
    ///
    /// # Errors
    ///
    /// As `getpeername(2)`.
    fn peer_address(&self) -> io::Result<Address>;

    /// The pending socket error (`SO_ERROR`), used to learn how a connect ended.
    ///
    /// # Errors
    ///
    /// As `getsockopt(2)`.
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// `Unsupported` for streams that are not TCP.
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let _ = on;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Enables TCP keep-alive probes after `idle` without traffic (`None` disables).
    ///
    /// # Errors
    ///
    /// `Unsupported` for streams that are not TCP.
    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let _ = idle;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Arranges for the close to discard unsent data and reset the connection
    /// (`SO_LINGER` 0), as an abort must.
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    fn set_reset_on_close(&self) -> io::Result<()> {
        Ok(())
    }

    /// The socket's descriptor, for zero-copy sends (`sendfile`); `None` for streams
    /// that are not sockets.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Writes several buffers, in one system call where the stream can.
    ///
    /// # Errors
    ///
    /// As `writev(2)`.
    fn write_vectored_slices(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored(bufs)
    }

    /// Writes `data`, waiting for the stream if it must, when the reactor shuts down
    /// with it still buffered: a program's standard output must not lose what was
    /// written just before it stopped. The default refuses (`Unsupported`): a socket's
    /// unsent data is dropped at shutdown, as Twisted drops it.
    ///
    /// # Errors
    ///
    /// `Unsupported` by default; the stream's write error otherwise.
    fn write_at_shutdown(&mut self, data: &[u8]) -> io::Result<usize> {
        let _ = data;
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Stream for TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn local_address(&self) -> io::Result<Address> {
        self.local_addr().map(Address::Tcp)
    }

    fn peer_address(&self) -> io::Result<Address> {
        self.peer_addr().map(Address::Tcp)
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        TcpStream::take_error(self)
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nodelay(self, on)
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let socket = socket2::SockRef::from(self);
        match idle {
            Some(idle) => socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)),
            None => socket.set_keepalive(false),
        }
    }

    fn set_reset_on_close(&self) -> io::Result<()> {
        socket2::SockRef::from(self).set_linger(Some(Duration::ZERO))
    }

    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

impl Stream for UnixStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn local_address(&self) -> io::Result<Address> {
        self.local_addr().map(Address::from)
    }

    fn peer_address(&self) -> io::Result<Address> {
        self.peer_addr().map(Address::from)
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        UnixStream::take_error(self)
    }

    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}
