//! [`Framing`]: a pure framing parser, and [`FrameReader`]: the bytes a framing has
//! not used yet, kept between reads. Every receiver of this module is a
//! [`FrameReader`] over one of the parsers, plus its protocol's callbacks.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

pub(super) mod sealed {
    /// Only this module's parsers are [`Framing`](super::Framing)s.
    pub trait Sealed {}
}

/// Above this capacity, an emptied buffer is given back rather than kept, so an idle
/// connection holds no large buffer.
const KEEP_CAPACITY: usize = 4096;

/// A framing, as a pure parser: finds the frame that starts a byte stream, or says
/// that more bytes are needed, or that the bytes break the framing. It keeps no bytes
/// and calls nothing: [`FrameReader`] keeps what is not yet a frame, and the
/// receivers ([`LineReceiver`](super::LineReceiver), ...) call the protocol.
///
/// Implemented by [`LineSplitter`](super::LineSplitter),
/// [`NetstringParser`](super::NetstringParser) and
/// [`IntPrefixParser`](super::IntPrefixParser), and sealed: [`FrameReader`] relies on
/// what they return (a frame takes at least one of the bytes given, and its payload
/// lies inside it), so a framing of one's own is written as a receiver's parsing,
/// not as a `Framing`.
pub trait Framing: sealed::Sealed {
    /// What is wrong with input that breaks the framing.
    type Error;

    /// Looks at `bytes`, which begin where a frame begins.
    ///
    /// `searched` is a hint: the number of leading bytes a previous call on a prefix
    /// of the same stream reported as [`Parsed::Incomplete`]`{ searched }`, so they
    /// need not be looked at again; 0 always works.
    ///
    /// # Errors
    ///
    /// The framing's error as soon as the bytes show that the stream breaks it (a
    /// frame over the limit, a malformed header), without waiting for more.
    fn parse(&self, bytes: &[u8], searched: usize) -> Result<Parsed, Self::Error>;
}

/// What a [`Framing`] found at the start of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole frame: its payload is `bytes[payload]`, and the frame (header and
    /// trailer included) takes the first `consumed` bytes, at least one.
    Frame {
        /// Where the payload lies in the bytes given.
        payload: Range<usize>,
        /// How many bytes the whole frame takes.
        consumed: usize,
    },
    /// No whole frame yet. The first `searched` bytes need not be looked at again
    /// when more arrive (pass it back to [`Framing::parse`]).
    Incomplete {
        /// Bytes already looked at in vain.
        searched: usize,
    },
}

/// A [`Framing`] and the bytes received that are not yet a frame: feed it reads as
/// they come, in any chunking, and it hands out whole frames.
///
/// A frame that arrives whole in one read is handed out straight from it; only bytes
/// of an unfinished frame are copied aside.
///
/// # Examples
///
/// ```
/// use protocol::basic::{FrameReader, LineSplitter};
///
/// let mut reader = FrameReader::new(LineSplitter::new(b"\r\n", 100).unwrap());
/// let mut lines = Vec::new();
/// reader.feed(b"hello\r\nwor", |line| lines.push(line.to_vec())).unwrap();
/// reader.feed(b"ld\r", |line| lines.push(line.to_vec())).unwrap();
/// reader.feed(b"\n", |line| lines.push(line.to_vec())).unwrap();
/// assert_eq!(lines, [b"hello".to_vec(), b"world".to_vec()]);
/// assert!(reader.buffered().is_empty());
/// ```
pub struct FrameReader<F> {
    framing: F,
    /// Bytes received and not yet framed. While a read is being delivered (a
    /// [`Pending`] is out), the bytes are in the `Pending` and this collects what the
    /// receiver adds after them ([`extend`](Self::extend)).
    buffer: Vec<u8>,
    /// Leading bytes of `buffer` the framing already looked at in vain.
    searched: usize,
}

impl<F: fmt::Debug> fmt::Debug for FrameReader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("framing", &self.framing)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl<F: Framing> FrameReader<F> {
    /// A reader with nothing buffered.
    pub fn new(framing: F) -> Self {
        FrameReader {
            framing,
            buffer: Vec::new(),
            searched: 0,
        }
    }

    /// The framing, to read its settings.
    pub fn framing(&self) -> &F {
        &self.framing
    }

    /// The framing, to change its settings; they apply to the bytes buffered too.
    pub fn framing_mut(&mut self) -> &mut F {
        // A new delimiter or limit may find what the old one did not.
        self.searched = 0;
        &mut self.framing
    }

    /// The bytes received and not yet handed out.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Takes the bytes received and not yet handed out, leaving none.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.searched = 0;
        std::mem::take(&mut self.buffer)
    }

    /// Parses what is buffered followed by `data`, calling `each` with each whole
    /// frame's payload, in order; keeps the rest for the next call.
    ///
    /// # Errors
    ///
    /// The framing's error when the input breaks it. Frames before the bad one have
    /// been handed to `each`; the bad frame and everything after it stay buffered
    /// ([`take_buffered`](Self::take_buffered) gets them), and every later call
    /// returns the error again until they are taken away.
    pub fn feed(&mut self, data: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), F::Error> {
        let mut pending = self.begin(data);
        let result = loop {
            match self.next(&mut pending) {
                Ok(Some(frame)) => each(&pending.bytes()[frame]),
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        self.end(pending);
        result
    }

    /// Starts delivering a read: the buffered bytes followed by `data`, borrowed from
    /// `data` when nothing is buffered. Give it back with [`end`](Self::end).
    pub(super) fn begin<'a>(&mut self, data: &'a [u8]) -> Pending<'a> {
        if self.buffer.is_empty() {
            Pending {
                bytes: Cow::Borrowed(data),
                pos: 0,
                searched: 0,
            }
        } else {
            let mut bytes = std::mem::take(&mut self.buffer);
            let searched = std::mem::take(&mut self.searched).min(bytes.len());
            bytes.extend_from_slice(data);
            Pending {
                bytes: Cow::Owned(bytes),
                pos: 0,
                searched,
            }
        }
    }

    /// The next whole frame of `pending`, as a range of [`Pending::bytes`], moving
    /// past it; `None` when the rest is an unfinished frame.
    ///
    /// # Errors
    ///
    /// The framing's error, `pending` left where the bad frame starts.
    pub(super) fn next(&self, pending: &mut Pending<'_>) -> Result<Option<Range<usize>>, F::Error> {
        let searched = std::mem::take(&mut pending.searched);
        let rest = pending.rest();
        match self.framing.parse(rest, searched)? {
            Parsed::Frame { payload, consumed } => {
                debug_assert!(
                    payload.start <= payload.end && payload.end <= consumed,
                    "a frame's payload lies inside it"
                );
                debug_assert!(
                    (1..=rest.len()).contains(&consumed),
                    "a frame takes at least one byte of those given"
                );
                let start = pending.pos;
                pending.pos += consumed;
                Ok(Some(start + payload.start..start + payload.end))
            }
            Parsed::Incomplete { searched } => {
                debug_assert!(searched <= rest.len(), "searched beyond the bytes");
                pending.searched = searched;
                Ok(None)
            }
        }
    }

    /// Appends `extra` after the bytes not yet delivered (during a delivery, after
    /// those of the [`Pending`]: [`absorb`](Self::absorb) moves them in).
    pub(super) fn extend(&mut self, extra: &[u8]) {
        self.buffer.extend_from_slice(extra);
    }

    /// Moves what [`extend`](Self::extend) added during a delivery behind the rest of
    /// `pending`.
    pub(super) fn absorb(&mut self, pending: &mut Pending<'_>) {
        if self.buffer.is_empty() {
            return;
        }
        let mut bytes = pending.take_bytes();
        bytes.append(&mut self.buffer);
        *pending = Pending {
            bytes: Cow::Owned(bytes),
            pos: 0,
            searched: 0,
        };
    }

    /// Ends a delivery: what `pending` did not deliver (and whatever was added
    /// meanwhile) is buffered for the next read.
    pub(super) fn end(&mut self, mut pending: Pending<'_>) {
        let mut searched = pending.searched;
        let mut rest = pending.take_bytes();
        if !self.buffer.is_empty() {
            rest.append(&mut self.buffer);
            searched = 0;
        }
        if rest.is_empty() && rest.capacity() > KEEP_CAPACITY {
            rest = Vec::new();
        }
        debug_assert!(
            searched <= rest.len(),
            "the hint covers buffered bytes only"
        );
        self.buffer = rest;
        self.searched = searched;
    }

    /// Drops the buffered bytes and their memory (the connection is gone).
    pub(super) fn release(&mut self) {
        self.buffer = Vec::new();
        self.searched = 0;
    }
}

/// The bytes of one delivery: what was buffered followed by the read, and how far the
/// receiver has got.
#[derive(Debug)]
pub(super) struct Pending<'a> {
    bytes: Cow<'a, [u8]>,
    /// Bytes before this are delivered.
    pos: usize,
    /// Bytes after `pos` the framing already looked at in vain.
    searched: usize,
}

impl Pending<'_> {
    /// All the bytes, delivered or not: the ranges [`FrameReader::next`] returns index
    /// into them.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes not yet delivered.
    pub(super) fn rest(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    /// Whether every byte has been delivered.
    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Marks every byte delivered; returns where the ones not delivered before lie.
    pub(super) fn take_rest(&mut self) -> Range<usize> {
        let rest = self.pos..self.bytes.len();
        self.pos = self.bytes.len();
        self.searched = 0;
        rest
    }

    /// The undelivered bytes, owned, leaving `self` empty.
    fn take_bytes(&mut self) -> Vec<u8> {
        let pos = std::mem::take(&mut self.pos);
        match std::mem::take(&mut self.bytes) {
            Cow::Owned(mut owned) => {
                owned.drain(..pos);
                owned
            }
            Cow::Borrowed(borrowed) => borrowed[pos..].to_vec(),
        }
    }
}
