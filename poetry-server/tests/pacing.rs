//! Slow mode's pace, on a manual clock: exactly `num_bytes` every `delay`, nothing in
//! between, and the close one `delay` after the last piece. Checked over the in-memory
//! transport (`protocol::testing`) and over real loopback sockets on a reactor whose
//! clock only the test moves. Fast mode's pull producer is checked for back-pressure.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

use poetry_server::{serve, Poem, PoetryFactory, PoetryProtocol, ServerOptions};
use protocol::testing::ProtocolTest;
use protocol::{Address, Factory, Shared};
use reactor::{ManualClock, Reactor};

const POEM: &[u8] = b"Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\nAll mimsy were the borogoves,\nAnd the mome raths outgrabe.\n";

/// Long enough for a lingering connection's first look at what its peer took.
const LINGER_LOOK: Duration = Duration::from_millis(5);

fn slow(num_bytes: usize, delay: Duration) -> ServerOptions {
    ServerOptions {
        num_bytes,
        delay,
        idle_timeout: None,
        ..ServerOptions::default()
    }
}

/// A protocol from the factory, as a listening port would build it (for a test on a
/// small stream; the others use `ProtocolTest::from_factory`).
fn build(factory: &Shared<PoetryFactory>) -> PoetryProtocol {
    factory
        .borrow_mut()
        .build_protocol(&Address::Memory(1))
        .expect("the factory accepts")
}

#[test]
fn slow_mode_sends_num_bytes_per_delay_in_memory() {
    let (num_bytes, delay) = (7, Duration::from_millis(700));
    let factory = Shared::new(PoetryFactory::new(
        Poem::from_bytes("jabberwocky", POEM),
        slow(num_bytes, delay),
    ));
    let mut test = ProtocolTest::from_factory(&factory).expect("the factory accepts");
    let mut pieces = Vec::new();
    // The first piece goes at once, on connection_made.
    pieces.push(test.take_written());
    let expected_pieces = POEM.len().div_ceil(num_bytes);
    for _ in 1..expected_pieces {
        test.advance(delay - Duration::from_nanos(1));
        assert_eq!(test.take_written(), b"", "a piece before its delay was up");
        test.advance(Duration::from_nanos(1));
        pieces.push(test.take_written());
    }
    for (i, piece) in pieces.iter().enumerate() {
        let want = &POEM[i * num_bytes..POEM.len().min((i + 1) * num_bytes)];
        assert_eq!(piece, want, "piece {i}");
    }
    // Everything is sent; the end of the poem comes when the next timer finds nothing
    // left, and the close once the peer has taken it all (the first look is 5 ms on).
    assert!(!test.is_lost());
    test.advance(delay);
    assert!(test.peer_sees_eof(), "the poem ends after the last piece");
    test.advance(LINGER_LOOK);
    assert!(test.is_lost(), "the server closes after the last piece");
    assert!(test.reason().unwrap().is_clean());
    let stats = factory.borrow().stats();
    assert_eq!((stats.completed, stats.interrupted), (1, 0));
    assert_eq!(factory.borrow().open_connections(), 0);
    assert_eq!(test.reactor().pending_calls(), 0, "no timer left behind");
}

#[test]
fn slow_mode_stops_its_timer_when_the_client_leaves() {
    let delay = Duration::from_secs(1);
    let factory = Shared::new(PoetryFactory::new(
        Poem::from_bytes("jabberwocky", POEM),
        slow(10, delay),
    ));
    let mut test = ProtocolTest::from_factory(&factory).expect("the factory accepts");
    assert_eq!(test.take_written(), &POEM[..10]);
    test.advance(delay);
    assert_eq!(test.take_written(), &POEM[10..20]);
    test.disconnect_peer(true);
    test.advance(delay);
    assert!(test.is_lost());
    assert!(!test.reason().unwrap().is_clean());
    let stats = factory.borrow().stats();
    assert_eq!((stats.completed, stats.interrupted), (0, 1));
    assert_eq!(
        test.reactor().pending_calls(),
        0,
        "the send timer was cancelled"
    );
}

#[test]
fn slow_pauses_longer_than_the_idle_timeout_are_not_idleness() {
    // A piece every 3 s with a 2 s idle timeout: the server's own pauses must not
    // count as the client stalling, or `--delay 150` (default idle timeout 120 s) would
    // cut every poem short after a piece or two.
    let (num_bytes, delay) = (10, Duration::from_secs(3));
    let options = ServerOptions {
        idle_timeout: Some(Duration::from_secs(2)),
        ..slow(num_bytes, delay)
    };
    let factory = Shared::new(PoetryFactory::new(
        Poem::from_bytes("jabberwocky", POEM),
        options,
    ));
    let mut test = ProtocolTest::from_factory(&factory).expect("the factory accepts");
    let mut got = test.take_written();
    for _ in 0..POEM.len().div_ceil(num_bytes) + 1 {
        for _ in 0..3 {
            test.advance(delay / 3);
            got.extend(test.take_written());
        }
    }
    assert!(test.is_lost());
    assert!(
        test.reason().unwrap().is_clean(),
        "{:?} after {} bytes",
        test.reason(),
        got.len()
    );
    assert_eq!(got, POEM);
    assert_eq!(factory.borrow().stats().completed, 1);
}

#[test]
fn a_client_that_half_closes_still_gets_the_whole_poem() {
    // Clients send nothing; one that says so by shutting down its writing half at once
    // (`nc -N < /dev/null`, socat) must not have its poem cut short.
    let (num_bytes, delay) = (10, Duration::from_secs(1));
    let factory = Shared::new(PoetryFactory::new(
        Poem::from_bytes("jabberwocky", POEM),
        slow(num_bytes, delay),
    ));
    let mut test = ProtocolTest::from_factory(&factory).expect("the factory accepts");
    test.close_peer_write();
    let mut got = test.take_written();
    for _ in 0..POEM.len().div_ceil(num_bytes) {
        test.advance(delay);
        got.extend(test.take_written());
    }
    assert_eq!(got, POEM);
    assert!(test.is_lost() && test.reason().unwrap().is_clean());
    assert!(test.peer_sees_eof());
    assert_eq!(factory.borrow().stats().completed, 1);
}

#[test]
fn fast_mode_streams_through_a_small_buffer() {
    // A poem far larger than the stream holds: the pull producer must write as the
    // peer drains, never all at once, and end byte-exact.
    let poem: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let factory = Shared::new(PoetryFactory::new(
        Poem::from_bytes("big", &poem),
        slow(10, Duration::ZERO),
    ));
    let mut test = ProtocolTest::with_capacity(build(&factory), factory.clone(), 4096);
    let got = test.take_written();
    assert_eq!(got.len(), poem.len());
    assert!(got == poem, "fast mode bytes differ");
    assert!(test.peer_sees_eof());
    test.advance(LINGER_LOOK);
    assert!(test.is_lost() && test.reason().unwrap().is_clean());
    assert_eq!(factory.borrow().stats().completed, 1);
}

#[test]
fn a_streamed_file_over_a_stream_that_is_no_socket_is_read_not_mapped() {
    // Larger than what a poem keeps in memory, so it is streamed from its file; the
    // in-memory stream has no descriptor, so neither `sendfile` nor the mapped
    // window (which only the kernel may read) is used: it is read into the buffer.
    let poem: Vec<u8> = (0..1_200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let path = std::env::temp_dir().join(format!("pacing-streamed-{}", std::process::id()));
    std::fs::write(&path, &poem).unwrap();
    for sendfile in [true, false] {
        let options = ServerOptions {
            sendfile,
            ..slow(10, Duration::ZERO)
        };
        let factory = Shared::new(PoetryFactory::new(Poem::open(&path).unwrap(), options));
        assert!(
            factory.borrow().poem().file().is_some(),
            "the poem is streamed"
        );
        let mut test = ProtocolTest::with_capacity(build(&factory), factory.clone(), 64 * 1024);
        let got = test.take_written();
        assert!(
            got == poem,
            "sendfile {sendfile}: {} of {} bytes",
            got.len(),
            poem.len()
        );
        assert!(test.peer_sees_eof());
        test.advance(LINGER_LOOK);
        assert!(test.is_lost() && test.reason().unwrap().is_clean());
    }
    std::fs::remove_file(&path).unwrap();
}

/// A raw, non-blocking client of a server on `reactor`: the test turns the reactor and
/// reads what arrived, on one thread.
struct RawClient {
    stream: TcpStream,
    got: Vec<u8>,
    eof: bool,
}

impl RawClient {
    fn connect(port: u16) -> RawClient {
        // The kernel completes the handshake from the listen queue; the reactor
        // accepts on its next turn.
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nonblocking(true).unwrap();
        RawClient {
            stream,
            got: Vec::new(),
            eof: false,
        }
    }

    /// Reads everything that has arrived; returns how many bytes that was.
    fn drain(&mut self) -> usize {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return total;
                }
                Ok(n) => {
                    self.got.extend_from_slice(&buf[..n]);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
                Err(e) => panic!("reading: {e}"),
            }
        }
    }
}

/// Turns the reactor (real I/O, clock standing still) and reads, until each client
/// has `want[i]` bytes (and end of file if `eof[i]`), then a few more turns to make sure
/// nothing else comes.
#[track_caller]
fn settle(reactor: &mut Reactor, clients: &mut [RawClient], want: &[usize], eof: &[bool]) {
    let done = |clients: &[RawClient]| {
        clients
            .iter()
            .zip(want)
            .zip(eof)
            .all(|((c, w), e)| c.got.len() >= *w && c.eof == *e)
    };
    let mut rounds = 0;
    while !done(clients) {
        rounds += 1;
        assert!(
            rounds < 2000,
            "stuck: have {:?} bytes (eof {:?}), want {want:?} (eof {eof:?})",
            clients.iter().map(|c| c.got.len()).collect::<Vec<_>>(),
            clients.iter().map(|c| c.eof).collect::<Vec<_>>()
        );
        reactor
            .iterate(Some(Duration::from_millis(5)))
            .expect("iterate");
        for c in clients.iter_mut() {
            c.drain();
        }
    }
    // Quiet: with the clock standing still, nothing more may arrive.
    for _ in 0..5 {
        reactor
            .iterate(Some(Duration::from_millis(2)))
            .expect("iterate");
        for (i, c) in clients.iter_mut().enumerate() {
            assert_eq!(c.drain(), 0, "client {i} got bytes early");
        }
    }
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(c.got.len(), want[i], "client {i}");
        assert_eq!(c.eof, eof[i], "client {i} end of file");
    }
}

#[test]
fn slow_mode_paces_each_socket_by_the_manual_clock() {
    let (num_bytes, delay) = (9, Duration::from_secs(1));
    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(clock.clone()).expect("a reactor");
    let (port, factory) = serve(
        &mut reactor,
        Poem::from_bytes("jabberwocky", POEM),
        slow(num_bytes, delay),
    )
    .expect("serve on loopback");
    let port = port.get_host().port().unwrap();
    let len = POEM.len();
    let upto = |pieces: usize| (pieces * num_bytes).min(len);

    // Client A at t = 0: one piece at once.
    let mut clients = vec![RawClient::connect(port)];
    settle(&mut reactor, &mut clients, &[upto(1)], &[false]);

    // Half a delay later, client B: its own first piece; A gets nothing new.
    clock.advance(delay / 2);
    clients.push(RawClient::connect(port));
    settle(
        &mut reactor,
        &mut clients,
        &[upto(1), upto(1)],
        &[false, false],
    );

    // From now on, each half delay one of them gets exactly one more piece: each
    // connection keeps its own schedule.
    let pieces = len.div_ceil(num_bytes);
    let (mut a, mut b) = (1, 1);
    for step in 0..2 * pieces + 2 {
        clock.advance(delay / 2);
        if step % 2 == 0 {
            a += 1;
        } else {
            b += 1;
        }
        // The timer that finds nothing left closes the connection.
        let eof = [a > pieces, b > pieces];
        settle(&mut reactor, &mut clients, &[upto(a), upto(b)], &eof);
        if eof == [true, true] {
            break;
        }
    }
    for (i, c) in clients.iter().enumerate() {
        assert!(c.eof, "client {i} did not see the end");
        assert_eq!(c.got, POEM, "client {i}");
    }
    // The server closes once each client has acknowledged the whole poem and its end,
    // or has closed: these close, as clients do after the end. Bounded turns.
    drop(clients);
    for _ in 0..200 {
        if factory.borrow().stats().completed == 2 {
            break;
        }
        reactor
            .iterate(Some(Duration::from_millis(5)))
            .expect("iterate");
    }
    let stats = factory.borrow().stats();
    assert_eq!(
        (stats.accepted, stats.completed, stats.interrupted),
        (2, 2, 0)
    );
    assert_eq!(reactor.pending_calls(), 0, "no timer left behind");
}
