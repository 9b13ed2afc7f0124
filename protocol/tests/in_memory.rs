//! The protocol layer over in-memory streams and a manual clock: the order of the
//! callbacks, timers, the idle timeout and panics. No sockets, no sleeps.

mod util;

use std::time::Duration;

use protocol::testing::{Loopback, ProtocolTest};
use protocol::{Context, DisconnectReason, Protocol, Shared};
use util::Event;

const SECOND: Duration = Duration::from_secs(1);

/// What a test protocol saw, kept in its factory so it outlives the connection.
#[derive(Debug, Default)]
struct Log {
    events: Vec<Event>,
    ticks: u32,
}

impl Log {
    fn lost(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Lost(reason) => Some(reason.as_str()),
                _ => None,
            })
            .collect()
    }

    fn shape(&self) -> Vec<&'static str> {
        let mut shape = Vec::new();
        for event in &self.events {
            let name = match event {
                Event::Made => "made",
                Event::Data(_) => "data",
                Event::Lost(_) => "lost",
                Event::Timeout => "timeout",
            };
            if name != "data" || shape.last() != Some(&"data") {
                shape.push(name);
            }
        }
        shape
    }

    fn data(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.as_slice()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .concat()
    }
}

/// Records every callback. `close` makes it close (three times over); `boom` makes it
/// panic.
#[derive(Default)]
struct Recorder {
    panic_in_made: bool,
}

impl Protocol for Recorder {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().events.push(Event::Made);
        if self.panic_in_made {
            panic!("boom in connection_made");
        }
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        cx.factory().events.push(Event::Data(data.to_vec()));
        if data.ends_with(b"boom") {
            panic!("boom in data_received");
        }
        if data.ends_with(b"close") {
            cx.lose_connection();
            cx.lose_connection();
            cx.abort_connection();
        }
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        cx.factory().events.push(Event::Lost(reason.to_string()));
    }

    fn timeout_connection(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().events.push(Event::Timeout);
        cx.abort_timed_out();
    }
}

fn recorder() -> ProtocolTest<Recorder> {
    ProtocolTest::new(Recorder::default(), Shared::new(Log::default()))
}

#[test]
fn made_then_data_then_lost() {
    let mut test = recorder();
    test.feed(b"hello ");
    test.feed(b"world");
    test.disconnect_peer(false);
    let log = test.factory().borrow();
    assert_eq!(log.shape(), ["made", "data", "lost"]);
    assert_eq!(log.data(), b"hello world");
    assert_eq!(log.lost(), ["connection was closed cleanly"]);
}

#[test]
fn connection_lost_comes_exactly_once_however_often_it_is_closed() {
    let mut test = recorder();
    test.feed(b"close");
    assert!(test.is_lost());
    test.disconnect_peer(true);
    test.advance(SECOND * 60);
    assert_eq!(test.factory().borrow().shape(), ["made", "data", "lost"]);
    // The abort won over the graceful closes.
    assert_eq!(test.factory().borrow().lost(), ["connection was aborted"]);
    assert!(test.with_protocol(|_, _| ()).is_none());

    // A reset by the peer: lost once, not clean.
    let mut test = recorder();
    test.disconnect_peer(true);
    test.disconnect_peer(true);
    let log = test.factory().borrow();
    assert_eq!(log.shape(), ["made", "lost"]);
    assert!(log.lost()[0].starts_with("connection was lost"), "{log:?}");
}

#[test]
fn both_ends_of_a_loopback_see_the_same_order() {
    let (client_log, server_log) = (Shared::new(Log::default()), Shared::new(Log::default()));
    let mut pair = Loopback::new(
        Recorder::default(),
        client_log.clone(),
        Recorder::default(),
        server_log.clone(),
        1024,
    );
    pair.with_client(|_, cx| cx.write(b"ping"));
    pair.with_server(|_, cx| cx.write(&[b'x'; 5000]));
    pair.with_server(|_, cx| cx.lose_connection());
    assert_eq!(client_log.borrow().shape(), ["made", "data", "lost"]);
    assert_eq!(client_log.borrow().data(), vec![b'x'; 5000]);
    assert_eq!(server_log.borrow().shape(), ["made", "data", "lost"]);
    assert_eq!(server_log.borrow().data(), b"ping");
    assert!(pair.client_reason().unwrap().is_clean());
    assert!(pair.server_reason().unwrap().is_clean());
}

/// Writes one line a second from a timer it schedules itself, `lines` times, then
/// closes: the slow poetry server's shape.
struct Ticker {
    lines: u32,
}

impl Ticker {
    fn tick(&mut self, cx: &mut Context<'_, Self>) {
        let tick = {
            let mut log = cx.factory();
            log.ticks += 1;
            log.ticks
        };
        cx.write(format!("line {tick}\n").as_bytes());
        if tick == self.lines {
            cx.lose_connection();
        } else {
            cx.call_later(SECOND, |ticker, cx| ticker.tick(cx));
        }
    }
}

impl Protocol for Ticker {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.call_later(SECOND, |ticker, cx| ticker.tick(cx));
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
}

#[test]
fn a_protocol_writes_from_its_own_timer() {
    let mut test = ProtocolTest::new(Ticker { lines: 3 }, Shared::new(Log::default()));
    assert_eq!(test.take_written(), b"");
    test.advance(SECOND / 2);
    assert_eq!(test.take_written(), b"");
    test.advance(SECOND / 2);
    assert_eq!(test.take_written(), b"line 1\n");
    test.advance(SECOND);
    test.advance(SECOND);
    assert_eq!(test.take_written(), b"line 2\nline 3\n");
    assert!(test.is_lost());
    assert!(test.peer_sees_eof());
}

#[test]
fn a_timer_does_not_fire_after_the_connection_is_gone() {
    let mut test = ProtocolTest::new(Ticker { lines: 100 }, Shared::new(Log::default()));
    test.advance(SECOND);
    test.disconnect_peer(false);
    test.advance(SECOND * 10);
    assert_eq!(test.factory().borrow().ticks, 1);
    assert_eq!(test.reactor().pending_calls(), 0);
}

// ===== the idle timeout =====

/// Sets a 5 s idle timeout; with `stream`, writes 16 bytes a second for ever.
struct Idle {
    stream: bool,
}

impl Idle {
    fn send(&mut self, cx: &mut Context<'_, Self>) {
        cx.write(&[b'd'; 16]);
        cx.call_later(SECOND, |idle, cx| idle.send(cx));
    }
}

impl Protocol for Idle {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.set_timeout(Some(SECOND * 5));
        if self.stream {
            self.send(cx);
        }
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        cx.factory().events.push(Event::Lost(reason.to_string()));
    }

    fn timeout_connection(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().events.push(Event::Timeout);
        cx.abort_timed_out();
    }
}

fn idle(stream: bool, capacity: usize) -> ProtocolTest<Idle> {
    ProtocolTest::with_capacity(Idle { stream }, Shared::new(Log::default()), capacity)
}

#[track_caller]
fn assert_timed_out(test: &ProtocolTest<Idle>) {
    assert!(matches!(
        test.reason().as_deref(),
        Some(DisconnectReason::TimedOut)
    ));
    let log = test.factory().borrow();
    assert_eq!(
        log.events,
        [Event::Timeout, Event::Lost("connection timed out".into())]
    );
}

#[test]
fn a_download_that_keeps_flowing_never_times_out_and_a_stalled_one_does() {
    let mut test = idle(true, 64);
    assert_eq!(test.take_written(), [b'd'; 16]);
    for _ in 0..30 {
        test.advance(SECOND);
        assert_eq!(test.take_written(), [b'd'; 16]);
        assert!(!test.is_lost());
    }
    // The peer stops reading: its 64 bytes fill in four seconds, then nothing moves.
    for second in 1..=14 {
        test.advance(SECOND);
        if second < 9 {
            assert!(!test.is_lost(), "lost {second} s after the peer stopped");
        }
    }
    assert_timed_out(&test);
}

#[test]
fn an_upload_that_keeps_flowing_never_times_out_and_a_stalled_one_does() {
    let mut test = idle(false, 1024);
    for _ in 0..30 {
        test.feed(b"u");
        test.advance(SECOND);
        assert!(!test.is_lost());
    }
    test.feed(b"last");
    test.advance(SECOND * 49 / 10);
    assert!(!test.is_lost(), "lost before one period without progress");
    test.advance(SECOND * 51 / 10);
    assert_timed_out(&test);
}

#[test]
fn the_idle_timeout_is_cancelled_when_the_connection_is_lost() {
    let mut test = idle(false, 1024);
    assert_eq!(test.reactor().pending_calls(), 1);
    test.disconnect_peer(false);
    assert_eq!(test.reactor().pending_calls(), 0);
    test.advance(SECOND * 60);
    assert_eq!(
        test.factory().borrow().events,
        [Event::Lost("connection was closed cleanly".into())]
    );
}

#[test]
fn the_idle_timeout_can_be_turned_off() {
    let mut test = idle(false, 1024);
    test.with_protocol(|_, cx| cx.set_timeout(None));
    test.advance(SECOND * 60);
    assert!(!test.is_lost());
}

// ===== panics =====

#[test]
fn a_panic_in_connection_made_closes_the_connection_and_lost_still_comes() {
    let mut test = ProtocolTest::new(
        Recorder {
            panic_in_made: true,
        },
        Shared::new(Log::default()),
    );
    assert!(matches!(
        test.reason().as_deref(),
        Some(DisconnectReason::Panicked(msg)) if msg.contains("boom in connection_made")
    ));
    assert_eq!(test.factory().borrow().shape(), ["made", "lost"]);
    test.feed(b"more");
    assert_eq!(test.factory().borrow().shape(), ["made", "lost"]);
}

#[test]
fn a_panic_in_data_received_closes_only_that_connection() {
    let (client_log, server_log) = (Shared::new(Log::default()), Shared::new(Log::default()));
    let mut pair = Loopback::new(
        Recorder::default(),
        client_log.clone(),
        Recorder::default(),
        server_log.clone(),
        1024,
    );
    pair.with_client(|_, cx| cx.write(b"boom"));
    assert!(matches!(
        pair.server_reason().as_deref(),
        Some(DisconnectReason::Panicked(msg)) if msg.contains("boom in data_received")
    ));
    assert_eq!(server_log.borrow().shape(), ["made", "data", "lost"]);
    // The other end is told its peer went away, once.
    assert_eq!(client_log.borrow().shape(), ["made", "lost"]);
    assert!(!pair.client_reason().unwrap().is_clean());
}

/// An echo registered as its transport's streaming producer (as the echo example is),
/// recording `stop_producing` and its end in its factory.
#[derive(Default)]
struct StreamingEcho;

impl Protocol for StreamingEcho {
    type Factory = Vec<String>;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.register_producer(true);
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        cx.write(data);
    }

    fn stop_producing(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().push("stop_producing".into());
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        cx.factory().push(format!("lost: {reason}"));
    }
}

/// The same echo framed by lines, to check the framing receivers pass the producer
/// calls on.
#[derive(Default)]
struct StreamingLines;

impl protocol::basic::LineProtocol for StreamingLines {
    type Factory = Vec<String>;

    fn connection_made(&mut self, cx: &mut protocol::basic::LineContext<'_, '_, Self>) {
        cx.register_producer(true);
    }

    fn line_received(&mut self, cx: &mut protocol::basic::LineContext<'_, '_, Self>, line: &[u8]) {
        cx.send_line(line);
    }

    fn stop_producing(&mut self, cx: &mut protocol::basic::LineContext<'_, '_, Self>) {
        cx.factory().push("stop_producing".into());
    }

    fn connection_lost(
        &mut self,
        cx: &mut protocol::basic::LineContext<'_, '_, Self>,
        reason: &DisconnectReason,
    ) {
        cx.factory().push(format!("lost: {reason}"));
    }
}

#[test]
fn a_streaming_producer_is_stopped_not_waited_for_when_the_peer_ends() {
    let expected = ["stop_producing", "lost: connection was closed cleanly"];
    let mut test = ProtocolTest::new(StreamingEcho, Shared::new(Vec::new()));
    test.feed(b"hello\r\n");
    test.close_peer_write();
    test.pump();
    assert_eq!(*test.factory().borrow(), expected);
    assert_eq!(test.take_written(), b"hello\r\n");

    let lines = protocol::basic::LineReceiver::new(StreamingLines);
    let mut test = ProtocolTest::new(lines, Shared::new(Vec::new()));
    test.feed(b"hello\r\n");
    test.close_peer_write();
    test.pump();
    assert_eq!(*test.factory().borrow(), expected);
    assert_eq!(test.take_written(), b"hello\r\n");
}
