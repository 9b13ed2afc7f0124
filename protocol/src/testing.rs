//! Testing protocols without sockets: Twisted's `StringTransport`, `task.Clock` and
//! `iosim` loopback, done with the real transport over an in-memory stream.
//!
//! [`ProtocolTest`] puts one protocol on a real [`Connection`] whose stream is a
//! [`MemoryStream`], on a reactor driven by a [`ManualClock`]: what the protocol
//! writes, how it closes, and its timers behave exactly as on a socket, but every test
//! runs instantly and deterministically. [`Loopback`] connects a client protocol to a
//! server protocol the same way. [`check_chunkings`] replays an input cut at every
//! chunk size, down to one byte at a time.
//!
//! Each takes a protocol already built, or asks a factory for it as the real thing
//! would: [`ProtocolTest::from_factory`] as a listening port (`do_start`,
//! `build_protocol`, ... `do_stop`), [`ProtocolTest::from_client_factory`] as a
//! connector (`started_connecting`, `build_client_protocol`, `client_connection_lost`
//! or `client_connection_failed`), [`Loopback::from_factories`] both.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use protocol::testing::ProtocolTest;
//! use protocol::{for_protocol, Context, Protocol, SimpleFactory};
//!
//! /// Says hello, echoes, and hangs up when idle for 5 seconds.
//! #[derive(Default)]
//! struct Greeter;
//! impl Protocol for Greeter {
//!     type Factory = SimpleFactory<Self>;
//!     fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
//!         cx.write(b"hello\n");
//!         cx.set_timeout(Some(Duration::from_secs(5)));
//!     }
//!     fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
//!         cx.write(data);
//!     }
//! }
//!
//! let mut test = ProtocolTest::new(Greeter, for_protocol::<Greeter>());
//! assert_eq!(test.take_written(), b"hello\n");
//! test.feed(b"ping");
//! assert_eq!(test.take_written(), b"ping");
//! test.advance(Duration::from_secs(4));
//! assert!(!test.is_lost());
//! test.advance(Duration::from_secs(6));
//! assert!(test.is_lost());
//! assert!(matches!(test.reason().as_deref(), Some(transport::DisconnectReason::TimedOut)));
//! ```

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use reactor::{DescriptorId, ManualClock, Reactor};
use transport::{Connection, DisconnectReason, MemoryStream, Stream};

use crate::handler::ProtocolHandler;
use crate::protocol::{with_protocol, Context, Protocol};
use crate::shared::Shared;

/// Bytes each direction of the in-memory stream holds by default.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;
/// Rounds a pump runs at most before deciding the protocol never settles.
const MAX_PUMP_ROUNDS: usize = 100_000;

mod from_factory;

pub use from_factory::StartError;

/// Where a test learns how its connection ended.
pub(crate) type LostSlot = Rc<RefCell<Option<DisconnectReason>>>;

/// Starts `protocol` on a connection over `stream`, recording how it ends.
fn start<P: Protocol>(
    reactor: &mut Reactor,
    protocol: P,
    factory: Shared<P::Factory>,
    stream: impl Stream,
) -> (DescriptorId, LostSlot) {
    start_then(reactor, protocol, factory, stream, |_| {})
}

/// As [`start`], and `then` runs once the connection has ended and been recorded.
fn start_then<P: Protocol>(
    reactor: &mut Reactor,
    protocol: P,
    factory: Shared<P::Factory>,
    stream: impl Stream,
    then: impl FnOnce(&mut Reactor) + 'static,
) -> (DescriptorId, LostSlot) {
    let lost: LostSlot = Rc::new(RefCell::new(None));
    let sink = lost.clone();
    let on_lost = move |reactor: &mut Reactor, reason: &DisconnectReason| {
        *sink.borrow_mut() = Some(clone_reason(reason));
        then(reactor);
    };
    let handler = ProtocolHandler::new(protocol, factory).on_lost(Box::new(on_lost));
    // A memory stream's peer is its other end's number: no system call.
    let peer = stream
        .peer_address()
        .expect("a memory stream knows its peer");
    let id = Connection::start(reactor, Box::new(stream), peer, handler)
        .expect("an in-memory stream always registers");
    (id, lost)
}

/// A reactor on a manual clock, for a test.
fn manual_reactor() -> (Reactor, ManualClock) {
    let clock = ManualClock::new();
    let reactor = Reactor::with_clock(clock.clone()).expect("a reactor for the test");
    (reactor, clock)
}

/// A copy of a reason for the record (`io::Error` is not `Clone`: kind and text kept).
pub(crate) fn clone_reason(reason: &DisconnectReason) -> DisconnectReason {
    let copy = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
    match reason {
        DisconnectReason::Done => DisconnectReason::Done,
        DisconnectReason::Lost(e) => DisconnectReason::Lost(copy(e)),
        DisconnectReason::Aborted => DisconnectReason::Aborted,
        DisconnectReason::TimedOut => DisconnectReason::TimedOut,
        DisconnectReason::Refused => DisconnectReason::Refused,
        DisconnectReason::BufferOverflow { limit } => {
            DisconnectReason::BufferOverflow { limit: *limit }
        }
        DisconnectReason::Panicked(msg) => DisconnectReason::Panicked(msg.clone()),
        DisconnectReason::Io(e) => DisconnectReason::Io(copy(e)),
        DisconnectReason::Shutdown => DisconnectReason::Shutdown,
    }
}

/// How the peer ends, once everything it sent is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerEnd {
    /// It shuts down its writing half.
    Write,
    /// It closes.
    Close,
}

/// One protocol on an in-memory connection, with the test playing the peer.
///
/// What the peer sends is never lost: bytes the stream cannot take yet (the protocol
/// paused reading) wait in the test, as in Twisted's `iosim`, and go in as the
/// protocol reads; a clean close or half-close by the peer comes after them.
pub struct ProtocolTest<P: Protocol> {
    reactor: Reactor,
    clock: ManualClock,
    id: DescriptorId,
    peer: Option<MemoryStream>,
    /// Bytes the peer sent that the stream has not taken yet.
    unsent: std::collections::VecDeque<u8>,
    /// A close the peer asked for, waiting for `unsent` to empty.
    peer_end: Option<PeerEnd>,
    lost: LostSlot,
    factory: Shared<P::Factory>,
}

impl<P: Protocol> std::fmt::Debug for ProtocolTest<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolTest")
            .field("id", &self.id)
            .field("lost", &self.lost.borrow().is_some())
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> ProtocolTest<P> {
    /// Connects `protocol` (built by `factory`) and runs its `connection_made`.
    pub fn new(protocol: P, factory: Shared<P::Factory>) -> Self {
        Self::with_capacity(protocol, factory, DEFAULT_CAPACITY)
    }

    /// As [`new`](Self::new), with each direction holding at most `capacity` bytes
    /// in flight (a small one forces partial writes and back-pressure).
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    pub fn with_capacity(protocol: P, factory: Shared<P::Factory>, capacity: usize) -> Self {
        let (mut reactor, clock) = manual_reactor();
        let (ours, peer) = MemoryStream::pair(capacity);
        let (id, lost) = start(&mut reactor, protocol, factory.clone(), ours);
        Self::assemble(reactor, clock, (id, lost), peer, factory)
    }

    /// The test around a connection started on `reactor`, settled.
    fn assemble(
        reactor: Reactor,
        clock: ManualClock,
        (id, lost): (DescriptorId, LostSlot),
        peer: MemoryStream,
        factory: Shared<P::Factory>,
    ) -> Self {
        let mut test = ProtocolTest {
            reactor,
            clock,
            id,
            peer: Some(peer),
            unsent: std::collections::VecDeque::new(),
            peer_end: None,
            lost,
            factory,
        };
        test.pump();
        test
    }

    /// Runs the reactor until nothing moves: delivers what the peer sent, flushes
    /// what the protocol wrote into the peer's buffer, runs due calls.
    ///
    /// # Panics
    ///
    /// If it does not settle within a bound (a protocol that never stops writing to a
    /// peer that reads).
    pub fn pump(&mut self) {
        for _ in 0..MAX_PUMP_ROUNDS {
            let before = self.activity();
            self.send_unsent();
            let _ = self.reactor.set_ready(self.id, true, true);
            self.reactor
                .iterate(Some(Duration::ZERO))
                .expect("iterate in a test");
            if self.activity() == before && !self.reactor.has_pending_work() {
                return;
            }
        }
        panic!("the protocol did not settle after {MAX_PUMP_ROUNDS} rounds");
    }

    fn activity(&self) -> u64 {
        self.peer.as_ref().map_or(0, |p| p.activity())
    }

    /// The peer sends `data`; the protocol receives it (in as many pieces as the
    /// stream's capacity makes it). Bytes the protocol does not take now, because it
    /// paused reading, are kept and delivered when it resumes: none is ever dropped
    /// ([`unsent`](Self::unsent) tells how many wait).
    ///
    /// # Panics
    ///
    /// If the peer has closed or shut down its writing half
    /// ([`disconnect_peer`](Self::disconnect_peer),
    /// [`close_peer_write`](Self::close_peer_write)): it cannot send any more.
    pub fn feed(&mut self, data: &[u8]) {
        assert!(
            self.peer.is_some() && self.peer_end.is_none(),
            "the peer has closed its writing half: it cannot send"
        );
        self.unsent.extend(data);
        self.pump();
    }

    /// Bytes the peer sent that the protocol has not taken yet (it paused reading).
    pub fn unsent(&self) -> usize {
        self.unsent.len()
    }

    /// Moves what it can of `unsent` into the stream; then, once all of it is in,
    /// carries out the end the peer asked for.
    fn send_unsent(&mut self) {
        let Some(peer) = self.peer.as_mut() else {
            self.unsent.clear();
            return;
        };
        while !self.unsent.is_empty() {
            let (front, _) = self.unsent.as_slices();
            match peer.write(front) {
                Ok(n) if n > 0 => {
                    self.unsent.drain(..n);
                }
                // Full (WouldBlock), or the protocol's end is closed: keep the rest
                // while the connection lives; a closed end reads nothing more.
                Ok(_) | Err(_) => break,
            }
        }
        if !self.unsent.is_empty() {
            return;
        }
        match self.peer_end.take() {
            Some(PeerEnd::Write) => {
                // A stream whose other end is gone refuses the shutdown; the
                // protocol has then heard of the close already.
                let _ = peer.shutdown_write();
            }
            Some(PeerEnd::Close) => self.peer = None,
            None => {}
        }
    }

    /// Everything the protocol has written that the peer has not read yet (Twisted's
    /// `StringTransport.value()` and `clear()` in one).
    pub fn take_written(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..MAX_PUMP_ROUNDS {
            self.pump();
            let Some(peer) = self.peer.as_mut() else {
                break;
            };
            match peer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        out
    }

    /// The peer shuts down its writing half, after what it sent: the protocol sees
    /// end of file once it has read everything.
    pub fn close_peer_write(&mut self) {
        if self.peer.is_some() && self.peer_end.is_none() {
            self.peer_end = Some(PeerEnd::Write);
        }
        self.pump();
    }

    /// The peer closes: cleanly, after what it sent (`reset` false), or at once with
    /// a reset that throws away whatever the protocol has not read (`reset` true).
    pub fn disconnect_peer(&mut self, reset: bool) {
        if reset {
            self.unsent.clear();
            if let Some(peer) = self.peer.take() {
                // An end whose peer is already gone has no one to reset.
                let _ = peer.set_reset_on_close();
            }
        } else if self.peer.is_some() {
            self.peer_end = Some(PeerEnd::Close);
        }
        self.pump();
    }

    /// Whether the peer has seen the protocol's end close, and read everything.
    pub fn peer_sees_eof(&self) -> bool {
        self.peer.as_ref().is_some_and(|p| p.at_eof())
    }

    /// Moves the manual clock forward and runs what became due.
    pub fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        self.pump();
    }

    /// Whether the protocol's `connection_lost` has run.
    pub fn is_lost(&self) -> bool {
        self.lost.borrow().is_some()
    }

    /// Why the connection ended, once it has.
    pub fn reason(&self) -> Option<std::cell::Ref<'_, DisconnectReason>> {
        std::cell::Ref::filter_map(self.lost.borrow(), |r| r.as_ref()).ok()
    }

    /// Calls `f` with the protocol and its context, as a timer would; `None` once the
    /// connection is gone. Pumps afterwards.
    pub fn with_protocol<R>(
        &mut self,
        f: impl FnOnce(&mut P, &mut Context<'_, P>) -> R,
    ) -> Option<R> {
        let result = with_protocol::<P, R>(&mut self.reactor, self.id, f);
        self.pump();
        result
    }

    /// The factory.
    pub fn factory(&self) -> &Shared<P::Factory> {
        &self.factory
    }

    /// The reactor (manual clock).
    pub fn reactor(&mut self) -> &mut Reactor {
        &mut self.reactor
    }

    /// The manual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }
}

/// Marks which protocols a [`Loopback`] connects, without owning them.
type Protocols<C, S> = std::marker::PhantomData<(fn() -> C, fn() -> S)>;

/// A client protocol and a server protocol connected in memory, in one reactor on a
/// manual clock (Twisted's `iosim` / `loopback`).
pub struct Loopback<C: Protocol, S: Protocol> {
    reactor: Reactor,
    clock: ManualClock,
    client: (DescriptorId, LostSlot),
    server: (DescriptorId, LostSlot),
    _types: Protocols<C, S>,
}

impl<C: Protocol, S: Protocol> std::fmt::Debug for Loopback<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loopback").finish_non_exhaustive()
    }
}

impl<C: Protocol, S: Protocol> Loopback<C, S> {
    /// Connects `client` and `server` with streams of `capacity` bytes each way, and
    /// pumps until they settle.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    pub fn new(
        client: C,
        client_factory: Shared<C::Factory>,
        server: S,
        server_factory: Shared<S::Factory>,
        capacity: usize,
    ) -> Self {
        let (mut reactor, clock) = manual_reactor();
        let (client_end, server_end) = MemoryStream::pair(capacity);
        let server_side = start(&mut reactor, server, server_factory, server_end);
        let client_side = start(&mut reactor, client, client_factory, client_end);
        Self::assemble(reactor, clock, client_side, server_side)
    }

    /// The loopback around two connections started on `reactor`, settled.
    fn assemble(
        reactor: Reactor,
        clock: ManualClock,
        client_side: (DescriptorId, LostSlot),
        server_side: (DescriptorId, LostSlot),
    ) -> Self {
        let mut loopback = Loopback {
            reactor,
            clock,
            client: client_side,
            server: server_side,
            _types: std::marker::PhantomData,
        };
        loopback.pump();
        loopback
    }

    /// Runs until neither side does anything more.
    ///
    /// # Panics
    ///
    /// If it does not settle within a bound.
    pub fn pump(&mut self) {
        let mut quiet = 0;
        for _ in 0..MAX_PUMP_ROUNDS {
            let before = self.progress();
            for id in [self.client.0, self.server.0] {
                let _ = self.reactor.set_ready(id, true, true);
            }
            self.reactor
                .iterate(Some(Duration::ZERO))
                .expect("iterate in a test");
            if self.progress() == before && !self.reactor.has_pending_work() {
                quiet += 1;
                if quiet >= 2 {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        panic!("the loopback did not settle after {MAX_PUMP_ROUNDS} rounds");
    }

    fn progress(&mut self) -> (u64, bool, bool) {
        let moved = |t: &mut transport::Transport<'_>| t.bytes_sent() + t.bytes_received();
        let client = Connection::<ProtocolHandler<C>>::with_handler(
            &mut self.reactor,
            self.client.0,
            |_, t| moved(t),
        );
        let server = Connection::<ProtocolHandler<S>>::with_handler(
            &mut self.reactor,
            self.server.0,
            |_, t| moved(t),
        );
        (
            client.unwrap_or(0) + server.unwrap_or(0),
            self.client.1.borrow().is_some(),
            self.server.1.borrow().is_some(),
        )
    }

    /// Moves the clock and pumps.
    pub fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        self.pump();
    }

    /// Calls `f` with the client protocol; `None` once its connection is gone.
    pub fn with_client<R>(
        &mut self,
        f: impl FnOnce(&mut C, &mut Context<'_, C>) -> R,
    ) -> Option<R> {
        let result = with_protocol::<C, R>(&mut self.reactor, self.client.0, f);
        self.pump();
        result
    }

    /// Calls `f` with the server protocol; `None` once its connection is gone.
    pub fn with_server<R>(
        &mut self,
        f: impl FnOnce(&mut S, &mut Context<'_, S>) -> R,
    ) -> Option<R> {
        let result = with_protocol::<S, R>(&mut self.reactor, self.server.0, f);
        self.pump();
        result
    }

    /// How the client's connection ended, once it has.
    pub fn client_reason(&self) -> Option<std::cell::Ref<'_, DisconnectReason>> {
        std::cell::Ref::filter_map(self.client.1.borrow(), |r| r.as_ref()).ok()
    }

    /// How the server's connection ended, once it has.
    pub fn server_reason(&self) -> Option<std::cell::Ref<'_, DisconnectReason>> {
        std::cell::Ref::filter_map(self.server.1.borrow(), |r| r.as_ref()).ok()
    }
}

/// Replays `input` into a fresh protocol from `make` cut into chunks of every size
/// from 1 byte to the whole input, calling `check` after each replay: the parser test
/// habit of Twisted's `test_protocols.py`.
///
/// # Panics
///
/// Whatever `check` asserts, with the chunk size in the message.
#[track_caller]
pub fn check_chunkings<P: Protocol>(
    make: impl Fn() -> (P, Shared<P::Factory>),
    input: &[u8],
    check: impl Fn(&mut ProtocolTest<P>),
) {
    for size in 1..=input.len().max(1) {
        let (protocol, factory) = make();
        let mut test = ProtocolTest::new(protocol, factory);
        for chunk in input.chunks(size) {
            test.feed(chunk);
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mut test)));
        if let Err(payload) = outcome {
            panic!(
                "with chunks of {size} byte(s): {}",
                reactor::panic_message(payload.as_ref())
            );
        }
    }
}
