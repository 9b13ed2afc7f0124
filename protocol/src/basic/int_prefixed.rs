//! [`IntNStringReceiver`]: strings behind a big-endian length prefix of 1, 2 or 4
//! bytes (Twisted's `basic.IntNStringReceiver`, `Int8StringReceiver`,
//! `Int16StringReceiver`, `Int32StringReceiver`).

use std::error::Error;
use std::fmt;

use super::framing::FrameReader;
use super::netstring::DEFAULT_MAX_STRING_LENGTH;
use super::parsers::IntPrefixParser;
use crate::protocol::Context;

/// The prefix's encoding, private to this module's receiver and parser: nothing
/// outside can call it with a slice of the wrong length.
pub(super) mod sealed {
    pub trait Sealed {
        /// Reads a prefix of `WIDTH` bytes (the callers slice exactly that many).
        fn decode(bytes: &[u8]) -> usize;

        /// Writes `length` (at most `MAX`, checked by the caller) into `out`, `WIDTH`
        /// bytes long.
        fn encode(length: usize, out: &mut [u8]);
    }
}

/// The integer type of a length prefix: `u8`, `u16` or `u32`, sent big-endian
/// (Twisted's `structFormat` `"!B"`, `"!H"`, `"!I"`).
pub trait LengthPrefix: sealed::Sealed + Copy + fmt::Debug + 'static {
    /// Bytes in the prefix (Twisted's `prefixLength`).
    const WIDTH: usize;
    /// The longest string the prefix can announce.
    const MAX: usize;
}

macro_rules! length_prefix {
    ($int:ty) => {
        impl LengthPrefix for $int {
            const WIDTH: usize = std::mem::size_of::<$int>();
            const MAX: usize = <$int>::MAX as usize;
        }

        impl sealed::Sealed for $int {
            fn decode(bytes: &[u8]) -> usize {
                debug_assert_eq!(
                    bytes.len(),
                    <Self as LengthPrefix>::WIDTH,
                    "a prefix of WIDTH bytes"
                );
                bytes.iter().fold(0, |n, b| n << 8 | usize::from(*b))
            }

            fn encode(length: usize, out: &mut [u8]) {
                debug_assert!(
                    length <= <Self as LengthPrefix>::MAX,
                    "a length of at most MAX"
                );
                debug_assert_eq!(
                    out.len(),
                    <Self as LengthPrefix>::WIDTH,
                    "a prefix of WIDTH bytes"
                );
                for (i, byte) in out.iter_mut().rev().enumerate() {
                    *byte = (length >> (8 * i)) as u8;
                }
            }
        }
    };
}

length_prefix!(u8);
length_prefix!(u16);
length_prefix!(u32);

/// Strings behind a 4-byte length (Twisted's `Int32StringReceiver`).
pub type Int32StringReceiver<S> = IntNStringReceiver<u32, S>;
/// Strings behind a 2-byte length (Twisted's `Int16StringReceiver`).
pub type Int16StringReceiver<S> = IntNStringReceiver<u16, S>;
/// Strings behind a 1-byte length (Twisted's `Int8StringReceiver`).
pub type Int8StringReceiver<S> = IntNStringReceiver<u8, S>;

/// A protocol that speaks in length-prefixed strings, for prefix type `P`: what one
/// writes to be wrapped in an [`IntNStringReceiver`] (Twisted's `Int32StringReceiver`
/// subclass and its siblings).
///
/// Implement it for one prefix (`impl IntStringProtocol<u32> for ..`) or for all of
/// them at once (`impl<P: LengthPrefix> IntStringProtocol<P> for ..`).
///
/// # The contract
///
/// * `string_received` gets each string, in order, however the stream was cut.
/// * A prefix announcing more than [`MAX_LENGTH`](Self::MAX_LENGTH) calls
///   [`length_limit_exceeded`](Self::length_limit_exceeded) as soon as the prefix has
///   arrived, before any of the string is buffered; the receiver records an
///   [`IntStringError::LengthLimitExceeded`] and parses nothing more (the stream
///   cannot be resynchronised).
/// * Once the protocol closes the connection or pauses
///   ([`IntStringContext::pause_receiving`]), no more strings are delivered from what
///   is buffered.
///
/// # Examples
///
/// ```
/// use protocol::basic::{Int16StringReceiver, IntStringContext, IntStringProtocol, LengthPrefix};
/// use protocol::testing::ProtocolTest;
/// use protocol::{for_protocol, SimpleFactory};
///
/// /// Echoes each string, over any prefix width.
/// #[derive(Default)]
/// struct Echo;
///
/// impl<P: LengthPrefix> IntStringProtocol<P> for Echo {
///     type Factory = SimpleFactory<protocol::basic::IntNStringReceiver<P, Self>>;
///
///     fn string_received(&mut self, cx: &mut IntStringContext<'_, '_, P, Self>, string: &[u8]) {
///         cx.send_string(string).expect("what fits in came in");
///     }
/// }
///
/// let mut test = ProtocolTest::new(Int16StringReceiver::new(Echo), for_protocol());
/// test.feed(b"\x00\x02hi\x00\x00");
/// assert_eq!(test.take_written(), b"\x00\x02hi\x00\x00");
/// ```
pub trait IntStringProtocol<P: LengthPrefix>: Sized + 'static {
    /// The factory that builds the [`IntNStringReceiver`] around this protocol.
    type Factory: 'static;

    /// The longest string accepted; change it at run time with
    /// [`IntStringContext::set_max_length`] (Twisted's `MAX_LENGTH`).
    const MAX_LENGTH: usize = DEFAULT_MAX_STRING_LENGTH;

    /// A string arrived, prefix removed (Twisted's `stringReceived`).
    #[doc(alias = "stringReceived")]
    fn string_received(&mut self, cx: &mut IntStringContext<'_, '_, P, Self>, string: &[u8]);

    /// A prefix announced `length` bytes, more than the maximum (Twisted's
    /// `lengthLimitExceeded`). The default closes the connection.
    #[doc(alias = "lengthLimitExceeded")]
    fn length_limit_exceeded(&mut self, cx: &mut IntStringContext<'_, '_, P, Self>, length: usize) {
        let _ = length;
        cx.lose_connection();
    }

    forwarded_callbacks!(
        IntStringContext<'_, '_, P, Self>,
        lost: "[`IntStringContext::error`] tells whether the peer broke the length limit.",
        eof: ""
    );
}

/// What went wrong with a length-prefixed string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntStringError {
    /// [`IntStringContext::send_string`] was given a string the prefix cannot
    /// announce (Twisted's `StringTooLongError`); nothing was sent.
    TooLongToSend {
        /// The string's length.
        length: usize,
        /// The longest the prefix can announce.
        max: usize,
    },
    /// The peer announced a string longer than the maximum accepted.
    LengthLimitExceeded {
        /// The length announced.
        length: usize,
        /// The maximum in force.
        max: usize,
    },
}

impl fmt::Display for IntStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntStringError::TooLongToSend { length, max } => write!(
                f,
                "string of {length} bytes is too long for its length prefix (at most {max})"
            ),
            IntStringError::LengthLimitExceeded { length, max } => write!(
                f,
                "peer announced a string of {length} bytes, more than the maximum of {max}"
            ),
        }
    }
}

impl Error for IntStringError {}

#[derive(Debug)]
struct IntState<P: LengthPrefix> {
    /// The parser and the bytes of an unfinished prefix and string.
    reader: FrameReader<IntPrefixParser<P>>,
    paused: bool,
    /// Set when the peer broke the length limit: nothing more is parsed.
    error: Option<IntStringError>,
}

/// Wraps an [`IntStringProtocol`] into a [`Protocol`](crate::Protocol): one implementation for every
/// prefix width (Twisted's `IntNStringReceiver`), with an [`IntPrefixParser`]; see
/// the aliases [`Int32StringReceiver`], [`Int16StringReceiver`] and
/// [`Int8StringReceiver`].
///
/// A string that arrives whole in one read is delivered straight from it; only a
/// string split across reads is copied aside.
pub struct IntNStringReceiver<P: LengthPrefix, S: IntStringProtocol<P>> {
    protocol: S,
    state: IntState<P>,
}

framing_receiver!(
    IntNStringReceiver<P, S> where [P: LengthPrefix, S: IntStringProtocol<P>],
    inner: S,
    context: IntStringContext {},
);

impl<P: LengthPrefix, S: IntStringProtocol<P>> IntNStringReceiver<P, S> {
    /// Wraps `protocol`, with its `MAX_LENGTH`.
    pub fn new(protocol: S) -> Self {
        IntNStringReceiver {
            protocol,
            state: IntState {
                reader: FrameReader::new(IntPrefixParser::new(S::MAX_LENGTH)),
                paused: false,
                error: None,
            },
        }
    }

    /// What went wrong with the peer's input, if anything.
    pub fn error(&self) -> Option<&IntStringError> {
        self.state.error.as_ref()
    }

    /// Bytes received and not yet delivered.
    pub fn buffered(&self) -> usize {
        self.state.reader.buffered().len()
    }

    /// Delivers every complete string in the buffer and `data` until the receiver
    /// pauses or the connection closes; keeps the rest. A length over the limit ends
    /// it all.
    fn deliver(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        if self.state.error.is_some() {
            return;
        }
        let mut pending = self.state.reader.begin(data);
        while !self.state.paused && cx.is_open() {
            match self.state.reader.next(&mut pending) {
                Ok(Some(string)) => {
                    let string = &pending.bytes()[string];
                    self.call(cx, |p, cx| p.string_received(cx, string));
                }
                Ok(None) => break,
                Err(error) => {
                    pending.take_rest();
                    self.refuse(cx, error);
                    break;
                }
            }
        }
        self.state.reader.end(pending);
    }

    /// The peer announced a string over the limit: parse nothing more, remember why,
    /// tell the protocol.
    fn refuse(&mut self, cx: &mut Context<'_, Self>, error: IntStringError) {
        let length = match error {
            IntStringError::LengthLimitExceeded { length, .. }
            | IntStringError::TooLongToSend { length, .. } => length,
        };
        self.state.error = Some(error);
        self.call(cx, |p, cx| p.length_limit_exceeded(cx, length));
    }
}

/// What an [`IntStringProtocol`] callback can reach: the protocol [`Context`] (by
/// dereference) and the receiver's controls.
pub struct IntStringContext<'a, 'b, P: LengthPrefix, S: IntStringProtocol<P>> {
    cx: &'a mut Context<'b, IntNStringReceiver<P, S>>,
    state: &'a mut IntState<P>,
}

impl<'b, P: LengthPrefix, S: IntStringProtocol<P>> IntStringContext<'_, 'b, P, S> {
    /// Writes `string` behind its length prefix, in one write (Twisted's
    /// `sendString`).
    ///
    /// # Errors
    ///
    /// [`IntStringError::TooLongToSend`] if the prefix cannot announce the string's
    /// length (over 255 bytes for `u8`, 65535 for `u16`); nothing is written.
    #[doc(alias = "sendString")]
    pub fn send_string(&mut self, string: &[u8]) -> Result<(), IntStringError> {
        if string.len() > P::MAX {
            return Err(IntStringError::TooLongToSend {
                length: string.len(),
                max: P::MAX,
            });
        }
        let mut prefix = [0u8; 4];
        let prefix = &mut prefix[..P::WIDTH];
        P::encode(string.len(), prefix);
        self.cx.write_sequence(&[prefix, string]);
        Ok(())
    }

    /// The longest string accepted.
    pub fn max_length(&self) -> usize {
        self.state.reader.framing().max_length()
    }

    /// Changes the longest string accepted, from the next prefix read on.
    pub fn set_max_length(&mut self, max: usize) {
        self.state.reader.framing_mut().set_max_length(max);
    }

    receiving_controls!("strings");

    /// What went wrong with the peer's input, if anything.
    pub fn error(&self) -> Option<&IntStringError> {
        self.state.error.as_ref()
    }
}
