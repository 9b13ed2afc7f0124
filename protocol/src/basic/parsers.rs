//! The pure parsers behind the receivers: [`LineSplitter`], [`NetstringParser`] and
//! [`IntPrefixParser`], each a [`Framing`] that knows its format and its limit and
//! nothing of connections.

use std::fmt;
use std::marker::PhantomData;

use super::framing::{sealed::Sealed, Framing, Parsed};
use super::int_prefixed::{IntStringError, LengthPrefix};
use super::line::{EmptyDelimiter, LineError};
use super::netstring::NetstringError;

// ===== LineSplitter =====

/// Splits a stream into lines ending in a delimiter, refusing a line longer than a
/// maximum (the parsing half of Twisted's `LineReceiver`).
///
/// A line is refused as soon as it cannot fit: when its delimiter shows it longer
/// than the maximum, or when `max_length + delimiter length` bytes have come without
/// a delimiter (a line of exactly `max_length` may still be followed by all but the
/// last byte of its delimiter). So a reader never holds more than that.
///
/// # Examples
///
/// ```
/// use protocol::basic::{Framing, LineError, LineSplitter, Parsed};
///
/// let splitter = LineSplitter::new(b"\n", 5).unwrap();
/// assert_eq!(
///     splitter.parse(b"hi\nthere", 0),
///     Ok(Parsed::Frame { payload: 0..2, consumed: 3 })
/// );
/// assert_eq!(splitter.parse(b"the", 0), Ok(Parsed::Incomplete { searched: 3 }));
/// assert_eq!(
///     splitter.parse(b"toolong\n", 0),
///     Err(LineError::TooLong { length: 7, max: 5 })
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LineSplitter {
    delimiter: Vec<u8>,
    max_length: usize,
}

impl fmt::Debug for LineSplitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineSplitter")
            .field("delimiter", &String::from_utf8_lossy(&self.delimiter))
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl LineSplitter {
    /// Lines ending in `delimiter`, of at most `max_length` bytes without it.
    ///
    /// # Errors
    ///
    /// [`EmptyDelimiter`] if `delimiter` is empty (it would find a line at every byte).
    pub fn new(delimiter: &[u8], max_length: usize) -> Result<Self, EmptyDelimiter> {
        if delimiter.is_empty() {
            return Err(EmptyDelimiter);
        }
        Ok(LineSplitter::with_checked_delimiter(delimiter, max_length))
    }

    /// Lines ending in `delimiter`, which the caller has checked is not empty.
    pub(super) fn with_checked_delimiter(delimiter: &[u8], max_length: usize) -> Self {
        debug_assert!(!delimiter.is_empty(), "an empty delimiter");
        LineSplitter {
            delimiter: delimiter.to_vec(),
            max_length,
        }
    }

    /// The delimiter lines end with.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// Changes the delimiter.
    ///
    /// # Errors
    ///
    /// [`EmptyDelimiter`] if `delimiter` is empty; the delimiter in force is kept.
    pub fn set_delimiter(&mut self, delimiter: &[u8]) -> Result<(), EmptyDelimiter> {
        if delimiter.is_empty() {
            return Err(EmptyDelimiter);
        }
        self.delimiter = delimiter.to_vec();
        Ok(())
    }

    /// The longest line accepted, delimiter excluded.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Changes the longest line accepted.
    pub fn set_max_length(&mut self, max_length: usize) {
        self.max_length = max_length;
    }
}

impl Sealed for LineSplitter {}

impl Framing for LineSplitter {
    type Error = LineError;

    fn parse(&self, bytes: &[u8], searched: usize) -> Result<Parsed, LineError> {
        let (delimiter, max) = (self.delimiter.as_slice(), self.max_length);
        debug_assert!(!delimiter.is_empty(), "checked when set");
        let from = searched.min(bytes.len());
        match find(&bytes[from..], delimiter) {
            Some(at) if from + at <= max => Ok(Parsed::Frame {
                payload: 0..from + at,
                consumed: from + at + delimiter.len(),
            }),
            Some(at) => Err(LineError::TooLong {
                length: from + at,
                max,
            }),
            None if bytes.len() >= max.saturating_add(delimiter.len()) => Err(LineError::TooLong {
                length: bytes.len(),
                max,
            }),
            // The last bytes may be the start of a delimiter: look at them again.
            None => Ok(Parsed::Incomplete {
                searched: bytes.len().saturating_sub(delimiter.len() - 1),
            }),
        }
    }
}

/// Where `needle` (not empty) first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, tail) = needle.split_first()?;
    let mut start = 0;
    while let Some(at) = haystack[start..].iter().position(|b| b == first) {
        let at = start + at;
        if haystack[at + 1..].starts_with(tail) {
            return Some(at);
        }
        if haystack.len() - at < needle.len() {
            return None;
        }
        start = at + 1;
    }
    None
}

// ===== NetstringParser =====

/// Parses netstrings, `<length>:<payload>,`, refusing a length above a maximum (the
/// parsing half of Twisted's `NetstringReceiver`).
///
/// Malformed input is refused at the byte that shows it: a length that is not a
/// decimal number (or has a leading zero), a length above the maximum (as soon as its
/// digits exceed it), a payload not followed by `,`.
///
/// # Examples
///
/// ```
/// use protocol::basic::{Framing, NetstringError, NetstringParser, Parsed};
///
/// let parser = NetstringParser::new(10);
/// assert_eq!(
///     parser.parse(b"5:hello,", 0),
///     Ok(Parsed::Frame { payload: 2..7, consumed: 8 })
/// );
/// assert_eq!(parser.parse(b"5:hel", 0), Ok(Parsed::Incomplete { searched: 0 }));
/// assert_eq!(parser.parse(b"11", 0), Err(NetstringError::TooLong { max: 10 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetstringParser {
    max_length: usize,
}

impl NetstringParser {
    /// Netstrings of at most `max_length` payload bytes.
    pub fn new(max_length: usize) -> Self {
        NetstringParser { max_length }
    }

    /// The longest payload accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Changes the longest payload accepted.
    pub fn set_max_length(&mut self, max_length: usize) {
        self.max_length = max_length;
    }
}

impl Sealed for NetstringParser {}

impl Framing for NetstringParser {
    type Error = NetstringError;

    fn parse(&self, bytes: &[u8], _searched: usize) -> Result<Parsed, NetstringError> {
        let max = self.max_length;
        let mut length = 0usize;
        for (i, &byte) in bytes.iter().enumerate() {
            match byte {
                // "0:" is a length; "01:" is not.
                b'0'..=b'9' if i == 0 || length != 0 => {
                    length = length
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(usize::from(byte - b'0')))
                        .filter(|v| *v <= max)
                        .ok_or(NetstringError::TooLong { max })?;
                }
                b':' if i > 0 => return payload(&bytes[i + 1..], i + 1, length),
                found => return Err(NetstringError::MalformedLength { found }),
            }
        }
        Ok(Parsed::Incomplete { searched: 0 })
    }
}

/// The payload of `length` bytes and its comma, at the start of `bytes`, which come
/// `start` bytes into the netstring.
fn payload(bytes: &[u8], start: usize, length: usize) -> Result<Parsed, NetstringError> {
    match bytes.get(length) {
        None => Ok(Parsed::Incomplete { searched: 0 }),
        Some(b',') => Ok(Parsed::Frame {
            payload: start..start + length,
            consumed: start + length + 1,
        }),
        Some(&found) => Err(NetstringError::MissingComma { found }),
    }
}

// ===== IntPrefixParser =====

/// Parses strings behind a big-endian length prefix of type `P` (`u8`, `u16` or
/// `u32`), refusing a length above a maximum as soon as the prefix is in, before any
/// of the string (the parsing half of Twisted's `IntNStringReceiver`).
///
/// # Examples
///
/// ```
/// use protocol::basic::{Framing, IntPrefixParser, IntStringError, Parsed};
///
/// let parser = IntPrefixParser::<u16>::new(4);
/// assert_eq!(
///     parser.parse(b"\x00\x02hi", 0),
///     Ok(Parsed::Frame { payload: 2..4, consumed: 4 })
/// );
/// assert_eq!(parser.parse(b"\x00", 0), Ok(Parsed::Incomplete { searched: 0 }));
/// assert_eq!(
///     parser.parse(b"\x01\x00", 0),
///     Err(IntStringError::LengthLimitExceeded { length: 256, max: 4 })
/// );
/// ```
pub struct IntPrefixParser<P> {
    max_length: usize,
    prefix: PhantomData<fn() -> P>,
}

impl<P: LengthPrefix> fmt::Debug for IntPrefixParser<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntPrefixParser")
            .field("width", &P::WIDTH)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl<P: LengthPrefix> IntPrefixParser<P> {
    /// Strings of at most `max_length` bytes.
    pub fn new(max_length: usize) -> Self {
        IntPrefixParser {
            max_length,
            prefix: PhantomData,
        }
    }

    /// The longest string accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Changes the longest string accepted.
    pub fn set_max_length(&mut self, max_length: usize) {
        self.max_length = max_length;
    }
}

impl<P: LengthPrefix> Sealed for IntPrefixParser<P> {}

impl<P: LengthPrefix> Framing for IntPrefixParser<P> {
    type Error = IntStringError;

    fn parse(&self, bytes: &[u8], _searched: usize) -> Result<Parsed, IntStringError> {
        let Some((prefix, string)) = bytes.split_at_checked(P::WIDTH) else {
            return Ok(Parsed::Incomplete { searched: 0 });
        };
        let length = P::decode(prefix);
        if length > self.max_length {
            return Err(IntStringError::LengthLimitExceeded {
                length,
                max: self.max_length,
            });
        }
        if string.len() < length {
            return Ok(Parsed::Incomplete { searched: 0 });
        }
        Ok(Parsed::Frame {
            payload: P::WIDTH..P::WIDTH + length,
            consumed: P::WIDTH + length,
        })
    }
}
