//! When a close waits for a registered producer, and when the transport stops it
//! instead (`Handler::stop_producing`, Twisted's `stopProducing`): a pull producer
//! holds a close until it unregisters; a streaming producer never does; every end of
//! the connection, and a shut writing half, stop a producer still registered.
//!
//! All over `MemoryStream`, pumped by hand: deterministic, no sockets, no sleeps.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use reactor::{DescriptorId, Reactor};
use transport::{
    Connection, DisconnectReason, EofAction, Handler, MemoryStream, Stream, Transport,
};
use util::ended;

/// What a [`Producer`] does when the peer's writing half ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnEof {
    /// Answer [`EofAction::Close`] (the default of every handler).
    Close,
    /// Call `lose_connection` and answer [`EofAction::KeepWriting`].
    LoseConnection,
}

/// A handler registered as its transport's producer from `connection_made`; it
/// echoes what it reads and records every callback, in order.
struct Producer {
    streaming: bool,
    on_eof: OnEof,
    /// Written in `connection_made`; then `lose_connection` if `close_after_first`.
    first: &'static [u8],
    close_after_first: bool,
    /// Written at the first `resume_producing`.
    on_resume: &'static [u8],
    events: Rc<RefCell<Vec<String>>>,
}

impl Producer {
    fn new(streaming: bool) -> (Producer, Rc<RefCell<Vec<String>>>) {
        let events = Rc::new(RefCell::new(Vec::new()));
        let producer = Producer {
            streaming,
            on_eof: OnEof::Close,
            first: b"",
            close_after_first: false,
            on_resume: b"",
            events: events.clone(),
        };
        (producer, events)
    }

    fn log(&self, event: impl Into<String>) {
        self.events.borrow_mut().push(event.into());
    }
}

impl Handler for Producer {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer(self.streaming);
        t.write(self.first);
        if self.close_after_first {
            t.lose_connection();
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        t.write(data);
    }

    fn read_connection_lost(&mut self, t: &mut Transport<'_>) -> EofAction {
        self.log("read_connection_lost");
        match self.on_eof {
            OnEof::Close => EofAction::Close,
            OnEof::LoseConnection => {
                t.lose_connection();
                EofAction::KeepWriting
            }
        }
    }

    fn write_connection_lost(&mut self, _: &mut Transport<'_>) {
        self.log("write_connection_lost");
    }

    fn pause_producing(&mut self, _: &mut Transport<'_>) {
        self.log("pause_producing");
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        // A pull producer is asked whenever the buffer drains and it wrote last
        // time; record only the calls that matter to these tests.
        if self.streaming || !self.on_resume.is_empty() {
            self.log("resume_producing");
        }
        t.write(std::mem::take(&mut self.on_resume));
    }

    fn stop_producing(&mut self, t: &mut Transport<'_>) {
        t.write(b"refused: the transport takes nothing more");
        self.log("stop_producing");
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.log(format!("connection_lost {:?}", ended(reason)));
    }
}

/// Marks the memory connection readable and writable, turns the reactor once and
/// lets the peer read what arrived, `turns` times (a connection that ended is no
/// longer in the reactor: nothing to mark then).
fn pump(
    reactor: &mut Reactor,
    id: DescriptorId,
    peer: &mut MemoryStream,
    got: &mut Vec<u8>,
    turns: usize,
) {
    for _ in 0..turns {
        let _ = reactor.set_ready(id, true, true);
        reactor.iterate(Some(Duration::ZERO)).expect("iterate");
        let mut buf = [0u8; 64];
        while peer.available() > 0 {
            let n = peer.read(&mut buf).expect("read");
            got.extend_from_slice(&buf[..n]);
        }
    }
}

/// A reactor on a manual clock, and `handler` on one end of a memory pair of
/// `capacity` bytes each way; the other end is the peer's.
fn start(handler: impl Handler, capacity: usize) -> (Reactor, DescriptorId, MemoryStream) {
    let mut reactor = Reactor::with_clock(reactor::ManualClock::new()).unwrap();
    let (ours, peer) = MemoryStream::pair(capacity);
    let id = util::start(&mut reactor, Box::new(ours), handler).unwrap();
    (reactor, id, peer)
}

/// The bug: an echo registered as a streaming producer (to pause its reading when
/// the client does not read), a client that sends and then ends its writing half,
/// and a close, by the default `EofAction::Close` or by `lose_connection`: the
/// close waited for ever for the producer to unregister.
#[test]
fn a_streaming_producer_does_not_hold_the_close_after_the_peer_ends() {
    for on_eof in [OnEof::Close, OnEof::LoseConnection] {
        let (mut producer, events) = Producer::new(true);
        producer.on_eof = on_eof;
        let (mut reactor, id, mut peer) = start(producer, 64);
        peer.write_all(b"hello").unwrap();
        peer.shutdown_write().unwrap();
        let mut got = Vec::new();
        pump(&mut reactor, id, &mut peer, &mut got, 20);
        assert_eq!(
            *events.borrow(),
            [
                "read_connection_lost",
                "stop_producing",
                "connection_lost Done"
            ],
            "{on_eof:?}: the close must not wait for a streaming producer"
        );
        assert_eq!(got, b"hello", "{on_eof:?}: the echo, and nothing after it");
        assert!(peer.at_eof(), "{on_eof:?}: then end of file");
    }
}

/// A streaming producer paused by the water marks is resumed when the buffer drains
/// below the low-water mark (it may still write), and the close completes when the
/// buffer is empty: it is stopped then, never waited for.
#[test]
fn a_paused_streaming_producer_is_resumed_then_stopped_at_the_close() {
    let (mut producer, events) = Producer::new(true);
    producer.first = b"more than the eight-byte high-water mark";
    producer.close_after_first = true;
    producer.on_resume = b" ok";
    let (mut reactor, id, mut peer) = start(LimitsFirst(producer), 4);
    let mut got = Vec::new();
    pump(&mut reactor, id, &mut peer, &mut got, 100);
    assert_eq!(
        *events.borrow(),
        [
            "pause_producing",
            "resume_producing",
            "stop_producing",
            "connection_lost Done"
        ]
    );
    assert_eq!(got, b"more than the eight-byte high-water mark ok");
    assert!(peer.at_eof());
}

/// Sets water marks of 8 and 4 bytes before the wrapped producer starts.
struct LimitsFirst(Producer);

impl Handler for LimitsFirst {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.set_write_buffer_limits(8, 4);
        self.0.connection_made(t);
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.0.data_received(t, data);
    }
    fn pause_producing(&mut self, t: &mut Transport<'_>) {
        self.0.pause_producing(t);
    }
    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        self.0.resume_producing(t);
    }
    fn stop_producing(&mut self, t: &mut Transport<'_>) {
        self.0.stop_producing(t);
    }
    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &DisconnectReason) {
        self.0.connection_lost(t, reason);
    }
}

/// A pull producer writes only when asked, so only it knows when it is done: a
/// close waits for it to unregister, also after the peer's end of file (the peer may
/// still be reading), and it is not told `stop_producing` (it asked).
#[test]
fn a_pull_producer_holds_the_close_until_it_unregisters() {
    let (producer, events) = Producer::new(false);
    let (mut reactor, id, mut peer) = start(producer, 64);
    peer.write_all(b"request").unwrap();
    peer.shutdown_write().unwrap();
    let mut got = Vec::new();
    pump(&mut reactor, id, &mut peer, &mut got, 20);
    assert_eq!(*events.borrow(), ["read_connection_lost"], "still open");
    let answered = Connection::<Producer>::with_handler(&mut reactor, id, |_, t| {
        t.write(b" answered");
        t.unregister_producer();
    });
    assert!(answered.is_some(), "the connection waited for its producer");
    pump(&mut reactor, id, &mut peer, &mut got, 20);
    assert_eq!(
        *events.borrow(),
        ["read_connection_lost", "connection_lost Done"]
    );
    assert_eq!(got, b"request answered");
    assert!(peer.at_eof());
}

/// Whatever ends the connection, a producer still registered hears `stop_producing`
/// once, before `connection_lost`; a shut writing half stops a streaming producer
/// before `write_connection_lost`, and the connection stays open for reading.
#[test]
fn every_end_stops_a_registered_producer() {
    type End = fn(&mut Reactor, DescriptorId, &mut Option<MemoryStream>);
    let ends: [(&str, End, &[&str]); 4] = [
        (
            "abort",
            |reactor, id, _| {
                Connection::<Producer>::with_handler(reactor, id, |_, t| t.abort_connection());
            },
            &["stop_producing", "connection_lost Aborted"],
        ),
        (
            "peer reset",
            |_, _, peer| {
                let peer = peer.take().expect("the peer");
                peer.set_reset_on_close().unwrap();
                drop(peer);
            },
            &["stop_producing", "connection_lost Lost"],
        ),
        (
            "pull producer, abort",
            |reactor, id, _| {
                Connection::<Producer>::with_handler(reactor, id, |_, t| {
                    t.unregister_producer();
                    t.register_producer(false);
                    t.abort_connection();
                });
            },
            &["stop_producing", "connection_lost Aborted"],
        ),
        (
            "half-close",
            |reactor, id, _| {
                Connection::<Producer>::with_handler(reactor, id, |_, t| {
                    t.lose_write_connection();
                });
            },
            &["stop_producing", "write_connection_lost"],
        ),
    ];
    for (name, end, expected) in ends {
        let (producer, events) = Producer::new(true);
        let (mut reactor, id, peer) = start(producer, 64);
        let mut peer = Some(peer);
        end(&mut reactor, id, &mut peer);
        let mut got = Vec::new();
        if let Some(peer) = peer.as_mut() {
            pump(&mut reactor, id, peer, &mut got, 10);
        } else {
            let _ = reactor.set_ready(id, true, true);
            reactor.iterate(Some(Duration::ZERO)).unwrap();
        }
        assert_eq!(*events.borrow(), expected, "{name}");
        assert!(
            got.is_empty(),
            "{name}: a write from stop_producing is refused"
        );
    }
}

/// Unregistered before the end, a producer is not told anything more.
#[test]
fn an_unregistered_producer_is_not_stopped() {
    let (producer, events) = Producer::new(true);
    let (mut reactor, id, _peer) = start(producer, 64);
    Connection::<Producer>::with_handler(&mut reactor, id, |_, t| {
        t.unregister_producer();
        t.abort_connection();
    });
    assert_eq!(*events.borrow(), ["connection_lost Aborted"]);
}

/// A producer registered once the writing half is shut can never write: it is
/// stopped as soon as the callback that registered it returns, and what its
/// `stop_producing` asks for (here an abort) is acted on at once.
#[test]
fn a_producer_registered_on_a_shut_writing_half_is_stopped_at_once() {
    struct AbortOnStop(Producer);
    impl Handler for AbortOnStop {
        fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}
        fn write_connection_lost(&mut self, t: &mut Transport<'_>) {
            self.0.write_connection_lost(t);
        }
        fn stop_producing(&mut self, t: &mut Transport<'_>) {
            self.0.stop_producing(t);
            t.abort_connection();
        }
        fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &DisconnectReason) {
            self.0.connection_lost(t, reason);
        }
    }
    let (producer, events) = Producer::new(true);
    let (mut reactor, id, mut peer) = start(AbortOnStop(producer), 64);
    Connection::<AbortOnStop>::with_handler(&mut reactor, id, |_, t| t.lose_write_connection());
    let mut got = Vec::new();
    pump(&mut reactor, id, &mut peer, &mut got, 2);
    assert_eq!(*events.borrow(), ["write_connection_lost"]);
    assert!(peer.at_eof(), "the writing half is shut");
    let registered = Connection::<AbortOnStop>::with_handler(&mut reactor, id, |_, t| {
        t.register_producer(false);
    });
    assert!(registered.is_some());
    assert_eq!(
        *events.borrow(),
        [
            "write_connection_lost",
            "stop_producing",
            "connection_lost Aborted"
        ]
    );
}

/// A pull producer that sends its bytes with `write_now`: what the stream has room
/// for goes, nothing is buffered, and it is asked again once the stream drains.
struct NowWriter {
    data: Vec<u8>,
    sent: usize,
    log: Rc<RefCell<NowLog>>,
}

#[derive(Debug, Default)]
struct NowLog {
    would_block: usize,
    most_buffered: usize,
    ended: Option<String>,
}

impl Handler for NowWriter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer(false);
        self.resume_producing(t);
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let result = t.write_now(&self.data[self.sent..]);
        let mut log = self.log.borrow_mut();
        log.most_buffered = log.most_buffered.max(t.buffered());
        match result {
            Ok(n) => {
                assert!(n > 0, "write_now took nothing without saying WouldBlock");
                self.sent += n;
                if self.sent == self.data.len() {
                    t.unregister_producer();
                    t.lose_connection();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => log.would_block += 1,
            Err(e) => panic!("write_now: {e}"),
        }
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.log.borrow_mut().ended = Some(reason.to_string());
    }
}

#[test]
fn write_now_sends_what_the_stream_takes_and_buffers_nothing() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let log = Rc::new(RefCell::new(NowLog::default()));
    let writer = NowWriter {
        data: data.clone(),
        sent: 0,
        log: log.clone(),
    };
    let (mut reactor, id, mut peer) = start(writer, 1000);
    let mut got = Vec::new();
    pump(&mut reactor, id, &mut peer, &mut got, 100);
    assert!(
        got == data,
        "{} of {} bytes, in order?",
        got.len(),
        data.len()
    );
    let log = log.borrow();
    assert_eq!(log.most_buffered, 0, "write_now buffered bytes");
    // A partial write marks the stream blocked: the producer is asked again only
    // after it drained, not at once to meet the full stream (which it did after
    // every partial write, 9 times here). The one `WouldBlock` left is the first
    // pump's readiness, forced by this test before the peer read anything.
    assert!(
        log.would_block <= 1,
        "asked {} times while the stream was full",
        log.would_block
    );
    assert_eq!(
        log.ended.as_deref(),
        Some(DisconnectReason::Done.to_string().as_str())
    );
}

/// Writes more than the stream holds with `write`, then tries `write_now`.
struct WriteThenNow {
    answers: Rc<RefCell<Vec<std::io::ErrorKind>>>,
}

impl Handler for WriteThenNow {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write(&[1u8; 3000]);
        let mut answers = self.answers.borrow_mut();
        answers.push(t.write_now(b"late").unwrap_err().kind());
        t.abort_connection();
        answers.push(t.write_now(b"later").unwrap_err().kind());
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn connection_lost(&mut self, _: &mut Transport<'_>, _: &DisconnectReason) {}
}

#[test]
fn write_now_never_overtakes_buffered_bytes_and_refuses_after_the_end() {
    let answers = Rc::new(RefCell::new(Vec::new()));
    let (mut reactor, id, mut peer) = start(
        WriteThenNow {
            answers: answers.clone(),
        },
        1000,
    );
    let mut got = Vec::new();
    pump(&mut reactor, id, &mut peer, &mut got, 5);
    assert_eq!(
        *answers.borrow(),
        [
            std::io::ErrorKind::WouldBlock,
            std::io::ErrorKind::BrokenPipe
        ]
    );
    assert!(
        got.iter().all(|&b| b == 1),
        "a late byte overtook the buffered ones"
    );
}
