//! Moving many bytes: ordering under forced partial writes, a large transfer from a
//! pull producer, and a streaming producer held back by a slow reader.

mod util;

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::mpsc;

use reactor::{DescriptorId, Reactor};
use transport::{
    bind_tcp, start_connect_tcp, Address, Connecting, Connection, DisconnectReason, Handler,
    ListenOptions, Listener, Transport, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER,
};
use util::{ended, pattern, Ended, LIMIT};

// ===== ordering under partial writes =====

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Message `i` of the ordering test: its number, its length, then a payload that
/// depends on both.
fn message_header(i: u32, len: u16) -> [u8; 6] {
    let mut h = [0u8; 6];
    h[..4].copy_from_slice(&i.to_le_bytes());
    h[4..].copy_from_slice(&len.to_le_bytes());
    h
}

fn message_payload(i: u32, len: u16) -> &'static [u8] {
    pattern(u64::from(i) * 7, usize::from(len))
}

/// Writes numbered messages of random sizes, a batch each time the buffer drains
/// (a pull producer), mixing `write` and `write_sequence`, then closes. Tells the peer
/// each time a batch leaves bytes buffered (`true`) and when it is done (`false`).
struct MessageWriter {
    rng: Rng,
    next: u32,
    count: u32,
    stats: Rc<RefCell<WriterStats>>,
    blocked: mpsc::Sender<bool>,
}

#[derive(Debug, Default)]
struct WriterStats {
    /// Batches that left bytes buffered. Each began on an empty buffer, so each had a
    /// direct write that the socket took only in part.
    partial_direct_writes: usize,
    max_buffered: usize,
    lost: Vec<Ended>,
}

impl Handler for MessageWriter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer(false);
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let batch = 1 + self.rng.below(40) as u32;
        for _ in 0..batch {
            if self.next == self.count {
                t.unregister_producer();
                t.lose_connection();
                let _ = self.blocked.send(false);
                return;
            }
            let i = self.next;
            let len = self.rng.below(700) as u16;
            let header = message_header(i, len);
            let payload = message_payload(i, len);
            match self.rng.below(3) {
                0 => {
                    t.write(&header);
                    t.write(payload);
                }
                1 => t.write_sequence(&[&header, payload]),
                _ if i + 1 < self.count => {
                    // Two messages in one vectored write, four slices.
                    let len2 = self.rng.below(300) as u16;
                    let header2 = message_header(i + 1, len2);
                    t.write_sequence(&[&header, payload, &header2, message_payload(i + 1, len2)]);
                    self.next += 1;
                }
                _ => t.write_sequence(&[&header[..3], &header[3..], payload]),
            }
            self.next += 1;
            let mut stats = self.stats.borrow_mut();
            stats.max_buffered = stats.max_buffered.max(t.buffered());
        }
        if t.buffered() > 0 {
            self.stats.borrow_mut().partial_direct_writes += 1;
            let _ = self.blocked.send(true);
        }
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.stats.borrow_mut().lost.push(ended(reason));
    }
}

#[test]
fn many_writes_arrive_in_order_through_partial_writes() {
    const COUNT: u32 = 50_000;
    let (server, client) = util::tcp_pair();
    // A tiny send buffer on our side, and a peer that reads a few hundred bytes at a
    // time, and only when the writer reports its socket full: every round ends in a
    // partial direct write. (A receive buffer below the loopback MSS would only stall
    // TCP on its persist timer.)
    socket2::SockRef::from(&server)
        .set_send_buffer_size(4096)
        .unwrap();
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(128 * 1024)
        .unwrap();
    util::bound_peer(&client);
    let (blocked, blocked_rx) = mpsc::channel::<bool>();
    let peer = util::spawn_peer("slow reader", move || {
        let mut client = client;
        let mut all = Vec::new();
        let mut buf = [0u8; 333];
        // Each time the writer reports its socket full, take whatever has arrived
        // (without blocking); once it is done, read to the end.
        while blocked_rx
            .recv_timeout(LIMIT)
            .expect("a signal from the writer")
        {
            client.set_nonblocking(true)?;
            loop {
                match client.read(&mut buf) {
                    Ok(0) => return Ok(all),
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            client.set_nonblocking(false)?;
        }
        client.read_to_end(&mut all)?;
        Ok(all)
    });

    let stats = Rc::new(RefCell::new(WriterStats::default()));
    let writer = MessageWriter {
        rng: Rng(0x5eed_1234_abcd_ef01),
        next: 0,
        count: COUNT,
        stats: stats.clone(),
        blocked,
    };
    let mut reactor = Reactor::new().unwrap();
    util::start(&mut reactor, Box::new(util::into_mio(server)), writer).unwrap();
    util::turn_until(&mut reactor, |_| !stats.borrow().lost.is_empty());

    let stats = stats.borrow();
    assert_eq!(stats.lost, [Ended::Done]);
    assert!(
        stats.partial_direct_writes > 100,
        "partial writes were not forced: {stats:?}"
    );
    let all = peer.join().unwrap().expect("peer read to end of file");
    let mut at = 0;
    for i in 0..COUNT {
        let header = &all[at..at + 6];
        let number = u32::from_le_bytes(header[..4].try_into().unwrap());
        let len = u16::from_le_bytes(header[4..].try_into().unwrap());
        assert_eq!(number, i, "message {i} out of order at byte {at}");
        at += 6;
        assert_eq!(
            &all[at..at + usize::from(len)],
            message_payload(i, len),
            "message {i} corrupted"
        );
        at += usize::from(len);
    }
    assert_eq!(at, all.len(), "bytes after the last message");
}

// ===== a large transfer from a pull producer =====

const CHUNK: usize = 64 * 1024;

/// Serves `total` bytes of the pattern, one chunk per `resume_producing`, then
/// unregisters and closes.
struct PullWriter {
    total: u64,
    sent: u64,
    lost: Rc<RefCell<Vec<Ended>>>,
}

impl Handler for PullWriter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer(false);
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let n = (self.total - self.sent).min(CHUNK as u64) as usize;
        t.write(pattern(self.sent, n));
        self.sent += n as u64;
        if self.sent == self.total {
            t.unregister_producer();
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.lost.borrow_mut().push(ended(reason));
    }
}

/// Checks every byte against the pattern and counts them.
#[derive(Debug, Default)]
struct Drain {
    received: u64,
    matched: bool,
    lost: Vec<Ended>,
}

struct DrainHandler(Rc<RefCell<Drain>>);

impl Handler for DrainHandler {
    fn data_received(&mut self, _: &mut Transport<'_>, data: &[u8]) {
        let mut d = self.0.borrow_mut();
        let offset = d.received;
        d.matched &= data == pattern(offset, data.len());
        d.received += data.len() as u64;
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.0.borrow_mut().lost.push(ended(reason));
    }
}

#[test]
fn sixty_four_mebibytes_over_tcp_byte_exact() {
    const TOTAL: u64 = 64 << 20;
    let mut reactor = Reactor::new().unwrap();
    let server_lost = Rc::new(RefCell::new(Vec::new()));
    let lost = server_lost.clone();
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let (listener_id, address) = Listener::start(
        &mut reactor,
        listener,
        Box::new(move |reactor: &mut Reactor, stream, peer: Address| {
            let writer = PullWriter {
                total: TOTAL,
                sent: 0,
                lost: lost.clone(),
            };
            Connection::start(reactor, stream, peer, writer).unwrap();
        }),
    )
    .unwrap();

    let drain = Rc::new(RefCell::new(Drain {
        matched: true,
        ..Drain::default()
    }));
    let connect_failure = Rc::new(RefCell::new(None));
    let (d, failure) = (drain.clone(), connect_failure.clone());
    let target = address.tcp().unwrap();
    let stream = start_connect_tcp(target, None).unwrap();
    Connecting::start(
        &mut reactor,
        Box::new(stream),
        Address::Tcp(target),
        Some(LIMIT),
        Box::new(move |reactor: &mut Reactor, outcome| match outcome {
            Ok(stream) => {
                util::start(reactor, stream, DrainHandler(d)).unwrap();
            }
            Err(reason) => *failure.borrow_mut() = Some(reason.to_string()),
        }),
    )
    .unwrap();

    util::turn_until(&mut reactor, |_| {
        connect_failure.borrow().is_some()
            || (!drain.borrow().lost.is_empty() && !server_lost.borrow().is_empty())
    });
    assert_eq!(*connect_failure.borrow(), None);
    let drain = drain.borrow();
    assert_eq!(drain.received, TOTAL);
    assert!(drain.matched, "the bytes differ from what was sent");
    assert_eq!(drain.lost, [Ended::Done]);
    assert_eq!(*server_lost.borrow(), [Ended::Done]);
    assert!(Listener::stop(&mut reactor, listener_id));
}

// ===== a streaming producer and a slow reader =====

#[derive(Debug, PartialEq, Eq)]
enum Signal {
    Paused,
    Resumed,
    Finished,
}

/// A push producer: while not paused it writes one chunk per turn of the loop (from a
/// `call_soon`), as data arriving from elsewhere would.
struct PushWriter {
    id: Option<DescriptorId>,
    total: u64,
    sent: u64,
    paused: bool,
    ticking: bool,
    stats: Rc<RefCell<PushStats>>,
    signals: mpsc::Sender<Signal>,
}

#[derive(Debug, Default)]
struct PushStats {
    /// `P` for each pause_producing, `R` for each resume_producing.
    events: String,
    max_buffered: usize,
    max_buffered_at_resume: usize,
    lost: Vec<Ended>,
}

impl PushWriter {
    fn schedule_tick(&mut self, reactor: &mut Reactor) {
        if self.ticking {
            return;
        }
        self.ticking = true;
        let id = self.id.expect("started");
        reactor.call_soon(move |reactor| {
            Connection::<PushWriter>::with_handler(reactor, id, |w, t| w.tick(t));
        });
    }

    fn tick(&mut self, t: &mut Transport<'_>) {
        self.ticking = false;
        if self.paused || self.sent == self.total {
            return;
        }
        let n = (self.total - self.sent).min(CHUNK as u64) as usize;
        t.write(pattern(self.sent, n));
        self.sent += n as u64;
        {
            let mut stats = self.stats.borrow_mut();
            stats.max_buffered = stats.max_buffered.max(t.buffered());
        }
        if self.sent == self.total {
            t.unregister_producer();
            t.lose_connection();
            let _ = self.signals.send(Signal::Finished);
        } else {
            self.schedule_tick(t.reactor());
        }
    }
}

impl Handler for PushWriter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.id = Some(t.id());
        t.register_producer(true);
        self.schedule_tick(t.reactor());
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn pause_producing(&mut self, _: &mut Transport<'_>) {
        self.paused = true;
        self.stats.borrow_mut().events.push('P');
        let _ = self.signals.send(Signal::Paused);
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        self.paused = false;
        {
            let mut stats = self.stats.borrow_mut();
            stats.events.push('R');
            stats.max_buffered_at_resume = stats.max_buffered_at_resume.max(t.buffered());
        }
        let _ = self.signals.send(Signal::Resumed);
        self.schedule_tick(t.reactor());
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        self.stats.borrow_mut().lost.push(ended(reason));
    }
}

#[test]
fn streaming_producer_is_paused_at_the_high_water_mark() {
    const TOTAL: u64 = 256 << 20;
    let (server, client) = util::tcp_pair();
    // Fixed, modest kernel buffers: with autotuning, loopback TCP would soak up tens of
    // mebibytes before the transport's own buffer ever filled.
    socket2::SockRef::from(&server)
        .set_send_buffer_size(64 * 1024)
        .unwrap();
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(256 * 1024)
        .unwrap();
    util::bound_peer(&client);
    let (signals, signals_rx) = mpsc::channel();
    // The reader waits until the writer says it was paused, then reads until the writer
    // says it was resumed, and waits again: every round forces the write buffer past
    // its high-water mark, whatever the kernel's socket buffers hold.
    let peer = util::spawn_peer("slow reader", move || {
        let mut client = client;
        let mut buf = vec![0u8; 16 * 1024];
        let (mut total, mut matched, mut rounds) = (0u64, true, 0);
        let mut reading = false;
        let mut finished = false;
        loop {
            if !reading && !finished {
                match signals_rx.recv_timeout(LIMIT) {
                    Ok(Signal::Paused) => {
                        rounds += 1;
                        reading = true;
                    }
                    Ok(Signal::Resumed) => {}
                    Ok(Signal::Finished) => finished = true,
                    Err(e) => panic!("no signal from the writer: {e}"),
                }
                continue;
            }
            match client.read(&mut buf) {
                Ok(0) => return (total, matched, rounds),
                Ok(n) => {
                    matched &= buf[..n] == *pattern(total, n);
                    total += n as u64;
                }
                Err(e) => panic!("slow reader: {e} after {total} bytes"),
            }
            while let Ok(signal) = signals_rx.try_recv() {
                match signal {
                    Signal::Paused => {
                        rounds += 1;
                        reading = true;
                    }
                    Signal::Resumed => reading = false,
                    Signal::Finished => finished = true,
                }
            }
        }
    });

    let stats = Rc::new(RefCell::new(PushStats::default()));
    let writer = PushWriter {
        id: None,
        total: TOTAL,
        sent: 0,
        paused: false,
        ticking: false,
        stats: stats.clone(),
        signals,
    };
    let mut reactor = Reactor::new().unwrap();
    util::start(&mut reactor, Box::new(util::into_mio(server)), writer).unwrap();
    util::turn_until(&mut reactor, |_| !stats.borrow().lost.is_empty());

    let (received, matched, rounds) = peer.join().unwrap();
    let stats = stats.borrow();
    assert_eq!(stats.lost, [Ended::Done]);
    assert_eq!(received, TOTAL);
    assert!(matched, "the bytes differ from what was sent");
    assert!(rounds >= 2, "the reader never waited for a pause");
    assert!(
        stats.max_buffered <= DEFAULT_HIGH_WATER + CHUNK,
        "write buffer reached {} bytes, past high water {DEFAULT_HIGH_WATER} plus one chunk",
        stats.max_buffered
    );
    assert!(stats.max_buffered_at_resume <= DEFAULT_LOW_WATER);
    let pauses = stats.events.matches('P').count();
    assert!(pauses >= 2, "events: {}", stats.events);
    let expected: String = "PR".repeat(stats.events.len() / 2 + 1);
    assert!(
        expected.starts_with(stats.events.as_str()),
        "pause and resume must alternate, starting with a pause: {}",
        stats.events
    );
}
