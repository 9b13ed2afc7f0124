//! Helpers shared by the reactor's integration tests: a manual-clock reactor, socket
//! pairs, a shared event log and a scriptable descriptor.
//!
//! Every test binary uses its own subset of these helpers.
#![allow(dead_code)] // Each test binary compiles this module and uses only part of it.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use reactor::mio::net::UnixStream;
use reactor::{Descriptor, DescriptorId, IoStatus, LostReason, ManualClock, Reactor, ReactorError};

/// The bound on every loop that waits for something to happen.
pub(crate) const MAX_TURNS: usize = 1_000;

/// A reactor on a [`ManualClock`], and a clone of the clock to move it.
pub(crate) fn manual_reactor() -> (ManualClock, Reactor) {
    let clock = ManualClock::new();
    let reactor = Reactor::with_clock(clock.clone()).expect("reactor");
    (clock, reactor)
}

/// One turn of the loop that never waits: what a test does after moving the clock or
/// writing to a socket.
#[track_caller]
pub(crate) fn turn(reactor: &mut Reactor) {
    reactor.iterate(Some(Duration::ZERO)).expect("iterate");
}

/// Turns the loop until `done` says so, waiting at most 10ms of real time per turn for
/// real I/O. Panics after [`MAX_TURNS`] turns, so a broken reactor fails instead of
/// hanging.
#[track_caller]
pub(crate) fn turn_until(
    reactor: &mut Reactor,
    mut done: impl FnMut(&mut Reactor) -> bool,
) -> usize {
    for turns in 0..MAX_TURNS {
        if done(reactor) {
            return turns;
        }
        reactor
            .iterate(Some(Duration::from_millis(10)))
            .expect("iterate");
    }
    panic!("condition not met after {MAX_TURNS} turns");
}

/// Runs the reactor with a watchdog thread that stops it (through a
/// [`ReactorHandle`](reactor::ReactorHandle)) if it still runs after `limit`, so a
/// broken reactor fails the test instead of hanging it. Returns what `run` returned and
/// whether the watchdog had to step in.
pub(crate) fn run_bounded(
    reactor: &mut Reactor,
    limit: Duration,
) -> (Result<(), ReactorError>, bool) {
    let handle = reactor.handle();
    let (done, wait_for_done) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || match wait_for_done.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = handle.stop();
            true
        }
        _ => false,
    });
    let result = reactor.run();
    drop(done);
    let fired = watchdog.join().expect("watchdog thread");
    (result, fired)
}

/// A connected pair of Unix sockets: the reactor's end (non-blocking, mio) and the
/// test's end (blocking, std).
pub(crate) fn socket_pair() -> (UnixStream, std::os::unix::net::UnixStream) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    ours.set_nonblocking(true).expect("non-blocking");
    (UnixStream::from_std(ours), theirs)
}

/// Writes `bytes` to the test's end of a socket pair; with Unix sockets the reactor's
/// end is readable as soon as this returns.
pub(crate) fn send(peer: &std::os::unix::net::UnixStream, bytes: &[u8]) {
    std::io::Write::write_all(&mut &*peer, bytes).expect("write to peer");
}

/// A shared, ordered record of what happened, as short strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    /// Everything logged so far, emptying the log.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    /// Everything logged so far.
    pub(crate) fn entries(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// How many entries equal `entry`.
    pub(crate) fn count(&self, entry: &str) -> usize {
        self.0.borrow().iter().filter(|e| *e == entry).count()
    }
}

/// A short, comparable description of a [`LostReason`].
pub(crate) fn describe(reason: &LostReason) -> String {
    match reason {
        LostReason::Error(e) => format!("error {e}"),
        LostReason::Panicked(msg) => format!("panicked {msg}"),
        LostReason::Shutdown => "shutdown".to_owned(),
    }
}

/// What a [`Probe`] does when it is read or written.
pub(crate) type IoHook =
    Box<dyn FnMut(&mut UnixStream, &mut Reactor, DescriptorId) -> io::Result<IoStatus>>;

/// What a [`Probe`] does, besides logging, when it is told it was lost.
pub(crate) type LostHook = Box<dyn FnMut(&mut Reactor, DescriptorId)>;

/// A scriptable descriptor over one end of a socket pair. It logs `"NAME read"`,
/// `"NAME write"`, `"NAME lost REASON"` and `"NAME dropped"`; by default it drains the
/// socket on read and does nothing on write.
pub(crate) struct Probe {
    pub(crate) name: String,
    pub(crate) stream: UnixStream,
    pub(crate) log: Log,
    on_read: Option<IoHook>,
    on_write: Option<IoHook>,
    on_lost: Option<LostHook>,
}

impl Probe {
    pub(crate) fn new(name: &str, stream: UnixStream, log: &Log) -> Self {
        Probe {
            name: name.to_owned(),
            stream,
            log: log.clone(),
            on_read: None,
            on_write: None,
            on_lost: None,
        }
    }

    pub(crate) fn on_read(
        mut self,
        f: impl FnMut(&mut UnixStream, &mut Reactor, DescriptorId) -> io::Result<IoStatus> + 'static,
    ) -> Self {
        self.on_read = Some(Box::new(f));
        self
    }

    pub(crate) fn on_write(
        mut self,
        f: impl FnMut(&mut UnixStream, &mut Reactor, DescriptorId) -> io::Result<IoStatus> + 'static,
    ) -> Self {
        self.on_write = Some(Box::new(f));
        self
    }

    pub(crate) fn on_lost(mut self, f: impl FnMut(&mut Reactor, DescriptorId) + 'static) -> Self {
        self.on_lost = Some(Box::new(f));
        self
    }

    /// Inserts the probe and makes it a reader.
    #[track_caller]
    pub(crate) fn read_in(self, reactor: &mut Reactor) -> DescriptorId {
        let id = reactor.insert(Box::new(self)).expect("insert");
        reactor.add_reader(id).expect("add_reader");
        id
    }
}

impl Descriptor for Probe {
    fn source(&mut self) -> &mut dyn reactor::mio::event::Source {
        &mut self.stream
    }

    fn do_read(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        self.log.push(format!("{} read", self.name));
        match self.on_read.as_mut() {
            Some(hook) => hook(&mut self.stream, reactor, id),
            None => drain(&mut self.stream),
        }
    }

    fn do_write(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        self.log.push(format!("{} write", self.name));
        match self.on_write.as_mut() {
            Some(hook) => hook(&mut self.stream, reactor, id),
            None => Ok(IoStatus::WouldBlock),
        }
    }

    fn connection_lost(&mut self, reactor: &mut Reactor, id: DescriptorId, reason: LostReason) {
        self.log
            .push(format!("{} lost {}", self.name, describe(&reason)));
        if let Some(hook) = self.on_lost.as_mut() {
            hook(reactor, id);
        }
    }

    fn log_prefix(&self) -> &str {
        &self.name
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.log.push(format!("{} dropped", self.name));
    }
}

/// Reads until `WouldBlock` (or end of file), discarding the bytes.
pub(crate) fn drain(stream: &mut UnixStream) -> io::Result<IoStatus> {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(IoStatus::WouldBlock),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(IoStatus::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads at most one byte: `Ready` if it got one (more may be waiting), `WouldBlock`
/// if there was none. A descriptor with a per-turn budget of one byte.
pub(crate) fn read_one_byte(stream: &mut UnixStream) -> io::Result<IoStatus> {
    let mut buf = [0u8; 1];
    match stream.read(&mut buf) {
        Ok(0) => Ok(IoStatus::WouldBlock),
        Ok(_) => Ok(IoStatus::Ready),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(IoStatus::WouldBlock),
        Err(e) => Err(e),
    }
}

/// The slot index inside a descriptor id, read from its `#INDEX.GENERATION` display.
pub(crate) fn slot_of(id: DescriptorId) -> u32 {
    let text = id.to_string();
    let (index, _generation) = text
        .trim_start_matches('#')
        .split_once('.')
        .expect("id displays as #index.generation");
    index.parse().expect("numeric slot index")
}

/// A shared cell for an id a callback learns later (a descriptor naming its partner).
pub(crate) type IdCell = Rc<std::cell::Cell<Option<DescriptorId>>>;

pub(crate) fn id_cell() -> IdCell {
    Rc::new(std::cell::Cell::new(None))
}
