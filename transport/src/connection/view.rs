//! [`Transport`]: the view of its connection a handler gets in every callback, and
//! the methods it calls on it (Twisted's `ITransport`, `ITCPTransport`, `IConsumer`).

use std::io::{self, IoSlice};
use std::time::Duration;

use reactor::{DescriptorId, Reactor};

use super::core::{Core, Producer, State, WriteHalf};
use crate::address::Address;
use crate::reason::DisconnectReason;
use crate::stream::Stream;

/// A handler's view of its connection, lent for the length of one callback: write,
/// close, flow control, addresses, and the reactor (Twisted's `ITransport`,
/// `ITCPTransport`, `IConsumer`).
///
/// After the connection is lost it still answers [`get_host`](Self::get_host) and
/// [`get_peer`](Self::get_peer); writes are ignored.
pub struct Transport<'a> {
    pub(super) core: &'a mut Core,
    pub(super) reactor: &'a mut Reactor,
}

impl std::fmt::Debug for Transport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("host", &self.core.host.get())
            .field("peer", &self.core.peer)
            .field("state", &self.core.state)
            .field("buffered", &self.core.out.len())
            .finish()
    }
}

// ===== impl ITransport =====

impl Transport<'_> {
    /// Writes `data`: never blocks and never reorders. The socket is tried at once;
    /// whatever it does not take is buffered and flushed when it becomes writable.
    ///
    /// Refused once the connection is closed or closing by abort, or its writing half
    /// is shut down (after [`lose_write_connection`](Self::lose_write_connection) has
    /// completed): the bytes are dropped and counted in
    /// [`bytes_refused`](Self::bytes_refused), and a write after the writing half was
    /// shut (a protocol bug, since the handler was told with `write_connection_lost`)
    /// is logged as a warning, once per connection.
    pub fn write(&mut self, data: &[u8]) {
        self.write_sequence(&[data]);
    }

    /// Writes several buffers in order, in one system call where possible (Twisted's
    /// `writeSequence`).
    #[doc(alias = "writeSequence")]
    pub fn write_sequence(&mut self, data: &[&[u8]]) {
        let core = &mut *self.core;
        let total: usize = data.iter().map(|d| d.len()).sum();
        if core.refuses_writes() {
            core.refuse(total);
            return;
        }
        if total == 0 {
            return;
        }
        let mut skip = 0;
        if core.out.is_empty() {
            match write_direct(core.stream.as_mut(), data) {
                Ok(n) => skip = n,
                Err(e) => {
                    core.end(DisconnectReason::from_io(e));
                    return;
                }
            }
            core.bytes_sent += skip as u64;
        }
        if skip == total {
            self.ask_producer_again();
            return;
        }
        // The socket took less than everything: it would block.
        core.write_blocked = true;
        let was_empty = core.out.is_empty();
        for chunk in data {
            if skip >= chunk.len() {
                skip -= chunk.len();
                continue;
            }
            core.out.push(&chunk[skip..]);
            skip = 0;
        }
        if let Some(limit) = core.max_buffer() {
            if core.out.len() > limit {
                core.end(DisconnectReason::BufferOverflow { limit });
                return;
            }
        }
        if was_empty {
            core.interest(self.reactor, Reactor::add_writer);
        }
    }

    /// Closes the connection once everything written so far has been sent (Twisted's
    /// `loseConnection`); reading stops at once. With a close timeout set, a peer that
    /// does not take the data in time gets the connection aborted.
    ///
    /// A registered *pull* producer holds the close until it unregisters (it is still
    /// asked for more each time the buffer drains). A *streaming* producer does not:
    /// once the buffer drains the connection closes and the producer is told
    /// [`stop_producing`](crate::Handler::stop_producing), as in Twisted. So a
    /// streaming producer calls this after its last write.
    #[doc(alias = "loseConnection")]
    pub fn lose_connection(&mut self) {
        if self.core.state == State::Open {
            self.core.state = State::Closing;
            self.core.interest(self.reactor, Reactor::remove_reader);
        }
    }

    /// Closes the connection now, discarding anything unsent and resetting it
    /// (Twisted's `abortConnection`). The reason given is
    /// [`DisconnectReason::Aborted`]; for a deadline that passed, see
    /// [`abort_timed_out`](Self::abort_timed_out).
    #[doc(alias = "abortConnection")]
    pub fn abort_connection(&mut self) {
        self.core.end(DisconnectReason::Aborted);
    }

    /// Shuts down the writing half once everything written has been sent (Twisted's
    /// `loseWriteConnection`); the peer reads end of file, and we keep reading. A
    /// registered producer is waited for as by
    /// [`lose_connection`](Self::lose_connection); a streaming producer still
    /// registered when the half is shut is told
    /// [`stop_producing`](crate::Handler::stop_producing) and unregistered.
    #[doc(alias = "loseWriteConnection")]
    pub fn lose_write_connection(&mut self) {
        if self.core.state != State::Closed && self.core.write_half == WriteHalf::Open {
            self.core.write_half = WriteHalf::ShutdownRequested;
        }
    }

    /// Sends up to `len` bytes of `file`, from `offset`, straight from the page cache
    /// to the socket (`sendfile(2)`, zero copy): the fast path for a producer streaming
    /// a file. Returns how many bytes went; 0 means the file has no bytes at `offset`.
    ///
    /// Nothing is reordered: while earlier writes are still buffered it sends nothing
    /// and answers `WouldBlock`, as it does when the socket is full; a pull producer is
    /// asked again once the socket drains.
    ///
    /// # Errors
    ///
    /// `WouldBlock` as above; `Unsupported` for streams that are not sockets (write
    /// the bytes instead); `BrokenPipe` once the connection is closing or closed; the
    /// error of `sendfile(2)` otherwise (the connection is then closed with it).
    pub fn send_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let Some(socket) = self.core.stream.raw_fd() else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        self.may_send_unbuffered()?;
        let mut off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        loop {
            // SAFETY: both descriptors are open for the length of the call, and `off`
            // is a valid, exclusive pointer.
            let sent = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut off, len) };
            if sent >= 0 {
                self.core.bytes_sent += sent as u64;
                if sent > 0 {
                    self.ask_producer_again();
                }
                return Ok(sent as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    self.wait_for_drain();
                    return Err(e);
                }
                _ if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                    return Err(io::Error::new(io::ErrorKind::Unsupported, e));
                }
                _ => return Err(self.fail_send(e)),
            }
        }
    }

    /// Writes as much of `data` as the socket takes now and keeps none of the rest: a
    /// write that never buffers, for a producer whose bytes the transport must not
    /// copy or read (a mapped file, whose pages the kernel reads during the call and
    /// nobody after it). Returns how many bytes went; the producer offers the rest
    /// again when asked. Only a descriptor-backed stream ([`handle`](Self::handle) is
    /// `Some`) leaves the bytes to the kernel alone; an in-memory stream copies them.
    ///
    /// As [`send_file`](Self::send_file): nothing is reordered (while earlier writes
    /// are still buffered it sends nothing and answers `WouldBlock`, as it does when
    /// the socket is full), and a registered pull producer is asked again once the
    /// socket drains (anyone else writes again on their own schedule).
    ///
    /// # Errors
    ///
    /// `WouldBlock` as above; `BrokenPipe` once the connection is closing or closed;
    /// the write's error otherwise (the connection is then closed with it: `EFAULT`,
    /// for one, when the pages of a mapped file were cut off by a truncation).
    pub fn write_now(&mut self, data: &[u8]) -> io::Result<usize> {
        self.may_send_unbuffered()?;
        if data.is_empty() {
            return Ok(0);
        }
        match write_direct(self.core.stream.as_mut(), &[data]) {
            Ok(0) => {
                self.wait_for_drain();
                Err(io::ErrorKind::WouldBlock.into())
            }
            Ok(sent) => {
                self.core.bytes_sent += sent as u64;
                if sent < data.len() {
                    // The socket said it would block: nothing more until it drains.
                    self.wait_for_drain();
                } else {
                    self.ask_producer_again();
                }
                Ok(sent)
            }
            Err(e) => Err(self.fail_send(e)),
        }
    }

    /// Whether an unbuffered send ([`send_file`](Self::send_file),
    /// [`write_now`](Self::write_now)) may go now: `BrokenPipe` once writes are
    /// refused; `WouldBlock`, marked blocked, while earlier writes are still buffered
    /// (so nothing is reordered).
    fn may_send_unbuffered(&mut self) -> io::Result<()> {
        let core = &mut *self.core;
        if core.refuses_writes() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if !core.out.is_empty() {
            core.write_blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    /// The socket said it would block: nothing more is sent until it drains.
    fn wait_for_drain(&mut self) {
        self.core.write_blocked = true;
        self.core.interest(self.reactor, Reactor::add_writer);
    }

    /// An unbuffered send failed with `e`: the connection ends with it, and `e` goes
    /// back to the caller.
    fn fail_send(&mut self, e: io::Error) -> io::Error {
        let reason = DisconnectReason::from_io(io::Error::new(e.kind(), e.to_string()));
        self.core.end(reason);
        e
    }

    /// Aborts the connection because a deadline passed (an idle timeout, a peer too
    /// slow to take the end of a send): as [`abort_connection`](Self::abort_connection),
    /// a reset, but the reason given is [`DisconnectReason::TimedOut`] (Twisted's
    /// `TimeoutMixin` aborts the same way, reporting `ConnectionAborted`).
    pub fn abort_timed_out(&mut self) {
        self.core.end(DisconnectReason::TimedOut);
    }

    /// A shorter-lived copy of this view. Not part of the supported API (hidden from
    /// the docs): the protocol crate wraps the view in its `Context` with it, which a
    /// handler's `&mut Transport<'_>` cannot do otherwise without changing every
    /// handler's signature. A handler has no use for it.
    #[doc(hidden)]
    pub fn reborrow(&mut self) -> Transport<'_> {
        Transport {
            core: self.core,
            reactor: self.reactor,
        }
    }

    /// This end's address (Twisted's `getHost`).
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> &Address {
        self.core.host()
    }

    /// The other end's address (Twisted's `getPeer`).
    #[doc(alias = "getPeer")]
    pub fn get_peer(&self) -> &Address {
        &self.core.peer
    }

    /// Whether the connection is still open and not closing.
    pub fn is_open(&self) -> bool {
        self.core.state == State::Open && self.core.ending.is_none()
    }

    /// Bytes written but not yet accepted by the socket.
    pub fn buffered(&self) -> usize {
        self.core.out.len()
    }

    /// Whether a write met `WouldBlock` since the socket was last reported writable:
    /// writing more now would only be buffered.
    pub fn write_blocked(&self) -> bool {
        self.core.write_blocked || !self.core.out.is_empty()
    }

    /// Bytes received so far on this connection.
    pub fn bytes_received(&self) -> u64 {
        self.core.bytes_received
    }

    /// Bytes the socket has accepted so far on this connection.
    pub fn bytes_sent(&self) -> u64 {
        self.core.bytes_sent
    }

    /// Bytes the peer has acknowledged so far: [`bytes_sent`](Self::bytes_sent) less
    /// what still waits in the kernel's send queue (`SIOCOUTQ`). It moves when the
    /// peer reads, even while the socket's buffer is too full to take more from us.
    /// Streams that are not sockets answer `bytes_sent`.
    pub fn bytes_acked(&self) -> u64 {
        if self.core.bytes_sent == 0 {
            return 0; // Nothing sent, nothing to ask the kernel (no system call).
        }
        let queued = self.core.stream.raw_fd().and_then(unsent_in_kernel);
        self.core.bytes_sent - queued.unwrap_or(0).min(self.core.bytes_sent)
    }

    /// The socket's descriptor, borrowed, for the options the transport has no method
    /// for (Twisted's `getHandle`); `None` for streams that are not sockets. Do not
    /// read, write or close through it: the transport owns the stream.
    #[doc(alias = "getHandle")]
    pub fn handle(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        let fd = self.core.stream.raw_fd()?;
        // SAFETY: the stream owns `fd` and outlives the borrow, which is tied to
        // `self` and so to the connection.
        Some(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
    }

    /// Bytes written after writes were refused (see [`write`](Self::write)): dropped,
    /// never sent.
    pub fn bytes_refused(&self) -> u64 {
        self.core.settings.as_ref().map_or(0, |s| s.bytes_refused)
    }

    /// A pull producer that wrote is asked again once the socket has taken it (as
    /// Twisted's `write` calls `startWriting`); one that writes nothing is not.
    fn ask_producer_again(&mut self) {
        if self.core.producer == Some(Producer::Pull) {
            self.core.interest(self.reactor, Reactor::add_writer);
        }
    }

    /// The reactor the connection lives on: schedule calls, stop it.
    pub fn reactor(&mut self) -> &mut Reactor {
        self.reactor
    }

    /// The connection's id in the reactor: it has it from before `connection_made`.
    pub fn id(&self) -> DescriptorId {
        self.core.id
    }
}

// ===== impl ITCPTransport =====

impl Transport<'_> {
    /// Sets `TCP_NODELAY` (Twisted's `setTcpNoDelay`).
    ///
    /// # Errors
    ///
    /// `Unsupported` for streams that are not TCP, or the socket's error.
    #[doc(alias = "setTcpNoDelay")]
    pub fn set_tcp_nodelay(&mut self, on: bool) -> io::Result<()> {
        self.core.stream.set_nodelay(on)
    }

    /// Enables TCP keep-alive probes after `idle` without traffic; `None` disables
    /// them (Twisted's `setTcpKeepAlive`).
    ///
    /// # Errors
    ///
    /// `Unsupported` for streams that are not TCP, or the socket's error.
    #[doc(alias = "setTcpKeepAlive")]
    pub fn set_tcp_keepalive(&mut self, idle: Option<Duration>) -> io::Result<()> {
        self.core.stream.set_keepalive(idle)
    }
}

// ===== impl IConsumer, flow control =====

impl Transport<'_> {
    /// Stops reading: no `data_received` until [`resume_reading`](Self::resume_reading)
    /// (Twisted's `pauseProducing` on the transport). Readiness that arrives meanwhile
    /// is kept.
    #[doc(alias = "stopReading")]
    pub fn pause_reading(&mut self) {
        self.core.reading_paused = true;
        self.core.interest(self.reactor, Reactor::remove_reader);
    }

    /// Starts reading again after [`pause_reading`](Self::pause_reading).
    #[doc(alias = "startReading")]
    pub fn resume_reading(&mut self) {
        self.core.reading_paused = false;
        if self.core.state == State::Open && !self.core.read_closed {
            self.core.interest(self.reactor, Reactor::add_reader);
        }
    }

    /// Makes the handler this connection's producer (Twisted's `registerProducer`):
    /// streaming (push, paused and resumed at the water marks) or not (pull: asked for
    /// more whenever the buffer drains). See [`Handler`](crate::Handler#producers) for
    /// when a close waits for it and when it is told `stop_producing`. Ignored once
    /// the connection is lost; on a connection whose writing half is shut, the
    /// producer is stopped as soon as the callback returns.
    #[doc(alias = "registerProducer")]
    pub fn register_producer(&mut self, streaming: bool) {
        if self.core.state == State::Closed {
            return;
        }
        self.core.producer = Some(if streaming {
            Producer::Push { paused: false }
        } else {
            Producer::Pull
        });
        if !streaming {
            self.core.interest(self.reactor, Reactor::add_writer);
        }
    }

    /// Stops treating the handler as a producer (Twisted's `unregisterProducer`); a
    /// close or half-close that a pull producer held can then complete. The handler
    /// is not told `stop_producing`: it asked.
    #[doc(alias = "unregisterProducer")]
    pub fn unregister_producer(&mut self) {
        self.core.producer = None;
    }

    /// Sets the write buffer's water marks for producers.
    ///
    /// # Panics
    ///
    /// If `low > high`.
    pub fn set_write_buffer_limits(&mut self, high: usize, low: usize) {
        assert!(
            low <= high,
            "low-water mark {low} above high-water mark {high}"
        );
        let settings = self.core.settings_mut();
        settings.high_water = high;
        settings.low_water = low;
    }

    /// Sets a hard limit on the write buffer: a write that takes it past `limit` aborts
    /// the connection with [`DisconnectReason::BufferOverflow`]. `None` (the default)
    /// leaves it unbounded, as Twisted does.
    pub fn set_max_write_buffer(&mut self, limit: Option<usize>) {
        self.core.settings_mut().max_buffer = limit;
    }

    /// Sets the grace period of `lose_connection`: if the buffer has not drained
    /// `timeout` after it, the connection is aborted with
    /// [`DisconnectReason::TimedOut`]. `None` (the default) waits for ever.
    pub fn set_close_timeout(&mut self, timeout: Option<Duration>) {
        self.core.settings_mut().close_timeout = timeout;
    }
}

/// Bytes in the socket's send queue not yet acknowledged by the peer (`SIOCOUTQ`).
fn unsent_in_kernel(fd: std::os::fd::RawFd) -> Option<u64> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int through the valid pointer we pass.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
    (rc == 0).then(|| u64::try_from(queued).unwrap_or(0))
}

/// Writes as much of `data` as the stream takes now; `WouldBlock` is not an error.
fn write_direct(stream: &mut dyn Stream, data: &[&[u8]]) -> io::Result<usize> {
    let mut written = 0;
    let total: usize = data.iter().map(|d| d.len()).sum();
    while written < total {
        let result = if data.len() == 1 {
            stream.write(&data[0][written..])
        } else {
            let mut skip = written;
            let slices: Vec<IoSlice<'_>> = data
                .iter()
                .filter_map(|d| {
                    if skip >= d.len() {
                        skip -= d.len();
                        None
                    } else {
                        let s = IoSlice::new(&d[skip..]);
                        skip = 0;
                        Some(s)
                    }
                })
                .collect();
            stream.write_vectored_slices(&slices)
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
