//! [`PipeStream`]: standard input and output, or any pair of pipe ends, as one
//! [`Stream`], so the ordinary [`Connection`] logic (buffering, flow control,
//! half-close, reasons) runs over them (Twisted's `StandardIO`, `ProcessReader`,
//! `ProcessWriter`).
//!
//! # Shared descriptors keep their flags
//!
//! `O_NONBLOCK` belongs to the open file *description*, which an inherited stdin or
//! stdout shares with the shell and every other process of a pipeline (twisted #3442).
//! So the flag is never set on a descriptor we were given:
//!
//! * a pipe, FIFO or terminal is opened again through `/proc/self/fd/N`, which gives a
//!   description of our own on the same pipe or device, and that one is made
//!   non-blocking;
//! * a socket is read and written with `MSG_DONTWAIT`, per call;
//! * a regular file (or a block device) never blocks on readiness: it is used as it is,
//!   sharing the file offset as `cat` would, never registered with the poller (epoll
//!   refuses it, twisted #2259), and reported always ready, so the connection reads a
//!   bounded amount of it per turn until end of file, without a polling timer.
//!
//! A character device the poller refuses (`/dev/null`) is likewise always ready.

use std::ffi::CString;
use std::io::{self, IoSlice, Read, Write};
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use reactor::{DescriptorId, Reactor};

use crate::address::Address;
use crate::connection::Connection;
use crate::error::TransportError;
use crate::handler::Handler;
use crate::stream::Stream;

/// How an end is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `recv` / `send` with `MSG_DONTWAIT`: the shared description is left blocking.
    Socket,
    /// `read` / `write` on a descriptor of our own (non-blocking where it can block).
    File,
}

/// One direction: a descriptor of our own, and how to use it.
#[derive(Debug)]
struct End {
    fd: OwnedFd,
    kind: Kind,
    /// The poller reports readiness for it; `false` for regular files and devices the
    /// poller refuses, which are always ready.
    pollable: bool,
    /// The process's own descriptor (0 or 1) this end stands for: pointed at
    /// `/dev/null` when the end closes, so the peer sees end of file (as Twisted closes
    /// it) while the number stays valid for the rest of the program.
    standard: Option<RawFd>,
}

/// Standard input and output (or any readable and writable pipe ends) as one
/// non-blocking [`Stream`]: what [`start_stdio`] puts a handler on.
///
/// Either end may be missing: a stream with only a writable end reports the reading
/// end of its pipe closing as a broken pipe (Twisted's `ProcessWriter` "read hack"),
/// which is how a child closing its stdin early is noticed.
#[derive(Debug)]
pub struct PipeStream {
    input: Option<End>,
    output: Option<End>,
}

impl PipeStream {
    /// The process's standard input (descriptor 0) and output (descriptor 1).
    ///
    /// When the connection ends (or its writing half is shut), the descriptor is
    /// pointed at `/dev/null`: the reader of our output sees end of file, and later
    /// writes to stdout by other code go nowhere instead of to a reused descriptor.
    ///
    /// # Errors
    ///
    /// [`TransportError::Pipe`] if either descriptor is closed, or a pipe or terminal
    /// cannot be opened again through `/proc/self/fd` (no `/proc`).
    pub fn standard() -> Result<PipeStream, TransportError> {
        // SAFETY: 0 and 1 are only borrowed for the calls below; `open_end` fails
        // cleanly (EBADF) if either is closed.
        let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
        let mut input = open_end(stdin, false).map_err(TransportError::Pipe)?;
        let mut output = open_end(stdout, true).map_err(TransportError::Pipe)?;
        input.standard = Some(0);
        output.standard = Some(1);
        Ok(PipeStream {
            input: Some(input),
            output: Some(output),
        })
    }

    /// Any two descriptors as input and output, with the same care as
    /// [`standard`](Self::standard) (the descriptors given are closed when the stream
    /// is dropped; their flags are never changed). `None` leaves a direction out.
    ///
    /// # Errors
    ///
    /// [`TransportError::Pipe`] as for [`standard`](Self::standard).
    pub fn from_fds(
        input: Option<OwnedFd>,
        output: Option<OwnedFd>,
    ) -> Result<PipeStream, TransportError> {
        let input = input
            .map(|fd| open_end(fd.as_fd(), false))
            .transpose()
            .map_err(TransportError::Pipe)?;
        let output = output
            .map(|fd| open_end(fd.as_fd(), true))
            .transpose()
            .map_err(TransportError::Pipe)?;
        Ok(PipeStream { input, output })
    }

    /// Pipe ends that are ours alone (a child's pipes we created): made non-blocking
    /// in place, since no other process shares their descriptions.
    pub(crate) fn from_private_pipes(
        input: Option<OwnedFd>,
        output: Option<OwnedFd>,
    ) -> io::Result<PipeStream> {
        let private = |fd: OwnedFd| -> io::Result<End> {
            set_nonblocking(fd.as_fd())?;
            Ok(End {
                fd,
                kind: Kind::File,
                pollable: true,
                standard: None,
            })
        };
        Ok(PipeStream {
            input: input.map(private).transpose()?,
            output: output.map(private).transpose()?,
        })
    }

    /// Whether the input is always ready (a regular file): no readiness will ever be
    /// reported for it.
    pub fn input_always_ready(&self) -> bool {
        self.input.as_ref().is_some_and(|e| !e.pollable)
    }

    /// Whether the output is always ready (a regular file, `/dev/null`).
    pub fn output_always_ready(&self) -> bool {
        self.output.as_ref().is_some_and(|e| !e.pollable)
    }

    /// The descriptor reads come from, if any.
    pub fn input_fd(&self) -> Option<BorrowedFd<'_>> {
        self.input.as_ref().map(|e| e.fd.as_fd())
    }

    /// The descriptor writes go to, if any.
    pub fn output_fd(&self) -> Option<BorrowedFd<'_>> {
        self.output.as_ref().map(|e| e.fd.as_fd())
    }
}

/// Starts a [`Connection`] with `handler` over `stream` (Twisted's `StandardIO`):
/// `data_received` gets what is read, `write` writes, the input's end of file is
/// [`Handler::read_connection_lost`], and the peer's address is [`Address::Pipe`].
///
/// # Errors
///
/// [`TransportError::Reactor`] if the reactor cannot take the descriptor.
///
/// # Examples
///
/// ```no_run
/// use transport::{start_stdio, DisconnectReason, Handler, PipeStream, Transport};
///
/// struct Upper;
/// impl Handler for Upper {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         t.write(&data.to_ascii_uppercase());
///     }
///     fn connection_lost(&mut self, t: &mut Transport<'_>, _: &DisconnectReason) {
///         t.reactor().stop();
///     }
/// }
///
/// let mut reactor = reactor::Reactor::new()?;
/// start_stdio(&mut reactor, PipeStream::standard()?, Upper)?;
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "StandardIO")]
pub fn start_stdio<H: Handler>(
    reactor: &mut Reactor,
    stream: PipeStream,
    handler: H,
) -> Result<DescriptorId, TransportError> {
    let (readable, writable) = (stream.input_always_ready(), stream.output_always_ready());
    let id = Connection::start(reactor, Box::new(stream), Address::Pipe, handler)?;
    if readable || writable {
        // Nothing will ever report these ready: mark them so once; they stay ready
        // (reads and writes on them never meet `WouldBlock`). A connection that
        // closed itself in `connection_made` is gone already, which is fine.
        let _ = reactor.set_ready(id, readable, writable);
    }
    Ok(id)
}

// ===== opening an end =====

/// Makes an end of our own for `fd`, without changing `fd`'s flags.
fn open_end(fd: BorrowedFd<'_>, write: bool) -> io::Result<End> {
    // SAFETY: `stat` is plain old data; fstat fills it or fails.
    let mut stat: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `fd` is a borrowed, open descriptor; `stat` is a valid out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
    let (fd, kind, pollable) = match stat.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => (fd.try_clone_to_owned()?, Kind::Socket, true),
        libc::S_IFIFO | libc::S_IFCHR => {
            let own = reopen(fd.as_raw_fd(), write)?;
            let pollable = pollable(own.as_fd())?;
            (own, Kind::File, pollable)
        }
        _ => (fd.try_clone_to_owned()?, Kind::File, false),
    };
    Ok(End {
        fd,
        kind,
        pollable,
        standard: None,
    })
}

/// Opens the pipe or device behind `fd` again, non-blocking: a new description.
fn reopen(fd: RawFd, write: bool) -> io::Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{fd}")).map_err(io::Error::other)?;
    let access = if write {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    };
    let flags = access | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    loop {
        // SAFETY: `path` is a valid C string for the length of the call.
        let raw = unsafe { libc::open(path.as_ptr(), flags) };
        if raw >= 0 {
            // SAFETY: `open` just returned this descriptor; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot open descriptor {fd} again through /proc/self/fd: {e}"),
            ));
        }
    }
}

/// Whether epoll accepts `fd` (it refuses regular files and some devices, `EPERM`).
fn pollable(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: no pointers; the result is checked.
    let raw = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `epoll_create1` just returned this descriptor.
    let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: both descriptors are open; `event` is a valid pointer.
    let added = unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            &mut event,
        )
    };
    match cvt(added) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(false),
        Err(e) => Err(e),
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is open; F_GETFL takes no pointer.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above; F_SETFL takes an int.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

// ===== one end's I/O =====

impl End {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let ptr = buf.as_mut_ptr().cast();
        // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is open.
        cvt_size(unsafe {
            match self.kind {
                Kind::Socket => libc::recv(fd, ptr, buf.len(), libc::MSG_DONTWAIT),
                Kind::File => libc::read(fd, ptr, buf.len()),
            }
        })
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        let ptr = buf.as_ptr().cast();
        // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is open.
        cvt_size(unsafe {
            match self.kind {
                Kind::Socket => {
                    libc::send(fd, ptr, buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                }
                Kind::File => libc::write(fd, ptr, buf.len()),
            }
        })
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.kind == Kind::Socket {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            return self.write(first);
        }
        let count = bufs.len().min(1024) as libc::c_int;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix; `count` slices are
        // valid; `fd` is open.
        cvt_size(unsafe { libc::writev(self.fd.as_raw_fd(), bufs.as_ptr().cast(), count) })
    }

    /// Waits until the end can be written (or has failed), however long it takes.
    fn wait_writable(&self) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        match cvt(unsafe { libc::poll(&mut pfd, 1, -1) }) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    /// For a writing end: whether the pipe's reading end has gone (the poller reports
    /// an error on the writing end then).
    fn peer_gone(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; zero timeout.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        ready > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
    }
}

impl Drop for End {
    fn drop(&mut self) {
        let Some(standard) = self.standard else {
            return;
        };
        // SAFETY: a valid C string; the result is checked.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if null >= 0 {
            // SAFETY: both descriptors are open; dup2 replaces `standard` atomically.
            unsafe {
                libc::dup2(null, standard);
                libc::close(null);
            }
        }
    }
}

// ===== impl Stream =====

impl Read for PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (&self.input, &self.output) {
            (Some(input), _) => input.read(buf),
            (None, Some(output)) if output.peer_gone() => Err(io::ErrorKind::BrokenPipe.into()),
            (None, Some(_)) => Err(io::ErrorKind::WouldBlock.into()),
            (None, None) => Ok(0),
        }
    }
}

impl Write for PipeStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.output {
            Some(output) => output.write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.output {
            Some(output) => output.write_vectored(bufs),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for PipeStream {
    fn register(&mut self, registry: &Registry, token: Token, _: Interest) -> io::Result<()> {
        for (end, interest) in self.polled() {
            SourceFd(&end.fd.as_raw_fd()).register(registry, token, interest)?;
        }
        Ok(())
    }

    fn reregister(&mut self, registry: &Registry, token: Token, _: Interest) -> io::Result<()> {
        for (end, interest) in self.polled() {
            SourceFd(&end.fd.as_raw_fd()).reregister(registry, token, interest)?;
        }
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        for (end, _) in self.polled() {
            SourceFd(&end.fd.as_raw_fd()).deregister(registry)?;
        }
        Ok(())
    }
}

impl PipeStream {
    /// The ends the poller watches, each for its own direction.
    fn polled(&self) -> impl Iterator<Item = (&End, Interest)> {
        let input = self.input.iter().map(|e| (e, Interest::READABLE));
        let output = self.output.iter().map(|e| (e, Interest::WRITABLE));
        input.chain(output).filter(|(e, _)| e.pollable)
    }
}

impl Stream for PipeStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self.output.take() {
            Some(end) if end.kind == Kind::Socket => {
                // SAFETY: `end.fd` is open.
                let shut = cvt(unsafe { libc::shutdown(end.fd.as_raw_fd(), libc::SHUT_WR) });
                self.output = Some(end);
                shut.map(drop)
            }
            // Closing our description (and pointing a standard descriptor at
            // /dev/null) is what makes the reader see end of file.
            Some(end) => {
                drop(end);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn local_address(&self) -> io::Result<Address> {
        Ok(Address::Pipe)
    }

    fn peer_address(&self) -> io::Result<Address> {
        Ok(Address::Pipe)
    }

    fn write_vectored_slices(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored(bufs)
    }

    fn write_at_shutdown(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(output) = &self.output else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        loop {
            match output.write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => output.wait_writable()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}
