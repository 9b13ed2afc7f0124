//! The check behind the `transform_request` fuzz target, shared with the test that
//! replays its corpus (`poetry-transform/tests/fuzz_corpus.rs` includes this file).
//!
//! It drives the transform server's protocol (`TransformProtocol` in protocol's
//! `NetstringReceiver`) through `protocol::testing::ProtocolTest` with arbitrary
//! bytes, a small request limit and a chunk size taken from the first two bytes, and
//! compares the outcome with a plain model of the service:
//!
//! * nothing panics;
//! * the replies written are exactly the model's: for each whole request of the read
//!   that completed the first one, in order, `cummingsify` answered, and nothing from
//!   the first refusal (unknown transform, no `.`, not UTF-8) on;
//! * the connection is closed, cleanly, exactly when the model says: after the read
//!   holding the first whole request, or at the first malformed or over-long netstring
//!   before it; otherwise it stays open, waiting.

use poetry_transform::{
    Cummingsify, ServerOptions, TransformFactory, TransformProtocol, Transforms,
};
use protocol::basic::NetstringReceiver;
use protocol::testing::ProtocolTest;
use protocol::{DisconnectReason, Shared};

/// One netstring of the input, as a reference parser sees it.
#[derive(Debug)]
enum Event<'a> {
    /// A whole netstring, and the offset just past its comma.
    Whole(&'a [u8], usize),
    /// The byte at this offset breaks the framing (or the limit).
    Broken(usize),
}

/// The netstrings of `input` with a limit of `max`, up to the first broken one (an
/// unfinished one at the end is left out).
fn reference(input: &[u8], max: usize) -> Vec<Event<'_>> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let mut value = 0usize;
        let mut digits = 0;
        loop {
            let Some(&byte) = input.get(at) else {
                return events;
            };
            match byte {
                b'0'..=b'9' if digits == 0 || value != 0 => {
                    value = value * 10 + usize::from(byte - b'0');
                    digits += 1;
                    if value > max {
                        events.push(Event::Broken(at));
                        return events;
                    }
                }
                b':' if digits > 0 => break,
                _ => {
                    events.push(Event::Broken(at));
                    return events;
                }
            }
            at += 1;
        }
        let start = at + 1;
        let comma = start + value;
        match input.get(comma) {
            None => return events,
            Some(b',') => events.push(Event::Whole(&input[start..comma], comma + 1)),
            Some(_) => {
                events.push(Event::Broken(comma));
                return events;
            }
        }
        at = comma + 1;
    }
    events
}

/// The reply the service owes `payload`, or `None` for a refusal.
fn model_answer(payload: &[u8]) -> Option<Vec<u8>> {
    let dot = payload.iter().position(|b| *b == b'.')?;
    if &payload[..dot] != b"cummingsify" {
        return None;
    }
    let poem = std::str::from_utf8(&payload[dot + 1..])
        .ok()?
        .to_lowercase();
    Some([format!("{}:", poem.len()).as_bytes(), poem.as_bytes(), b","].concat())
}

/// What the model expects: the bytes written and whether the connection is closed.
fn model(input: &[u8], max: usize, size: usize) -> (Vec<u8>, bool) {
    let read_of = |offset: usize| offset / size;
    let mut written = Vec::new();
    let mut first_read = None;
    for event in reference(input, max) {
        match event {
            Event::Whole(payload, end) => {
                let read = read_of(end - 1);
                if *first_read.get_or_insert(read) != read {
                    break;
                }
                match model_answer(payload) {
                    Some(reply) => written.extend_from_slice(&reply),
                    None => break,
                }
            }
            Event::Broken(at) => {
                if first_read.is_none_or(|read| read == read_of(at)) {
                    return (written, true);
                }
                break;
            }
        }
    }
    (written, first_read.is_some())
}

/// The fuzz target's check: `data[0]` picks the request limit (16 to 143 bytes),
/// `data[1]` the chunk size (0: whole, else 1 to 16), the rest is the input.
pub(crate) fn transform_request(data: &[u8]) {
    let [limit, chunking, input @ ..] = data else {
        return;
    };
    let max = 16 + usize::from(limit % 128);
    let size = match chunking % 17 {
        0 => input.len().max(1),
        n => usize::from(n),
    };
    let options = ServerOptions {
        max_request: max,
        ..ServerOptions::default()
    };
    let factory = Shared::new(TransformFactory::new(
        Transforms::new().with(Cummingsify),
        options,
    ));
    let mut test = ProtocolTest::new(
        NetstringReceiver::new(TransformProtocol::default()),
        factory,
    );
    for chunk in input.chunks(size) {
        if test.is_lost() {
            break;
        }
        test.feed(chunk);
    }
    let (want, closed) = model(input, max, size);
    assert_eq!(
        test.take_written(),
        want,
        "the replies (limit {max}, chunks of {size})"
    );
    assert_eq!(
        test.is_lost(),
        closed,
        "closed or not (limit {max}, chunks of {size})"
    );
    if let Some(reason) = test.reason() {
        assert!(
            !matches!(*reason, DisconnectReason::Panicked(_)),
            "the protocol panicked: {reason}"
        );
        assert!(reason.is_clean(), "every close is clean: {reason}");
    };
}
