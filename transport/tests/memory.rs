//! `MemoryStream` drives the very same `Connection` code as a socket: a small pump
//! stands in for the operating system's readiness reports.

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reactor::{DescriptorId, Reactor};
use transport::{MemoryStream, Stream};
use util::{pattern, Ended, Probe, LIMIT};

/// Turns the reactor, telling it the memory-backed connection `id` is readable and
/// writable before each turn and letting the test's end of the pair act after it
/// (`peer`), until the pair's activity counter stops moving. Bounded by count and
/// time.
#[track_caller]
fn pump(
    reactor: &mut Reactor,
    id: DescriptorId,
    theirs: &mut MemoryStream,
    mut peer: impl FnMut(&mut MemoryStream),
) {
    const MAX_PUMPS: usize = 1_000_000;
    let deadline = Instant::now() + LIMIT;
    for _ in 0..MAX_PUMPS {
        let before = theirs.activity();
        // A connection that has ended is no longer in the reactor: nothing to mark.
        let _ = reactor.set_ready(id, true, true);
        reactor.iterate(Some(Duration::ZERO)).expect("iterate");
        peer(theirs);
        if theirs.activity() == before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the memory pair is still busy after {LIMIT:?}"
        );
    }
    panic!("the memory pair is still busy after {MAX_PUMPS} pumps");
}

/// A peer that reads everything it is sent into `into`.
fn reader(into: &mut Vec<u8>) -> impl FnMut(&mut MemoryStream) + '_ {
    |end| {
        let mut buf = [0u8; 4096];
        while end.available() > 0 {
            let n = end.read(&mut buf).unwrap();
            into.extend_from_slice(&buf[..n]);
        }
    }
}

#[test]
fn writes_keep_their_order_through_a_one_byte_pipe() {
    const COUNT: u32 = 300;
    let message = |i: u32| pattern(u64::from(i), (i % 17) as usize);
    let mut expected = Vec::new();
    for i in 0..COUNT {
        expected.extend_from_slice(&i.to_le_bytes());
        expected.extend_from_slice(message(i));
    }
    let (ours, mut theirs) = MemoryStream::pair(1);
    let (probe, record) = Probe::new();
    let probe = probe.on_made(move |t| {
        for i in 0..COUNT {
            match i % 3 {
                0 => {
                    t.write(&i.to_le_bytes());
                    t.write(message(i));
                }
                1 => t.write_sequence(&[&i.to_le_bytes(), message(i)]),
                _ => t.write_sequence(&[&i.to_le_bytes()[..1], &i.to_le_bytes()[1..], message(i)]),
            }
        }
        t.lose_connection();
    });
    let mut reactor = Reactor::new().unwrap();
    let id = util::start(&mut reactor, Box::new(ours), probe).unwrap();
    let mut received = Vec::new();
    pump(&mut reactor, id, &mut theirs, reader(&mut received));

    assert_eq!(received, expected, "bytes reordered or lost");
    assert!(theirs.at_eof(), "the close reached the peer after the data");
    let record = record.borrow();
    assert_eq!(record.only_reason(), Ended::Done);
    let host = &record.addresses_made.as_ref().unwrap().0;
    assert_eq!(record.addresses_lost.as_ref().unwrap().0, *host);
}

#[test]
fn echo_through_a_small_pipe() {
    let (ours, mut theirs) = MemoryStream::pair(3);
    let (probe, record) = Probe::new();
    let probe = probe.on_data(|t, data| t.write(data));
    let mut reactor = Reactor::new().unwrap();
    let id = util::start(&mut reactor, Box::new(ours), probe).unwrap();
    let request = pattern(0, 5000);
    let mut sent = 0;
    let mut echoed = Vec::new();
    pump(&mut reactor, id, &mut theirs, |end| {
        if sent < request.len() {
            sent += end.write(&request[sent..]).unwrap_or(0);
        }
        reader(&mut echoed)(end);
    });
    assert_eq!(echoed, request);
    assert!(!record.borrow().is_lost());
}

#[test]
fn peer_dropped_after_writing_is_done() {
    let (ours, mut theirs) = MemoryStream::pair(4);
    let (probe, record) = Probe::new();
    let mut reactor = Reactor::new().unwrap();
    let id = util::start(&mut reactor, Box::new(ours), probe).unwrap();
    theirs.write_all(b"last").unwrap();
    pump(&mut reactor, id, &mut theirs, |_| {});
    assert_eq!(record.borrow().received, b"last");
    drop(theirs);
    // With the peer end gone there is no activity counter left to watch: turn until
    // the connection reports its end (bounded).
    util::turn_until(&mut reactor, |r| {
        let _ = r.set_ready(id, true, true);
        record.borrow().is_lost()
    });
    let record = record.borrow();
    assert_eq!(record.only_reason(), Ended::Done);
    assert_eq!(record.read_lost, 1, "the peer's close is its end of file");
}

#[test]
fn peer_reset_is_lost() {
    let (ours, theirs) = MemoryStream::pair(4);
    let (probe, record) = Probe::new();
    let mut reactor = Reactor::new().unwrap();
    let id = util::start(&mut reactor, Box::new(ours), probe).unwrap();
    theirs.set_reset_on_close().unwrap();
    drop(theirs);
    util::turn_until(&mut reactor, |r| {
        let _ = r.set_ready(id, true, true);
        record.borrow().is_lost()
    });
    assert_eq!(record.borrow().only_reason(), Ended::Lost);
}

#[test]
fn peer_dropped_while_we_still_write_is_lost() {
    let (ours, mut theirs) = MemoryStream::pair(2);
    let (probe, record) = Probe::new();
    let probe = probe.on_made(|t| t.write(pattern(0, 1000)));
    let mut reactor = Reactor::new().unwrap();
    let id = util::start(&mut reactor, Box::new(ours), probe).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1];
    // Take a few bytes, then go away with most of them unsent.
    for _ in 0..5 {
        let _ = reactor.set_ready(id, true, true);
        reactor.iterate(Some(Duration::ZERO)).unwrap();
        if let Ok(n) = theirs.read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
    }
    assert!(!received.is_empty() && received.len() < 1000);
    drop(theirs);
    util::turn_until(&mut reactor, |r| {
        let _ = r.set_ready(id, true, true);
        record.borrow().is_lost()
    });
    assert_eq!(
        record.borrow().only_reason(),
        Ended::Lost,
        "{:?}",
        record.borrow().lost_text
    );
}
