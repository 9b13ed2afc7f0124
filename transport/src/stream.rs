//! [`Stream`]: the small byte-stream trait the transport's logic is written over.
//!
//! TCP and Unix sockets implement it here; [`MemoryStream`](crate::MemoryStream)
//! implements it in memory, so tests drive the very same transport code.

use std::any::Any;
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
pub trait Stream: Any + Read + Write + Source + 'static {
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

/// How a connection holds its stream: a socket inline (the common case: its
/// descriptor number, and no allocation of its own), any other stream boxed twice, so
/// the field is 16 bytes (a `Box<dyn Stream>` beside an inline socket would make it
/// 24). An idle TCP connection so costs no 32-byte heap block for a boxed descriptor.
pub(crate) enum HeldStream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Other(Box<Box<dyn Stream>>),
}

impl HeldStream {
    /// Takes `stream` out of its box if it is a TCP or Unix socket.
    pub(crate) fn new(stream: Box<dyn Stream>) -> HeldStream {
        let any = &*stream as &dyn Any;
        if any.is::<TcpStream>() {
            // SAFETY: the box holds a `TcpStream` (checked just above): see `unbox`.
            return HeldStream::Tcp(unsafe { unbox(stream) });
        }
        if any.is::<UnixStream>() {
            // SAFETY: the box holds a `UnixStream` (checked just above).
            return HeldStream::Unix(unsafe { unbox(stream) });
        }
        HeldStream::Other(Box::new(stream))
    }

    /// The stream.
    pub(crate) fn as_mut(&mut self) -> &mut dyn Stream {
        match self {
            HeldStream::Tcp(tcp) => tcp,
            HeldStream::Unix(unix) => unix,
            HeldStream::Other(stream) => stream.as_mut().as_mut(),
        }
    }
}

/// The `T` in `stream`'s box, out of it.
///
/// # Safety
///
/// `stream` must hold a `T`. The data half of the fat pointer then points to a `T`
/// that a `Box<T>` allocated with `T`'s layout, so `Box::from_raw` takes that same
/// allocation back with its real type, as `Box::<dyn Any>::downcast` does.
unsafe fn unbox<T: Stream>(stream: Box<dyn Stream>) -> T {
    debug_assert!((&*stream as &dyn Any).is::<T>());
    // SAFETY: as the caller promised, above.
    *unsafe { Box::from_raw(Box::into_raw(stream).cast::<T>()) }
}

impl std::ops::Deref for HeldStream {
    type Target = dyn Stream;

    fn deref(&self) -> &(dyn Stream + 'static) {
        match self {
            HeldStream::Tcp(tcp) => tcp,
            HeldStream::Unix(unix) => unix,
            HeldStream::Other(stream) => stream.as_ref().as_ref(),
        }
    }
}

impl std::ops::DerefMut for HeldStream {
    fn deref_mut(&mut self) -> &mut (dyn Stream + 'static) {
        self.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_held_inline_and_other_streams_boxed() {
        // Mio's sockets carry a selector id in debug builds: 4 bytes in release.
        let socket = std::mem::size_of::<TcpStream>().max(8);
        assert_eq!(std::mem::size_of::<HeldStream>(), 8 + socket);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let held = HeldStream::new(Box::new(TcpStream::from_std(server)));
        assert!(matches!(held, HeldStream::Tcp(_)));
        assert_eq!(
            held.peer_address().unwrap(),
            Address::Tcp(client.local_addr().unwrap())
        );
        let (ours, _theirs) = crate::MemoryStream::pair(16);
        let held = HeldStream::new(Box::new(ours));
        assert!(matches!(held, HeldStream::Other(_)));
        let (unix, _other) = UnixStream::pair().unwrap();
        let held = HeldStream::new(Box::new(unix));
        assert!(matches!(held, HeldStream::Unix(_)));
        assert!(held.peer_address().is_ok());
    }
}
