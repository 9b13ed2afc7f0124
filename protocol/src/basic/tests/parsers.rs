//! The pure parsers through a [`FrameReader`], with no connection: every split point
//! of a stream, random chunkings of random bytes, bad input, limits, and no byte ever
//! lost (what came out as frames, re-encoded, followed by what is still buffered, is
//! exactly what went in).

use std::fmt::Debug;

use proptest::prelude::*;

use super::cut;
use crate::basic::{
    EmptyDelimiter, FrameReader, Framing, IntPrefixParser, IntStringError, LengthPrefix, LineError,
    LineSplitter, NetstringError, NetstringParser, Parsed,
};

/// What feeding some chunks gave: the frames, the first error (after which nothing
/// more is fed), and what stayed buffered.
#[derive(Debug, PartialEq)]
struct Outcome<E> {
    frames: Vec<Vec<u8>>,
    error: Option<E>,
    buffered: Vec<u8>,
}

/// Feeds `chunks` one by one, checking after each that the reader holds no more than
/// `bound` bytes until it refuses the input; after that, feeds the rest anyway (the
/// reader keeps refusing, and keeps every byte).
fn feed<F: Framing>(framing: F, chunks: &[&[u8]], bound: usize) -> Outcome<F::Error> {
    let mut reader = FrameReader::new(framing);
    let mut frames = Vec::new();
    let mut error = None;
    for chunk in chunks {
        match reader.feed(chunk, |frame| frames.push(frame.to_vec())) {
            Err(refused) => {
                error.get_or_insert(refused);
            }
            Ok(()) => assert!(
                error.is_none() && reader.buffered().len() <= bound,
                "{} bytes buffered, more than the {bound} the limit allows, or a refused \
                 stream accepted",
                reader.buffered().len()
            ),
        }
    }
    Outcome {
        frames,
        error,
        buffered: reader.take_buffered(),
    }
}

/// The outcome of feeding `input` whole, checked to be the same at every single split
/// point and at every chunk size, and to lose no byte: `encode(frames) + buffered`
/// is `input`.
///
/// A line's error tells how long the line had grown when it was refused, which
/// depends on the chunking: `same` says which errors count as the same.
#[track_caller]
fn at_every_split<F, E>(
    framing: impl Fn() -> F,
    input: &[u8],
    bound: usize,
    encode: impl Fn(&[u8]) -> Vec<u8>,
) -> Outcome<E>
where
    F: Framing<Error = E>,
    E: Normal,
{
    let whole = feed(framing(), &[input], bound);
    let mut replayed: Vec<u8> = whole.frames.iter().flat_map(|f| encode(f)).collect();
    replayed.extend_from_slice(&whole.buffered);
    assert_eq!(replayed, input, "bytes lost or invented");
    for at in 0..=input.len() {
        let (head, tail) = input.split_at(at);
        let split = feed(framing(), &[head, tail], bound);
        assert_eq!(split.normal(), whole.normal(), "split at {at}");
    }
    for size in 1..=input.len().max(1) {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        let chunked = feed(framing(), &chunks, bound);
        assert_eq!(chunked.normal(), whole.normal(), "chunks of {size}");
    }
    whole
}

/// An error with what depends on the chunking taken out.
trait Normal: PartialEq + Debug + Sized {
    fn normal(&self) -> Self;
}

impl Normal for LineError {
    /// How far a refused line had grown depends on the chunking; the limit does not.
    fn normal(&self) -> Self {
        match self {
            LineError::TooLong { length, max } => {
                assert!(
                    length > max,
                    "a line of {length} refused, the limit is {max}"
                );
                LineError::TooLong {
                    length: 0,
                    max: *max,
                }
            }
        }
    }
}

impl Normal for NetstringError {
    fn normal(&self) -> Self {
        self.clone()
    }
}

impl Normal for IntStringError {
    fn normal(&self) -> Self {
        self.clone()
    }
}

impl<E: Normal> Outcome<E> {
    fn normal(&self) -> Outcome<E> {
        Outcome {
            frames: self.frames.clone(),
            error: self.error.as_ref().map(Normal::normal),
            buffered: self.buffered.clone(),
        }
    }
}

fn line(delimiter: &'static [u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    move |line| [line, delimiter].concat()
}

fn netstring(payload: &[u8]) -> Vec<u8> {
    [format!("{}:", payload.len()).as_bytes(), payload, b","].concat()
}

fn prefixed<P: LengthPrefix>(payload: &[u8]) -> Vec<u8> {
    let mut prefix = vec![0; P::WIDTH];
    P::encode(payload.len(), &mut prefix);
    [prefix.as_slice(), payload].concat()
}

fn frames(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

// ===== LineSplitter =====

fn splitter(delimiter: &[u8], max: usize) -> impl Fn() -> LineSplitter + '_ {
    move || LineSplitter::new(delimiter, max).unwrap()
}

#[test]
fn lines_come_out_at_every_split_point() {
    let input = b"hello\r\n\r\nwor\rld\r\nunfinished\r";
    let outcome = at_every_split(splitter(b"\r\n", 12), input, 13, line(b"\r\n"));
    assert_eq!(outcome.frames, frames(&["hello", "", "wor\rld"]));
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.buffered, b"unfinished\r");
}

#[test]
fn self_overlapping_delimiters_are_found_at_every_split_point() {
    let input = b"aaabxabababyababab";
    let outcome = at_every_split(splitter(b"abab", 10), input, 13, line(b"abab"));
    assert_eq!(outcome.frames, frames(&["aaabx", "aby"]));
    assert_eq!(outcome.buffered, b"ab");
}

#[test]
fn a_line_over_the_limit_is_refused_with_its_length_and_kept() {
    let input = b"ok\ntoo long\nnext\n";
    let outcome = at_every_split(splitter(b"\n", 5), input, 6, line(b"\n"));
    assert_eq!(outcome.frames, frames(&["ok"]));
    // Fed whole, the delimiter shows the line's length.
    assert_eq!(
        outcome.error,
        Some(LineError::TooLong { length: 8, max: 5 })
    );
    assert_eq!(outcome.buffered, b"too long\nnext\n");
}

#[test]
fn an_unended_line_is_refused_once_it_cannot_fit() {
    let splitter = LineSplitter::new(b"\r\n", 4).unwrap();
    // Four bytes and a '\r' may still be a line of the maximum.
    assert_eq!(
        splitter.parse(b"abcd\r", 0),
        Ok(Parsed::Incomplete { searched: 4 })
    );
    assert_eq!(
        splitter.parse(b"abcde\r", 0),
        Err(LineError::TooLong { length: 6, max: 4 })
    );
    assert_eq!(
        splitter.parse(b"abcd\r\n", 0),
        Ok(Parsed::Frame {
            payload: 0..4,
            consumed: 6
        })
    );
}

#[test]
fn the_search_hint_skips_only_what_was_searched() {
    let splitter = LineSplitter::new(b"\r\n", 100).unwrap();
    let Ok(Parsed::Incomplete { searched }) = splitter.parse(b"abc\r", 0) else {
        panic!("no line yet");
    };
    assert_eq!(searched, 3, "the '\\r' may start the delimiter");
    assert_eq!(
        splitter.parse(b"abc\r\n", searched),
        Ok(Parsed::Frame {
            payload: 0..3,
            consumed: 5
        })
    );
}

#[test]
fn a_splitter_refuses_an_empty_delimiter() {
    assert_eq!(LineSplitter::new(b"", 10), Err(EmptyDelimiter));
    let mut splitter = LineSplitter::new(b"\n", 10).unwrap();
    assert_eq!(splitter.set_delimiter(b""), Err(EmptyDelimiter));
    assert_eq!(splitter.delimiter(), b"\n");
}

#[test]
fn changing_the_delimiter_applies_to_the_buffered_bytes() {
    let mut reader = FrameReader::new(LineSplitter::new(b"\r\n", 100).unwrap());
    let mut lines = Vec::new();
    reader.feed(b"a\nb", |l| lines.push(l.to_vec())).unwrap();
    assert!(lines.is_empty());
    reader.framing_mut().set_delimiter(b"\n").unwrap();
    reader.feed(b"", |l| lines.push(l.to_vec())).unwrap();
    assert_eq!(lines, frames(&["a"]));
    assert_eq!(reader.buffered(), b"b");
}

// ===== NetstringParser =====

#[test]
fn netstrings_come_out_at_every_split_point() {
    let input = b"5:hello,0:,3:a,b,12:unfin";
    let outcome = at_every_split(|| NetstringParser::new(20), input, 24, netstring);
    assert_eq!(outcome.frames, frames(&["hello", "", "a,b"]));
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.buffered, b"12:unfin");
}

#[test]
fn bad_netstrings_are_refused_with_a_typed_error_and_kept() {
    let cases: [(&[u8], NetstringError, &[u8]); 5] = [
        (
            b"1:a,x:",
            NetstringError::MalformedLength { found: b'x' },
            b"x:",
        ),
        (
            b"01:a,",
            NetstringError::MalformedLength { found: b'1' },
            b"01:a,",
        ),
        (b":", NetstringError::MalformedLength { found: b':' }, b":"),
        (
            b"2:ab;",
            NetstringError::MissingComma { found: b';' },
            b"2:ab;",
        ),
        (b"1:a,100", NetstringError::TooLong { max: 20 }, b"100"),
    ];
    for (input, error, kept) in cases {
        let outcome = at_every_split(|| NetstringParser::new(20), input, 24, netstring);
        assert_eq!(outcome.error, Some(error), "{input:?}");
        assert_eq!(outcome.buffered, kept, "{input:?}");
    }
}

#[test]
fn a_netstring_length_that_overflows_is_too_long() {
    let parser = NetstringParser::new(usize::MAX);
    let digits = format!("{}0:", usize::MAX);
    assert_eq!(
        parser.parse(digits.as_bytes(), 0),
        Err(NetstringError::TooLong { max: usize::MAX })
    );
    // The largest length is a length: it waits for its payload.
    let digits = format!("{}:", usize::MAX);
    assert_eq!(
        parser.parse(digits.as_bytes(), 0),
        Ok(Parsed::Incomplete { searched: 0 })
    );
}

// ===== IntPrefixParser =====

fn prefixed_strings_at_every_split<P: LengthPrefix>() {
    let mut input: Vec<u8> = ["hi", "", "three"]
        .iter()
        .flat_map(|s| prefixed::<P>(s.as_bytes()))
        .collect();
    input.extend_from_slice(&prefixed::<P>(b"unfinished")[..P::WIDTH + 3]);
    let outcome = at_every_split(
        || IntPrefixParser::<P>::new(10),
        &input,
        P::WIDTH + 10,
        prefixed::<P>,
    );
    assert_eq!(outcome.frames, frames(&["hi", "", "three"]));
    assert_eq!(outcome.buffered.len(), P::WIDTH + 3);
}

#[test]
fn prefixed_strings_come_out_at_every_split_point() {
    prefixed_strings_at_every_split::<u8>();
    prefixed_strings_at_every_split::<u16>();
    prefixed_strings_at_every_split::<u32>();
}

fn over_the_limit_refused_at_the_prefix<P: LengthPrefix>() {
    let mut input = prefixed::<P>(b"ok");
    let long = prefixed::<P>(&[b'x'; 11]);
    // Only the prefix of the long string: refused before its payload arrives.
    input.extend_from_slice(&long[..P::WIDTH]);
    let outcome = at_every_split(
        || IntPrefixParser::<P>::new(10),
        &input,
        P::WIDTH + 10,
        prefixed::<P>,
    );
    assert_eq!(outcome.frames, frames(&["ok"]));
    assert_eq!(
        outcome.error,
        Some(IntStringError::LengthLimitExceeded {
            length: 11,
            max: 10
        })
    );
    assert_eq!(outcome.buffered, &long[..P::WIDTH]);
}

#[test]
fn a_prefix_over_the_limit_is_refused_before_its_string() {
    over_the_limit_refused_at_the_prefix::<u8>();
    over_the_limit_refused_at_the_prefix::<u16>();
    over_the_limit_refused_at_the_prefix::<u32>();
}

// ===== Any bytes, any chunking =====

/// Feeds `input` whole and cut at `cuts`: the same outcome, and no byte lost.
fn same_whole_and_cut<F, E>(
    framing: impl Fn() -> F,
    input: &[u8],
    cuts: &[usize],
    bound: usize,
    encode: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<(), TestCaseError>
where
    F: Framing<Error = E>,
    E: Normal,
{
    let whole = feed(framing(), &[input], bound);
    let chunked = feed(framing(), &cut(input, cuts), bound);
    prop_assert_eq!(chunked.normal(), whole.normal());
    let mut replayed: Vec<u8> = whole.frames.iter().flat_map(|f| encode(f)).collect();
    replayed.extend_from_slice(&whole.buffered);
    prop_assert_eq!(replayed, input);
    Ok(())
}

proptest! {
    /// Random bytes from a small alphabet (so delimiters, digits and colons are
    /// common), cut anywhere: every parser gives the same frames and error as when
    /// fed whole, never buffers past its limit, and loses no byte.
    #[test]
    fn any_bytes_in_any_chunking(
        input in prop::collection::vec(prop::sample::select(&b"ab\r\n12:,0"[..]), 0..120),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max in 0usize..12,
    ) {
        same_whole_and_cut(splitter(b"\r\n", max), &input, &cuts, max + 2, line(b"\r\n"))?;
        same_whole_and_cut(splitter(b"\n\n", max), &input, &cuts, max + 2, line(b"\n\n"))?;
        // The digits of a length up to `max`, its colon and its comma.
        let netstring_bound = max + 2 + max.to_string().len() + 1;
        same_whole_and_cut(|| NetstringParser::new(max), &input, &cuts, netstring_bound, netstring)?;
        same_whole_and_cut(|| IntPrefixParser::<u8>::new(max), &input, &cuts, 1 + max, prefixed::<u8>)?;
        same_whole_and_cut(|| IntPrefixParser::<u16>::new(max), &input, &cuts, 2 + max, prefixed::<u16>)?;
    }
}
