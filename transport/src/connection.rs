//! [`Connection`]: a stream transport that *is* a reactor descriptor (Twisted's
//! `tcp.Connection` / `abstract.FileDescriptor`), and [`Transport`], the view of it a
//! handler gets in every callback (Twisted's `ITransport`, `ITCPTransport`,
//! `IConsumer`).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use log::{debug, error, trace};
use reactor::{
    panic_message, DelayedCall, Descriptor, DescriptorId, IoStatus, LostReason, Reactor,
    ReactorError, Removed,
};

use crate::address::Address;
use crate::error::TransportError;
use crate::handler::{EofAction, Handler};
use crate::reason::DisconnectReason;
use crate::stream::Stream;
use crate::write_buffer::WriteBuffer;

/// Size of the read buffer, shared by every connection of a thread.
pub const READ_CHUNK: usize = 64 * 1024;
/// Reads per readiness event before yielding to other descriptors.
pub const MAX_READS_PER_TURN: usize = 16;
/// `resume_producing` calls per write readiness for a pull producer before yielding.
const MAX_PULLS_PER_TURN: usize = 16;
/// Default high-water mark of the write buffer (Twisted's `bufferSize`).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// Default low-water mark of the write buffer.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

thread_local! {
    /// One read buffer per thread, lent to whichever connection is reading, so an idle
    /// connection holds no read buffer at all.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn take_scratch() -> Vec<u8> {
    let buf = SCRATCH.with(|s| mem::take(&mut *s.borrow_mut()));
    if buf.len() == READ_CHUNK {
        buf
    } else {
        vec![0; READ_CHUNK]
    }
}

fn return_scratch(buf: Vec<u8>) {
    SCRATCH.with(|s| *s.borrow_mut() = buf);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// `lose_connection` was called: flushing, then closing.
    Closing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteHalf {
    Open,
    /// `lose_write_connection` was called: flushing, then `shutdown(Write)`.
    ShutdownRequested,
    Shut,
}

/// The registered producer: the handler, in one of Twisted's two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    /// `IPushProducer`: writes on its own, paused and resumed at the water marks.
    Push { paused: bool },
    /// `IPullProducer`: writes when asked, once per drained buffer.
    Pull,
}

/// The connection's state below the handler: the stream, its buffer and its flags.
struct Core {
    stream: Box<dyn Stream>,
    /// Its id in the reactor, where it stays until `finish` (which marks it `Closed`
    /// first): while not `Closed`, the reactor holds it under this id.
    id: DescriptorId,
    /// This end's address, read from the socket the first time it is asked for.
    host: std::cell::OnceCell<Box<Address>>,
    peer: Address,
    out: WriteBuffer,
    /// Flow-control and close settings; `None` (the defaults) costs one pointer.
    settings: Option<Box<Settings>>,
    state: State,
    write_half: WriteHalf,
    read_closed: bool,
    reading_paused: bool,
    abort_requested: bool,
    /// A failure met inside a callback (a direct write that broke), acted on after it.
    failure: Option<DisconnectReason>,
    producer: Option<Producer>,
    bytes_received: u64,
    bytes_sent: u64,
    /// A write (or `send_file`) met `WouldBlock` since the last write readiness.
    write_blocked: bool,
}

/// A handler's view of its connection, lent for the length of one callback: write,
/// close, flow control, addresses, and the reactor (Twisted's `ITransport`,
/// `ITCPTransport`, `IConsumer`).
///
/// After the connection is lost it still answers [`get_host`](Self::get_host) and
/// [`get_peer`](Self::get_peer); writes are ignored.
pub struct Transport<'a> {
    core: &'a mut Core,
    reactor: &'a mut Reactor,
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
                    core.failure = Some(DisconnectReason::from_io(e));
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
                core.failure = Some(DisconnectReason::BufferOverflow { limit });
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
        if self.core.state != State::Closed {
            self.core.abort_requested = true;
        }
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
        let core = &mut *self.core;
        let Some(socket) = core.stream.raw_fd() else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        if core.refuses_writes() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if !core.out.is_empty() {
            core.write_blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        loop {
            // SAFETY: both descriptors are open for the length of the call, and `off`
            // is a valid, exclusive pointer.
            let sent = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut off, len) };
            if sent >= 0 {
                core.bytes_sent += sent as u64;
                if sent > 0 {
                    self.ask_producer_again();
                }
                return Ok(sent as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    core.write_blocked = true;
                    core.interest(self.reactor, Reactor::add_writer);
                    return Err(e);
                }
                _ if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                    return Err(io::Error::new(io::ErrorKind::Unsupported, e));
                }
                _ => {
                    core.failure = Some(DisconnectReason::from_io(io::Error::new(
                        e.kind(),
                        e.to_string(),
                    )));
                    return Err(e);
                }
            }
        }
    }

    /// Aborts the connection because a deadline passed (an idle timeout, a peer too
    /// slow to take the end of a send): as [`abort_connection`](Self::abort_connection),
    /// a reset, but the reason given is [`DisconnectReason::TimedOut`] (Twisted's
    /// `TimeoutMixin` aborts the same way, reporting `ConnectionAborted`).
    pub fn abort_timed_out(&mut self) {
        if self.core.state != State::Closed && self.core.failure.is_none() {
            self.core.failure = Some(DisconnectReason::TimedOut);
        }
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
        self.core.state == State::Open && !self.core.abort_requested && self.core.failure.is_none()
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

/// What a connection rarely changes from the defaults, kept out of line.
#[derive(Debug)]
struct Settings {
    high_water: usize,
    low_water: usize,
    max_buffer: Option<usize>,
    close_timeout: Option<Duration>,
    close_timer: Option<DelayedCall>,
    /// Bytes of writes refused (see `Transport::write`).
    bytes_refused: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            high_water: DEFAULT_HIGH_WATER,
            low_water: DEFAULT_LOW_WATER,
            max_buffer: None,
            close_timeout: None,
            close_timer: None,
            bytes_refused: 0,
        }
    }
}

impl Core {
    /// The state of a connection just made, as `id` in its reactor.
    fn new(id: DescriptorId, stream: Box<dyn Stream>, peer: Address) -> Core {
        Core {
            stream,
            id,
            host: std::cell::OnceCell::new(),
            peer,
            out: WriteBuffer::default(),
            settings: None,
            state: State::Open,
            write_half: WriteHalf::Open,
            read_closed: false,
            reading_paused: false,
            abort_requested: false,
            failure: None,
            producer: None,
            bytes_received: 0,
            bytes_sent: 0,
            write_blocked: false,
        }
    }

    /// Whether writes are refused now: the connection is closed or failing, or its
    /// writing half is shut. A writing half that is only closing
    /// (`ShutdownRequested`) still takes writes: they go out before the shutdown, as
    /// after `lose_connection` (and in Twisted).
    fn refuses_writes(&self) -> bool {
        self.state == State::Closed
            || self.write_half == WriteHalf::Shut
            || self.failure.is_some()
            || self.abort_requested
    }

    /// At reactor shutdown: hands what is still buffered to a stream that must not
    /// lose it (standard output); other streams refuse, and it is dropped.
    fn write_out_at_shutdown(&mut self) {
        while !self.out.is_empty() {
            match self.stream.write_at_shutdown(self.out.as_slice()) {
                Ok(n) if n > 0 => {
                    self.out.consume(n);
                    self.bytes_sent += n as u64;
                }
                _ => break,
            }
        }
    }

    /// Counts a refused write of `len` bytes; the first one after our writing half
    /// was shut, while the connection is otherwise alive, is a protocol bug: warned.
    fn refuse(&mut self, len: usize) {
        let bug = self.write_half == WriteHalf::Shut && self.state != State::Closed;
        let settings = self.settings_mut();
        let first = settings.bytes_refused == 0;
        settings.bytes_refused += len as u64;
        if bug && first {
            log::warn!(
                "connection {:?}: write of {len} bytes after its writing half was shut down; refused",
                self.id
            );
        }
    }

    /// Whether a close (or a half-close) must still wait for the producer: only a
    /// pull producer holds it, while its writes can still go out. It writes when
    /// asked and alone knows when it is done, so it says so by unregistering. A
    /// streaming producer writes on its own schedule and never holds a close: once
    /// the buffer drains, the close goes ahead and it is told `stop_producing`, as
    /// Twisted's `doWrite` does. (A paused one was resumed at the low-water mark,
    /// before the buffer could drain, so it had its chance to write.)
    fn producer_holds_close(&self) -> bool {
        self.producer == Some(Producer::Pull) && self.write_half != WriteHalf::Shut
    }

    /// Changes the connection's interest with the reactor, unless it is closed. The
    /// reactor cannot refuse: a connection not `Closed` is in the reactor under its id
    /// (see `Core::id`).
    fn interest(
        &self,
        reactor: &mut Reactor,
        change: fn(&mut Reactor, DescriptorId) -> Result<(), ReactorError>,
    ) {
        if self.state != State::Closed {
            let changed = change(reactor, self.id);
            debug_assert!(changed.is_ok(), "connection {}: {changed:?}", self.id);
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        self.settings.get_or_insert_with(Box::default)
    }

    fn high_water(&self) -> usize {
        self.settings
            .as_ref()
            .map_or(DEFAULT_HIGH_WATER, |s| s.high_water)
    }

    fn low_water(&self) -> usize {
        self.settings
            .as_ref()
            .map_or(DEFAULT_LOW_WATER, |s| s.low_water)
    }

    fn max_buffer(&self) -> Option<usize> {
        self.settings.as_ref().and_then(|s| s.max_buffer)
    }

    /// This end's address; asked of the socket once, on first use.
    fn host(&self) -> &Address {
        self.host
            .get_or_init(|| Box::new(self.stream.local_address().unwrap_or(Address::Unix(None))))
    }
}

/// A stream connection: the reactor's read and write descriptor for one socket (or
/// in-memory stream), delivering bytes to its [`Handler`].
///
/// Generic over the handler only; the stream is boxed, so every connection of a given
/// handler has one concrete type, which timers use to find it again with
/// [`Connection::with_handler`] (a virtual call per system call is noise next to the
/// system call).
pub struct Connection<H> {
    core: Core,
    handler: H,
}

impl<H> std::fmt::Debug for Connection<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.core.host.get())
            .field("peer", &self.core.peer)
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Connection<H> {
    /// Puts a connected `stream` to `peer` in the reactor, reading, and calls the
    /// handler's `connection_made` (Twisted builds a `tcp.Connection` and calls
    /// `makeConnection`). Returns the connection's id, which the handler already had.
    ///
    /// The caller names the peer: whoever made the stream knows it (`accept` and a
    /// connect return it, a pipe's is [`Address::Pipe`]), and asking the socket
    /// would cost a system call per connection. For a stream of unknown origin,
    /// [`Stream::peer_address`] asks it.
    ///
    /// # Errors
    ///
    /// [`TransportError::Reactor`] if the reactor cannot take another descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::Reactor;
    /// use transport::{Connection, DisconnectReason, Handler, MemoryStream, Stream, Transport};
    ///
    /// struct Quiet;
    /// impl Handler for Quiet {
    ///     fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}
    ///     fn connection_lost(&mut self, _: &mut Transport<'_>, _: &DisconnectReason) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (ours, _theirs) = MemoryStream::pair(1024);
    /// let peer = ours.peer_address()?;
    /// let id = Connection::start(&mut reactor, Box::new(ours), peer, Quiet)?;
    /// assert!(reactor.contains(id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(
        reactor: &mut Reactor,
        stream: Box<dyn Stream>,
        peer: Address,
        handler: H,
    ) -> Result<DescriptorId, TransportError> {
        let id = reactor.insert_with(|id| {
            Box::new(Connection {
                core: Core::new(id, stream, peer),
                handler,
            })
        })?;
        reactor.add_reader(id)?;
        reactor.with_descriptor::<Self, _>(id, |conn, reactor| {
            trace!("connection {id} made with {}", conn.core.peer);
            conn.invoke(reactor, |h, t| h.connection_made(t));
        });
        Ok(id)
    }

    /// Calls `f` with the handler of connection `id` and its transport, then acts on
    /// what `f` asked for (writes, closes): how a timer or other code outside the
    /// connection's own callbacks reaches it. Returns `None` if the connection is gone
    /// (or is not a `Connection<H>`), or if `f` panicked (the connection is then
    /// closed with [`DisconnectReason::Panicked`]).
    pub fn with_handler<R>(
        reactor: &mut Reactor,
        id: DescriptorId,
        f: impl FnOnce(&mut H, &mut Transport<'_>) -> R,
    ) -> Option<R> {
        reactor
            .with_descriptor::<Self, _>(id, |conn, reactor| conn.invoke(reactor, f))
            .flatten()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Runs one handler callback, catching a panic; no follow-up.
    fn call<R>(
        &mut self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut H, &mut Transport<'_>) -> R,
    ) -> Result<R, String> {
        let core = &mut self.core;
        let handler = &mut self.handler;
        panic::catch_unwind(AssertUnwindSafe(|| {
            let mut transport = Transport { core, reactor };
            f(handler, &mut transport)
        }))
        .map_err(|payload| panic_message(payload.as_ref()))
    }

    /// Runs one handler callback, then acts on what it asked for.
    fn invoke<R>(
        &mut self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut H, &mut Transport<'_>) -> R,
    ) -> Option<R> {
        if self.core.state == State::Closed {
            return None;
        }
        match self.call(reactor, f) {
            Ok(value) => {
                self.settle(reactor);
                Some(value)
            }
            Err(msg) => {
                error!(
                    "connection {:?} to {}: protocol panicked: {msg}",
                    self.core.id, self.core.peer
                );
                self.finish(reactor, DisconnectReason::Panicked(msg));
                None
            }
        }
    }

    /// Acts on the state the last callback left: failures, aborts, producer
    /// notifications, interest, and closes that are now due.
    fn settle(&mut self, reactor: &mut Reactor) {
        // Each producer notification may write again; a few rounds settle it.
        for _ in 0..4 {
            if let Some(reason) = self.core.failure.take() {
                return self.finish(reactor, reason);
            }
            if self.core.abort_requested {
                return self.finish(reactor, DisconnectReason::Aborted);
            }
            match self.core.producer {
                Some(Producer::Push { paused: false })
                    if self.core.out.len() > self.core.high_water() =>
                {
                    self.core.producer = Some(Producer::Push { paused: true });
                    if let Err(msg) = self.call(reactor, |h, t| h.pause_producing(t)) {
                        return self.finish(reactor, DisconnectReason::Panicked(msg));
                    }
                }
                _ => break,
            }
        }
        if !self.core.out.is_empty() {
            return self.arm_close_timer(reactor);
        }
        // The grace period covers a buffer waiting to drain, nothing else.
        self.cancel_close_timer(reactor);
        if self.core.write_half == WriteHalf::Shut && self.core.producer.is_some() {
            // Registered after the writing half was shut: nothing it writes can go.
            if let Err(msg) = self.stop_producer(reactor) {
                return self.finish(reactor, DisconnectReason::Panicked(msg));
            }
        }
        if self.core.producer_holds_close() {
            return;
        }
        if self.core.write_half == WriteHalf::ShutdownRequested {
            return self.shut_write_half(reactor);
        }
        if self.core.state == State::Closing {
            self.finish(reactor, DisconnectReason::Done);
        }
    }

    /// Shuts the writing half, the buffer being empty and no pull producer holding
    /// it: a streaming producer still registered is stopped first (what it writes
    /// could no longer go anywhere), then the handler hears `write_connection_lost`.
    fn shut_write_half(&mut self, reactor: &mut Reactor) {
        self.core.write_half = WriteHalf::Shut;
        if let Err(e) = self.core.stream.shutdown_write() {
            return self.finish(reactor, DisconnectReason::from_io(e));
        }
        if self.core.read_closed {
            return self.finish(reactor, DisconnectReason::Done);
        }
        if let Err(msg) = self.stop_producer(reactor) {
            return self.finish(reactor, DisconnectReason::Panicked(msg));
        }
        if let Err(msg) = self.call(reactor, |h, t| h.write_connection_lost(t)) {
            return self.finish(reactor, DisconnectReason::Panicked(msg));
        }
        // Act on what the callback asked for (an abort, a close); the half is
        // `Shut` now, so this does not come back here.
        self.settle(reactor)
    }

    /// Unregisters the producer, if one is registered, and tells it with
    /// `stop_producing` (Twisted's `stopProducing`): the transport will take nothing
    /// more from it. `Err` is the message of a panic in that callback.
    fn stop_producer(&mut self, reactor: &mut Reactor) -> Result<(), String> {
        if self.core.producer.take().is_none() {
            return Ok(());
        }
        self.call(reactor, |h, t| h.stop_producing(t))
    }

    fn cancel_close_timer(&mut self, reactor: &mut Reactor) {
        if let Some(timer) = self
            .core
            .settings
            .as_mut()
            .and_then(|s| s.close_timer.take())
        {
            // Pending: the timer clears this field before it acts.
            let cancelled = timer.cancel(reactor);
            debug_assert!(cancelled.is_ok(), "close timer: {cancelled:?}");
        }
    }

    fn arm_close_timer(&mut self, reactor: &mut Reactor) {
        let (Some(settings), id, State::Closing) =
            (self.core.settings.as_mut(), self.core.id, self.core.state)
        else {
            return;
        };
        let (Some(timeout), None) = (settings.close_timeout, settings.close_timer) else {
            return;
        };
        settings.close_timer = Some(reactor.call_later(timeout, move |reactor| {
            reactor.with_descriptor::<Self, _>(id, |conn, reactor| {
                conn.core.settings_mut().close_timer = None;
                debug!("connection {id}: close grace period expired, aborting");
                conn.finish(reactor, DisconnectReason::TimedOut);
            });
        }));
    }

    /// Ends the connection: leaves the reactor and tells the handler, exactly once.
    fn finish(&mut self, reactor: &mut Reactor, reason: DisconnectReason) {
        if self.core.state == State::Closed {
            return;
        }
        self.core.state = State::Closed;
        self.cancel_close_timer(reactor);
        if matches!(
            reason,
            DisconnectReason::Aborted
                | DisconnectReason::TimedOut
                | DisconnectReason::BufferOverflow { .. }
                | DisconnectReason::Panicked(_)
        ) {
            if let Err(e) = self.core.stream.set_reset_on_close() {
                debug!(
                    "connection {}: cannot set a reset on close: {e}",
                    self.core.id
                );
            }
        }
        if matches!(reason, DisconnectReason::Shutdown) {
            self.core.write_out_at_shutdown();
        }
        self.core.out.clear();
        let id = self.core.id;
        if reactor.contains(id) {
            // We are lifted (dispatch or with_descriptor): dropped, and so closed, as
            // soon as the current call returns. (From the reactor's own
            // connection_lost the id is already stale.)
            let removed = reactor.remove_descriptor(id);
            debug_assert!(matches!(removed, Ok(Removed::WhileDispatched)));
        }
        debug!(
            "connection {:?} to {} lost: {reason}",
            self.core.id, self.core.peer
        );
        // Twisted's `FileDescriptor.connectionLost`: the producer hears it first.
        if let Err(msg) = self.stop_producer(reactor) {
            error!("connection {id:?}: stop_producing panicked: {msg}");
        }
        if let Err(msg) = self.call(reactor, |h, t| h.connection_lost(t, &reason)) {
            error!(
                "connection {:?}: connection_lost panicked: {msg}",
                self.core.id
            );
        }
    }

    fn on_eof(&mut self, reactor: &mut Reactor) {
        self.core.read_closed = true;
        self.core.interest(reactor, Reactor::remove_reader);
        if self.core.write_half == WriteHalf::Shut {
            return self.finish(reactor, DisconnectReason::Done);
        }
        if self.core.state != State::Open {
            return self.settle(reactor);
        }
        match self.invoke(reactor, |h, t| h.read_connection_lost(t)) {
            Some(EofAction::KeepWriting) | None => {}
            Some(EofAction::Close) => {
                if self.core.state == State::Open {
                    self.core.state = State::Closing;
                }
                self.settle(reactor);
            }
        }
    }

    /// Writes buffered bytes until the buffer is empty or the socket would block.
    /// Returns whether it would block; `Err` is the failure that ended the connection.
    fn flush(&mut self) -> Result<bool, DisconnectReason> {
        while !self.core.out.is_empty() {
            match self.core.stream.write(self.core.out.as_slice()) {
                Ok(0) => return Err(DisconnectReason::from_io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.core.out.consume(n);
                    self.core.bytes_sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(DisconnectReason::from_io(e)),
            }
        }
        Ok(false)
    }
}

// ===== impl IReadDescriptor, IWriteDescriptor =====

impl<H: Handler> Descriptor for Connection<H> {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        self.core.stream.as_mut()
    }

    fn do_read(&mut self, reactor: &mut Reactor, _id: DescriptorId) -> io::Result<IoStatus> {
        let mut buf = take_scratch();
        let mut status = IoStatus::Ready;
        let mut reads = 0;
        while reads < MAX_READS_PER_TURN {
            if self.core.state != State::Open || self.core.reading_paused || self.core.read_closed {
                break;
            }
            match self.core.stream.read(&mut buf) {
                Ok(0) => {
                    status = IoStatus::WouldBlock;
                    self.on_eof(reactor);
                    break;
                }
                Ok(n) => {
                    reads += 1;
                    self.core.bytes_received += n as u64;
                    self.invoke(reactor, |h, t| h.data_received(t, &buf[..n]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    status = IoStatus::WouldBlock;
                    break;
                }
                Err(e) => {
                    status = IoStatus::WouldBlock;
                    self.finish(reactor, DisconnectReason::from_io(e));
                    break;
                }
            }
        }
        return_scratch(buf);
        Ok(status)
    }

    fn do_write(&mut self, reactor: &mut Reactor, _id: DescriptorId) -> io::Result<IoStatus> {
        if self.core.state == State::Closed {
            return Ok(IoStatus::WouldBlock);
        }
        self.core.write_blocked = false;
        let would_block = match self.flush() {
            Ok(would_block) => would_block,
            Err(reason) => {
                self.finish(reactor, reason);
                return Ok(IoStatus::WouldBlock);
            }
        };
        if let Some(Producer::Push { paused: true }) = self.core.producer {
            if self.core.out.len() <= self.core.low_water() {
                self.core.producer = Some(Producer::Push { paused: false });
                self.invoke(reactor, |h, t| h.resume_producing(t));
            }
        }
        if would_block {
            return Ok(IoStatus::WouldBlock);
        }
        let mut idle = false;
        for _ in 0..MAX_PULLS_PER_TURN {
            if self.core.producer != Some(Producer::Pull)
                || !self.core.out.is_empty()
                || self.core.write_blocked
                || self.core.state == State::Closed
            {
                break;
            }
            let sent = self.core.bytes_sent;
            self.invoke(reactor, |h, t| h.resume_producing(t));
            if self.core.bytes_sent == sent && self.core.out.is_empty() {
                // Nothing to write now: asked again only once it writes (Twisted
                // stops writing the same way), so an idle producer costs nothing.
                idle = true;
                break;
            }
        }
        if self.core.state == State::Closed {
            return Ok(IoStatus::WouldBlock);
        }
        if !self.core.out.is_empty() || self.core.write_blocked {
            // The buffer was empty before the pulls: a write met WouldBlock.
            self.settle(reactor);
            return Ok(IoStatus::WouldBlock);
        }
        if idle || self.core.producer != Some(Producer::Pull) {
            self.core.interest(reactor, Reactor::remove_writer);
        }
        self.settle(reactor);
        // The socket has not said it would block: keep the readiness.
        Ok(IoStatus::Ready)
    }

    fn connection_lost(&mut self, reactor: &mut Reactor, _id: DescriptorId, reason: LostReason) {
        self.finish(reactor, DisconnectReason::from(reason));
    }

    fn log_prefix(&self) -> &str {
        "connection"
    }
}
