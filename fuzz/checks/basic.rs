//! The checks behind the `protocol::basic` fuzz targets, shared with the tests that
//! replay their corpora (`protocol/tests/fuzz_corpus.rs` includes this file), so CI
//! checks every input the fuzzer ever kept, without fuzzing.
//!
//! Each check drives one receiver through `protocol::testing::ProtocolTest` (the real
//! transport over an in-memory stream), with a small maximum length, a delimiter or
//! prefix width and a chunk size taken from the first bytes of the input, and compares
//! what it delivers with a plain model of the framing:
//!
//! * nothing panics (a panic inside a callback would be caught by the reactor and end
//!   the connection with `DisconnectReason::Panicked`: that is a failure too);
//! * the strings delivered are exactly the model's, in order;
//! * input that breaks the framing or its limit is refused with the receiver's error,
//!   *as soon as* the byte that shows it arrives (an over-long length prefix is
//!   refused without waiting for its payload, a line as soon as it cannot fit), and
//!   not a byte earlier;
//! * until then, what the receiver buffers stays below the limit (plus prefix or
//!   delimiter): no large allocation on a peer's say-so.

// Each fuzz target uses one of the checks.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use protocol::basic::{
    IntNStringReceiver, IntStringContext, IntStringError, IntStringProtocol, LengthPrefix,
    LineContext, LineError, LineProtocol, LineReceiver, NetstringContext, NetstringError,
    NetstringProtocol, NetstringReceiver,
};
use protocol::testing::ProtocolTest;
use protocol::{DisconnectReason, Protocol, Shared};

/// What a receiver's protocol saw, kept outside it (the protocol is dropped with its
/// connection).
#[derive(Debug, Default)]
struct Record {
    strings: Vec<Vec<u8>>,
    raw_mode: bool,
    raw: Vec<u8>,
    exceeded: Option<Vec<u8>>,
    lost: bool,
    panicked: Option<String>,
}

type Recorded = Rc<RefCell<Record>>;

/// The chunk size byte: 0 feeds the input whole, n feeds it n bytes at a time.
fn chunk_size(selector: u8, input: &[u8]) -> usize {
    match selector % 17 {
        0 => input.len().max(1),
        n => usize::from(n),
    }
}

/// Feeds `input` in chunks of `size`; after each, checks that the connection is lost
/// exactly when the byte at `refused_at` has arrived, and runs `bounded` while it is
/// open.
#[track_caller]
fn feed_checked<P: Protocol>(
    test: &mut ProtocolTest<P>,
    input: &[u8],
    size: usize,
    refused_at: Option<usize>,
    mut bounded: impl FnMut(&mut ProtocolTest<P>),
) {
    let mut fed = 0;
    for chunk in input.chunks(size) {
        test.feed(chunk);
        fed += chunk.len();
        if let Some(DisconnectReason::Panicked(message)) = test.reason().as_deref() {
            panic!("the receiver panicked: {message}");
        }
        match refused_at {
            Some(at) if fed > at => assert!(
                test.is_lost(),
                "byte {at} breaks the framing, but the connection is open after {fed} bytes"
            ),
            _ => {
                assert!(
                    !test.is_lost(),
                    "the connection was lost after {fed} bytes of valid input"
                );
                bounded(test);
            }
        }
    }
}

/// Ends the test: the peer leaves, the protocol hears of it once, never by a panic.
#[track_caller]
fn finish<P: Protocol>(mut test: ProtocolTest<P>, record: &Recorded) {
    test.disconnect_peer(false);
    assert!(test.is_lost(), "the connection outlived its peer");
    let record = record.borrow();
    assert!(record.lost, "connection_lost never reached the protocol");
    if let Some(message) = &record.panicked {
        panic!("the receiver panicked: {message}");
    }
}

fn panic_text(reason: &DisconnectReason) -> Option<String> {
    match reason {
        DisconnectReason::Panicked(message) => Some(message.clone()),
        _ => None,
    }
}

// ===== LineReceiver =====

/// Delimiters to try: the usual ones, and self-overlapping ones that trip naive
/// searches.
const DELIMITERS: [&[u8]; 5] = [b"\r\n", b"\n", b"\r\n\r\n", b"aab", b"abab"];

/// Collects lines; the line `raw` switches to raw mode for good.
struct Lines {
    delimiter: &'static [u8],
    max: usize,
    record: Recorded,
}

impl LineProtocol for Lines {
    type Factory = ();

    fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        cx.set_delimiter(self.delimiter)
            .expect("the checks pick non-empty delimiters");
        cx.set_max_length(self.max);
    }

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        assert!(
            line.len() <= self.max,
            "a line over the maximum was delivered"
        );
        let mut record = self.record.borrow_mut();
        record.strings.push(line.to_vec());
        if line == b"raw" {
            record.raw_mode = true;
            cx.set_raw_mode();
        }
    }

    fn raw_data_received(&mut self, _cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        self.record.borrow_mut().raw.extend_from_slice(data);
    }

    fn line_length_exceeded(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        assert!(
            matches!(cx.error(), Some(LineError::TooLong { max, .. }) if *max == self.max),
            "line_length_exceeded without its error: {:?}",
            cx.error()
        );
        self.record.borrow_mut().exceeded = Some(data.to_vec());
        cx.lose_connection();
    }

    fn connection_lost(&mut self, _cx: &mut LineContext<'_, '_, Self>, reason: &DisconnectReason) {
        let mut record = self.record.borrow_mut();
        record.lost = true;
        record.panicked = panic_text(reason);
    }
}

/// What a line receiver should make of `input`.
#[derive(Debug, Default)]
struct LineModel<'a> {
    lines: Vec<&'a [u8]>,
    /// Everything after the line `raw`, if it came.
    raw: Option<&'a [u8]>,
    /// The line that broke the limit: where it starts, and the index of the byte
    /// that shows it is too long.
    too_long: Option<(usize, usize)>,
    /// Bytes of an unfinished line at the end.
    unfinished: usize,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn line_model<'a>(input: &'a [u8], delimiter: &[u8], max: usize) -> LineModel<'a> {
    let mut model = LineModel::default();
    let mut pos = 0;
    loop {
        // A line that cannot fit is refused once `max + delimiter` bytes of it are in
        // without a delimiter (a line of `max` could still be followed by all but the
        // last byte of one), or when its delimiter shows it longer than `max`.
        let limit_at = pos + max + delimiter.len() - 1;
        match find(&input[pos..], delimiter) {
            Some(at) if at <= max => {
                let line = &input[pos..pos + at];
                model.lines.push(line);
                pos += at + delimiter.len();
                if line == b"raw" {
                    model.raw = Some(&input[pos..]);
                    return model;
                }
            }
            Some(_) => {
                model.too_long = Some((pos, limit_at));
                return model;
            }
            None if input.len() > limit_at => {
                model.too_long = Some((pos, limit_at));
                return model;
            }
            None => {
                model.unfinished = input.len() - pos;
                return model;
            }
        }
    }
}

/// `data[0]`: delimiter and chunk size; `data[1]`: the maximum line length (0 to
/// 63); the rest is what the peer sends.
pub(crate) fn line_receiver(data: &[u8]) {
    let [control, max, input @ ..] = data else {
        return;
    };
    let delimiter = DELIMITERS[usize::from(*control) % DELIMITERS.len()];
    let max = usize::from(*max % 64);
    let size = chunk_size(control / 5, input);
    let model = line_model(input, delimiter, max);

    let record = Recorded::default();
    let lines = Lines {
        delimiter,
        max,
        record: record.clone(),
    };
    let mut test = ProtocolTest::new(LineReceiver::new(lines), Shared::new(()));
    let refused_at = model.too_long.map(|(_, at)| at);
    feed_checked(&mut test, input, size, refused_at, |test| {
        let buffered = test
            .with_protocol(|receiver, _| receiver.buffered())
            .expect("the connection is open");
        let line_mode = !record.borrow().raw_mode;
        if line_mode {
            assert!(
                buffered < max + delimiter.len(),
                "{buffered} bytes buffered, the maximum is {max}"
            );
        } else {
            assert_eq!(buffered, 0, "raw mode buffers nothing");
        }
    });
    {
        let got = record.borrow();
        let want: Vec<Vec<u8>> = model.lines.iter().map(|l| l.to_vec()).collect();
        assert_eq!(got.strings, want, "the lines delivered");
        assert_eq!(got.raw, model.raw.unwrap_or_default(), "the raw bytes");
        match model.too_long {
            Some((start, _)) => {
                let exceeded = got.exceeded.as_deref().expect("line_length_exceeded ran");
                assert!(
                    input[start..].starts_with(exceeded) && exceeded.len() > max,
                    "line_length_exceeded got {} bytes that are not the long line",
                    exceeded.len()
                );
            }
            None => {
                assert!(got.exceeded.is_none(), "a line was refused wrongly");
                if model.raw.is_none() {
                    let buffered = test.with_protocol(|r, _| r.buffered());
                    assert_eq!(buffered, Some(model.unfinished), "the unfinished line");
                }
            }
        }
    }
    finish(test, &record);
}

// ===== NetstringReceiver =====

/// Collects netstrings.
struct Netstrings {
    max: usize,
    record: Recorded,
    error: Rc<RefCell<Option<NetstringError>>>,
}

impl NetstringProtocol for Netstrings {
    type Factory = ();

    fn connection_made(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        cx.set_max_length(self.max);
    }

    fn string_received(&mut self, _cx: &mut NetstringContext<'_, '_, Self>, string: &[u8]) {
        assert!(
            string.len() <= self.max,
            "a string over the maximum was delivered"
        );
        self.record.borrow_mut().strings.push(string.to_vec());
    }

    fn connection_lost(
        &mut self,
        cx: &mut NetstringContext<'_, '_, Self>,
        reason: &DisconnectReason,
    ) {
        *self.error.borrow_mut() = cx.error().cloned();
        let mut record = self.record.borrow_mut();
        record.lost = true;
        record.panicked = panic_text(reason);
    }
}

/// What a netstring receiver should make of `input`: the strings, and the first
/// error with the index of the byte that shows it.
fn netstring_model(input: &[u8], max: usize) -> (Vec<&[u8]>, Option<(usize, NetstringError)>) {
    let mut strings = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let (mut value, mut digits) = (0usize, 0usize);
        let colon = loop {
            let Some(&byte) = input.get(pos + digits) else {
                return (strings, None);
            };
            let at = pos + digits;
            match byte {
                b'0'..=b'9' if digits == 0 || value != 0 => {
                    match value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(usize::from(byte - b'0')))
                        .filter(|v| *v <= max)
                    {
                        Some(v) => value = v,
                        None => return (strings, Some((at, NetstringError::TooLong { max }))),
                    }
                    digits += 1;
                }
                b':' if digits > 0 => break at,
                found => {
                    return (
                        strings,
                        Some((at, NetstringError::MalformedLength { found })),
                    )
                }
            }
        };
        let start = colon + 1;
        let comma = start + value;
        match input.get(comma) {
            None => return (strings, None),
            Some(b',') => strings.push(&input[start..comma]),
            Some(&found) => {
                return (
                    strings,
                    Some((comma, NetstringError::MissingComma { found })),
                )
            }
        }
        pos = comma + 1;
    }
    (strings, None)
}

/// `data[0]`: chunk size, and whether the maximum is huge (to reach the length's
/// overflow); `data[1]`: the maximum (0 to 255); the rest is what the peer sends.
pub(crate) fn netstring(data: &[u8]) {
    let [control, max, input @ ..] = data else {
        return;
    };
    let max = if control & 0x80 != 0 {
        usize::MAX
    } else {
        usize::from(*max)
    };
    let size = chunk_size(*control & 0x7f, input);
    let (want, error) = netstring_model(input, max);

    let record = Recorded::default();
    let got_error = Rc::new(RefCell::new(None));
    let protocol = Netstrings {
        max,
        record: record.clone(),
        error: got_error.clone(),
    };
    let mut test = ProtocolTest::new(NetstringReceiver::new(protocol), Shared::new(()));
    feed_checked(
        &mut test,
        input,
        size,
        error.as_ref().map(|(at, _)| *at),
        |_| {},
    );
    let want: Vec<Vec<u8>> = want.iter().map(|s| s.to_vec()).collect();
    assert_eq!(record.borrow().strings, want, "the strings delivered");
    finish(test, &record);
    assert_eq!(
        *got_error.borrow(),
        error.map(|(_, e)| e),
        "the receiver's error"
    );
}

// ===== Int8/16/32StringReceiver =====

/// Collects length-prefixed strings, over any prefix width.
struct IntStrings {
    max: usize,
    record: Recorded,
    error: Rc<RefCell<Option<IntStringError>>>,
}

impl<P: LengthPrefix> IntStringProtocol<P> for IntStrings {
    type Factory = ();

    fn connection_made(&mut self, cx: &mut IntStringContext<'_, '_, P, Self>) {
        cx.set_max_length(self.max);
    }

    fn string_received(&mut self, _cx: &mut IntStringContext<'_, '_, P, Self>, string: &[u8]) {
        assert!(
            string.len() <= self.max,
            "a string over the maximum was delivered"
        );
        self.record.borrow_mut().strings.push(string.to_vec());
    }

    fn connection_lost(
        &mut self,
        cx: &mut IntStringContext<'_, '_, P, Self>,
        reason: &DisconnectReason,
    ) {
        *self.error.borrow_mut() = cx.error().cloned();
        let mut record = self.record.borrow_mut();
        record.lost = true;
        record.panicked = panic_text(reason);
    }
}

/// What a `P`-prefixed receiver should make of `input`: the strings, the first error
/// with the index of the byte that shows it, and the bytes of an unfinished string.
#[allow(clippy::type_complexity)] // a model's answer, read once
fn int_string_model<P: LengthPrefix>(
    input: &[u8],
    max: usize,
) -> (Vec<&[u8]>, Option<(usize, IntStringError)>, usize) {
    let mut strings = Vec::new();
    let mut pos = 0;
    loop {
        if input.len() - pos < P::WIDTH {
            return (strings, None, input.len() - pos);
        }
        // Big-endian, written here as the model's own reading of the prefix.
        let length = input[pos..pos + P::WIDTH]
            .iter()
            .fold(0usize, |n, b| n << 8 | usize::from(*b));
        if length > max {
            let error = IntStringError::LengthLimitExceeded { length, max };
            return (strings, Some((pos + P::WIDTH - 1, error)), 0);
        }
        let start = pos + P::WIDTH;
        if input.len() - start < length {
            return (strings, None, input.len() - pos);
        }
        strings.push(&input[start..start + length]);
        pos = start + length;
    }
}

fn int_string_with<P: LengthPrefix>(input: &[u8], max: usize, size: usize) {
    let (want, error, unfinished) = int_string_model::<P>(input, max);
    let record = Recorded::default();
    let got_error = Rc::new(RefCell::new(None));
    let protocol = IntStrings {
        max,
        record: record.clone(),
        error: got_error.clone(),
    };
    let receiver = IntNStringReceiver::<P, _>::new(protocol);
    let mut test = ProtocolTest::new(receiver, Shared::new(()));
    let refused_at = error.as_ref().map(|(at, _)| *at);
    feed_checked(&mut test, input, size, refused_at, |test| {
        let buffered = test
            .with_protocol(|receiver, _| receiver.buffered())
            .expect("the connection is open");
        assert!(
            buffered < P::WIDTH + max,
            "{buffered} bytes buffered, the maximum is {max}"
        );
    });
    let want: Vec<Vec<u8>> = want.iter().map(|s| s.to_vec()).collect();
    assert_eq!(record.borrow().strings, want, "the strings delivered");
    if error.is_none() {
        let buffered = test.with_protocol(|receiver, _| receiver.buffered());
        assert_eq!(buffered, Some(unfinished), "the unfinished string");
    }
    finish(test, &record);
    assert_eq!(
        *got_error.borrow(),
        error.map(|(_, e)| e),
        "the receiver's error"
    );
}

/// `data[0]`: prefix width (1, 2 or 4 bytes) and chunk size; `data[1]`: the maximum
/// (0 to 255); the rest is what the peer sends.
pub(crate) fn int_string(data: &[u8]) {
    let [control, max, input @ ..] = data else {
        return;
    };
    let max = usize::from(*max);
    let size = chunk_size(control / 3, input);
    match control % 3 {
        0 => int_string_with::<u8>(input, max, size),
        1 => int_string_with::<u16>(input, max, size),
        _ => int_string_with::<u32>(input, max, size),
    }
}
