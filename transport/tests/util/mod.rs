//! Helpers shared by the transport's integration tests: bounded reactor loops,
//! loopback socket pairs, a verifiable byte pattern, and a recording handler.
//!
//! Every loop here is bounded twice: by a count and by a wall-clock limit. Nothing
//! sleeps to make a test correct.
#![allow(dead_code)] // Each test binary compiles this module and uses only part of it.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use reactor::Reactor;
use transport::{Address, DisconnectReason, EofAction, Handler, Transport};

/// Wall-clock bound on any one wait of a test.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);
/// Count bound on any one loop of a test.
pub(crate) const MAX_TURNS: usize = 50_000_000;

/// Turns the loop until `done` says so, waiting at most 10ms of real time per turn.
/// Panics after [`LIMIT`] or [`MAX_TURNS`] turns, so a broken transport fails the test
/// instead of hanging it. Returns the turns taken.
#[track_caller]
pub(crate) fn turn_until(
    reactor: &mut Reactor,
    mut done: impl FnMut(&mut Reactor) -> bool,
) -> usize {
    let deadline = Instant::now() + LIMIT;
    for turns in 0..MAX_TURNS {
        if done(reactor) {
            return turns;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {LIMIT:?} ({turns} turns)"
        );
        reactor
            .iterate(Some(Duration::from_millis(10)))
            .expect("iterate");
    }
    panic!("condition not met after {MAX_TURNS} turns");
}

/// Runs the reactor until something stops it, with a `call_later` watchdog that stops
/// it after `limit` and fails the test.
#[track_caller]
pub(crate) fn run_with_watchdog(reactor: &mut Reactor, limit: Duration) {
    let fired = Rc::new(std::cell::Cell::new(false));
    let flag = fired.clone();
    reactor.call_later(limit, move |r| {
        flag.set(true);
        r.stop();
    });
    reactor.run().expect("reactor run");
    assert!(
        !fired.get(),
        "watchdog: the reactor was still running after {limit:?}"
    );
}

/// A connected TCP pair on `127.0.0.1`: (accepted end, connecting end), both blocking
/// std streams. Make one non-blocking with [`into_mio`] to hand it to a connection.
pub(crate) fn tcp_pair() -> (TcpStream, TcpStream) {
    tcp_pair_on("127.0.0.1:0".parse().unwrap())
}

/// As [`tcp_pair`], listening on `addr` (e.g. `[::1]:0`).
pub(crate) fn tcp_pair_on(addr: SocketAddr) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(addr).expect("bind loopback");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect loopback");
    let (server, _) = listener.accept().expect("accept");
    (server, client)
}

/// The peer end of a [`pairs`] pair, used blocking from a test thread.
pub(crate) trait Peer: Read + io::Write + Send + std::fmt::Debug {
    /// Shuts down the peer's writing half: ours reads end of file.
    fn shut_write(&self) -> io::Result<()>;
    /// Closes with a reset from now on (`SO_LINGER` 0): unread and unsent data is
    /// dropped and ours sees `ECONNRESET` (TCP only; Unix sockets just close).
    fn reset_on_close(&self) -> io::Result<()>;
}

impl Peer for TcpStream {
    fn shut_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn reset_on_close(&self) -> io::Result<()> {
        socket2::SockRef::from(self).set_linger(Some(Duration::ZERO))
    }
}

impl Peer for std::os::unix::net::UnixStream {
    fn shut_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn reset_on_close(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A connected pair: its kind (for messages), our end, the peer's end.
pub(crate) type Pair = (&'static str, Box<dyn transport::Stream>, Box<dyn Peer>);

/// One connected pair of each kind this machine has: TCP over `127.0.0.1`, over
/// `::1` when available, and a Unix socket pair. Ours is non-blocking, ready for a
/// connection; the peer is blocking, with [`LIMIT`] timeouts.
pub(crate) fn pairs() -> Vec<Pair> {
    let mut pairs: Vec<Pair> = Vec::new();
    let (ours, peer) = tcp_pair();
    bound_peer(&peer);
    pairs.push(("tcp4", Box::new(into_mio(ours)), Box::new(peer)));
    if ipv6_available() {
        let (ours, peer) = tcp_pair_on("[::1]:0".parse().unwrap());
        bound_peer(&peer);
        pairs.push(("tcp6", Box::new(into_mio(ours)), Box::new(peer)));
    }
    let (ours, peer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    ours.set_nonblocking(true).unwrap();
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    peer.set_write_timeout(Some(LIMIT)).unwrap();
    pairs.push((
        "unix",
        Box::new(mio::net::UnixStream::from_std(ours)),
        Box::new(peer),
    ));
    pairs
}

/// Whether `::1` can be bound here (some containers have no IPv6 loopback).
pub(crate) fn ipv6_available() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// Makes a std TCP stream non-blocking and turns it into a mio one.
pub(crate) fn into_mio(stream: TcpStream) -> mio::net::TcpStream {
    stream.set_nonblocking(true).expect("nonblocking");
    mio::net::TcpStream::from_std(stream)
}

/// Sets the read and write timeouts of a peer socket used from a test thread, so a
/// stuck transport fails the read instead of hanging the test.
pub(crate) fn bound_peer(stream: &TcpStream) {
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
}

/// Spawns a named peer thread.
pub(crate) fn spawn_peer<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .expect("spawn peer")
}

/// How a blocking peer's reading ended.
#[derive(Debug)]
pub(crate) struct Drained {
    /// Bytes read in all.
    pub(crate) total: u64,
    /// Whether every byte matched [`pattern`] at its offset.
    pub(crate) matched: bool,
    /// `None` for a clean end of file, else the error that ended it.
    pub(crate) error: Option<io::Error>,
}

/// Reads `stream` to its end in reads of at most `chunk` bytes, checking each byte
/// against [`pattern`].
pub(crate) fn drain_pattern(stream: &mut impl Read, chunk: usize) -> Drained {
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    let mut matched = true;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                return Drained {
                    total,
                    matched,
                    error: None,
                }
            }
            Ok(n) => {
                matched &= buf[..n] == *pattern(total, n);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Drained {
                    total,
                    matched,
                    error: Some(e),
                }
            }
        }
    }
}

const PERIOD: usize = 251;
const MAX_PATTERN_SLICE: usize = 1 << 20;

/// The bytes that belong at stream offset `offset..offset + len` of every bulk
/// transfer in these tests: a pattern with a prime period, so a lost, repeated or
/// swapped chunk (of any size not a multiple of 251) shows. `len` is at most 1 MiB.
pub(crate) fn pattern(offset: u64, len: usize) -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| {
        (0..PERIOD + MAX_PATTERN_SLICE)
            .map(|i| (i % PERIOD) as u8)
            .collect()
    });
    assert!(
        len <= MAX_PATTERN_SLICE,
        "pattern slices are at most {MAX_PATTERN_SLICE} bytes"
    );
    let start = (offset % PERIOD as u64) as usize;
    &bytes[start..start + len]
}

/// What a [`DisconnectReason`] was, without its payload, for comparing in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// [`DisconnectReason::Done`].
    Done,
    /// [`DisconnectReason::Lost`].
    Lost,
    /// [`DisconnectReason::Aborted`].
    Aborted,
    /// [`DisconnectReason::TimedOut`].
    TimedOut,
    /// [`DisconnectReason::Refused`].
    Refused,
    /// [`DisconnectReason::BufferOverflow`].
    BufferOverflow,
    /// [`DisconnectReason::Panicked`].
    Panicked,
    /// [`DisconnectReason::Shutdown`].
    Shutdown,
    /// [`DisconnectReason::Io`], or a reason this list does not know yet.
    Other,
}

/// Classifies `reason`.
pub(crate) fn ended(reason: &DisconnectReason) -> Ended {
    match reason {
        DisconnectReason::Done => Ended::Done,
        DisconnectReason::Lost(_) => Ended::Lost,
        DisconnectReason::Aborted => Ended::Aborted,
        DisconnectReason::TimedOut => Ended::TimedOut,
        DisconnectReason::Refused => Ended::Refused,
        DisconnectReason::BufferOverflow { .. } => Ended::BufferOverflow,
        DisconnectReason::Panicked(_) => Ended::Panicked,
        DisconnectReason::Shutdown => Ended::Shutdown,
        _ => Ended::Other,
    }
}

/// Everything a [`Probe`] saw. Assertions go on this after the loop, never inside a
/// callback: the transport catches a panicking callback, so an assertion failing there
/// would only end the connection.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// `connection_made` calls.
    pub(crate) made: usize,
    /// All bytes received, in order.
    pub(crate) received: Vec<u8>,
    /// `read_connection_lost` calls.
    pub(crate) read_lost: usize,
    /// `write_connection_lost` calls.
    pub(crate) write_lost: usize,
    /// Every `connection_lost` call's reason, in order (one, if all is well).
    pub(crate) lost: Vec<Ended>,
    /// The text of the first reason.
    pub(crate) lost_text: Option<String>,
    /// `get_host` and `get_peer` in `connection_made`.
    pub(crate) addresses_made: Option<(Address, Address)>,
    /// `get_host` and `get_peer` in `connection_lost`.
    pub(crate) addresses_lost: Option<(Address, Address)>,
    /// Callback names in order, for checking the contract's ordering.
    pub(crate) calls: Vec<&'static str>,
}

impl Record {
    /// Whether `connection_lost` has been called.
    pub(crate) fn is_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// The one reason the connection ended with; panics unless there was exactly one.
    #[track_caller]
    pub(crate) fn only_reason(&self) -> Ended {
        assert_eq!(
            self.lost.len(),
            1,
            "connection_lost must be called exactly once: {self:?}"
        );
        self.lost[0]
    }
}

type MadeFn = Box<dyn FnMut(&mut Transport<'_>)>;
type DataFn = Box<dyn FnMut(&mut Transport<'_>, &[u8])>;
type EofFn = Box<dyn FnMut(&mut Transport<'_>) -> EofAction>;

/// A handler that records every callback into a shared [`Record`] and then does what
/// the test scripted for it.
pub(crate) struct Probe {
    record: Rc<RefCell<Record>>,
    made: Option<MadeFn>,
    data: Option<DataFn>,
    eof: Option<EofFn>,
    write_lost: Option<MadeFn>,
}

impl Probe {
    /// A probe that only records, and its record.
    pub(crate) fn new() -> (Probe, Rc<RefCell<Record>>) {
        let record = Rc::new(RefCell::new(Record::default()));
        let probe = Probe {
            record: record.clone(),
            made: None,
            data: None,
            eof: None,
            write_lost: None,
        };
        (probe, record)
    }

    /// Also runs `f` in `connection_made`.
    pub(crate) fn on_made(mut self, f: impl FnMut(&mut Transport<'_>) + 'static) -> Self {
        self.made = Some(Box::new(f));
        self
    }

    /// Also runs `f` in `data_received`.
    pub(crate) fn on_data(mut self, f: impl FnMut(&mut Transport<'_>, &[u8]) + 'static) -> Self {
        self.data = Some(Box::new(f));
        self
    }

    /// Also runs `f` in `write_connection_lost`.
    pub(crate) fn on_write_lost(mut self, f: impl FnMut(&mut Transport<'_>) + 'static) -> Self {
        self.write_lost = Some(Box::new(f));
        self
    }

    /// Answers `read_connection_lost` with `f` (default: [`EofAction::Close`]).
    pub(crate) fn on_eof(
        mut self,
        f: impl FnMut(&mut Transport<'_>) -> EofAction + 'static,
    ) -> Self {
        self.eof = Some(Box::new(f));
        self
    }
}

impl Handler for Probe {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        {
            let mut r = self.record.borrow_mut();
            r.made += 1;
            r.calls.push("connection_made");
            r.addresses_made = Some((t.get_host().clone(), t.get_peer().clone()));
        }
        if let Some(f) = self.made.as_mut() {
            f(t);
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        {
            let mut r = self.record.borrow_mut();
            r.received.extend_from_slice(data);
            if r.calls.last() != Some(&"data_received") {
                r.calls.push("data_received");
            }
        }
        if let Some(f) = self.data.as_mut() {
            f(t, data);
        }
    }

    fn read_connection_lost(&mut self, t: &mut Transport<'_>) -> EofAction {
        {
            let mut r = self.record.borrow_mut();
            r.read_lost += 1;
            r.calls.push("read_connection_lost");
        }
        match self.eof.as_mut() {
            Some(f) => f(t),
            None => EofAction::Close,
        }
    }

    fn write_connection_lost(&mut self, t: &mut Transport<'_>) {
        {
            let mut r = self.record.borrow_mut();
            r.write_lost += 1;
            r.calls.push("write_connection_lost");
        }
        if let Some(f) = self.write_lost.as_mut() {
            f(t);
        }
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &DisconnectReason) {
        let mut r = self.record.borrow_mut();
        r.lost.push(ended(reason));
        r.lost_text.get_or_insert_with(|| reason.to_string());
        r.addresses_lost = Some((t.get_host().clone(), t.get_peer().clone()));
        r.calls.push("connection_lost");
    }
}

/// A unique path for a Unix socket under the temporary directory, removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct TempSocketPath(pub std::path::PathBuf);

impl TempSocketPath {
    /// A fresh path named after `tag`, the process and a counter.
    pub(crate) fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("transport-{tag}-{}-{n}-{nanos}.sock", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        TempSocketPath(path)
    }
}

impl Drop for TempSocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends the crates' logs to the test's captured output (`RUST_LOG=trace` to see them).
pub(crate) fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Starts a connection over `stream` with `handler`, its peer asked of the stream
/// (the tests' streams are socket pairs and memory pairs, whose peers are cheap to
/// ask).
#[track_caller]
pub(crate) fn start<H: Handler>(
    reactor: &mut Reactor,
    stream: Box<dyn transport::Stream>,
    handler: H,
) -> Result<reactor::DescriptorId, transport::TransportError> {
    let peer = stream.peer_address().expect("the stream knows its peer");
    transport::Connection::start(reactor, stream, peer, handler)
}
