//! [`NetstringReceiver`]: `<length>:<bytes>,` framing (Twisted's
//! `basic.NetstringReceiver`; the format is D. J. Bernstein's netstrings).

use std::error::Error;
use std::fmt;

use log::debug;

use super::framing::FrameReader;
use super::parsers::NetstringParser;
use crate::protocol::Context;

/// The longest string a [`NetstringReceiver`] or an
/// [`IntNStringReceiver`](super::IntNStringReceiver) accepts by default (Twisted's
/// `MAX_LENGTH`).
pub const DEFAULT_MAX_STRING_LENGTH: usize = 99_999;

/// A protocol that speaks in netstrings: what one writes to be wrapped in a
/// [`NetstringReceiver`] (Twisted's `NetstringReceiver` subclass).
///
/// # The contract
///
/// * `string_received` gets each string's payload, in order, however the stream was
///   cut.
/// * Malformed input ends the stream: a length that is not a decimal number (or has a
///   leading zero), a length above [`MAX_LENGTH`](Self::MAX_LENGTH), or a payload not
///   followed by a comma. The receiver then stops parsing for good, records a
///   [`NetstringError`] (read it with [`NetstringContext::error`], for instance in
///   `connection_lost`) and closes the connection gracefully: strings delivered
///   before are not affected, and what the protocol wrote in answer to them is still
///   sent.
/// * No memory is set aside for a string before its length has been checked against
///   the maximum; the payload buffer grows only with bytes actually received.
/// * Once the protocol closes the connection, no more strings are delivered.
///
/// # Examples
///
/// ```
/// use protocol::basic::{NetstringContext, NetstringProtocol, NetstringReceiver};
/// use protocol::testing::ProtocolTest;
/// use protocol::{for_protocol, SimpleFactory};
///
/// /// Answers each string with it reversed.
/// #[derive(Default)]
/// struct Reverse;
///
/// impl NetstringProtocol for Reverse {
///     type Factory = SimpleFactory<NetstringReceiver<Self>>;
///
///     fn string_received(&mut self, cx: &mut NetstringContext<'_, '_, Self>, string: &[u8]) {
///         let reversed: Vec<u8> = string.iter().rev().copied().collect();
///         cx.send_string(&reversed);
///     }
/// }
///
/// let mut test = ProtocolTest::new(NetstringReceiver::new(Reverse), for_protocol());
/// test.feed(b"5:hello,0:,");
/// assert_eq!(test.take_written(), b"5:olleh,0:,");
/// test.feed(b"3:abcd,");
/// assert!(test.is_lost());
/// ```
pub trait NetstringProtocol: Sized + 'static {
    /// The factory that builds the [`NetstringReceiver`] around this protocol.
    type Factory: 'static;

    /// The longest string accepted; change it at run time with
    /// [`NetstringContext::set_max_length`] (Twisted's `MAX_LENGTH`).
    const MAX_LENGTH: usize = DEFAULT_MAX_STRING_LENGTH;

    /// A string arrived, framing removed (Twisted's `stringReceived`).
    #[doc(alias = "stringReceived")]
    fn string_received(&mut self, cx: &mut NetstringContext<'_, '_, Self>, string: &[u8]);

    forwarded_callbacks!(
        NetstringContext<'_, '_, Self>,
        lost: "[`NetstringContext::error`] tells whether the peer sent malformed input.",
        eof: ""
    );
}

/// What was wrong with the netstrings a peer sent (Twisted's `NetstringParseError`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetstringError {
    /// The length is not a decimal number followed by `:` (a non-digit came first,
    /// or a leading zero).
    MalformedLength {
        /// The byte that did not fit.
        found: u8,
    },
    /// The length is larger than the maximum.
    TooLong {
        /// The maximum in force.
        max: usize,
    },
    /// The payload is not followed by `,`.
    MissingComma {
        /// The byte found instead.
        found: u8,
    },
}

impl fmt::Display for NetstringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetstringError::MalformedLength { found } => write!(
                f,
                "malformed netstring length: unexpected byte {:?}",
                char::from(*found)
            ),
            NetstringError::TooLong { max } => {
                write!(f, "netstring is longer than the maximum of {max} bytes")
            }
            NetstringError::MissingComma { found } => write!(
                f,
                "netstring is not terminated by a comma: found {:?}",
                char::from(*found)
            ),
        }
    }
}

impl Error for NetstringError {}

#[derive(Debug)]
struct NetstringState {
    /// The parser and the bytes of an unfinished netstring.
    reader: FrameReader<NetstringParser>,
    /// Set when the peer sent malformed input: nothing more is parsed.
    error: Option<NetstringError>,
}

/// Wraps a [`NetstringProtocol`] into a [`Protocol`](crate::Protocol) (Twisted's `NetstringReceiver`),
/// with a [`NetstringParser`].
///
/// A string that arrives whole in one read is delivered straight from it; only a
/// string split across reads is copied aside.
pub struct NetstringReceiver<S: NetstringProtocol> {
    protocol: S,
    state: NetstringState,
}

framing_receiver!(
    NetstringReceiver<S> where [S: NetstringProtocol],
    inner: S,
    context: NetstringContext {},
);

impl<S: NetstringProtocol> NetstringReceiver<S> {
    /// Wraps `protocol`, with its `MAX_LENGTH`.
    pub fn new(protocol: S) -> Self {
        NetstringReceiver {
            protocol,
            state: NetstringState {
                reader: FrameReader::new(NetstringParser::new(S::MAX_LENGTH)),
                error: None,
            },
        }
    }

    /// What was wrong with the peer's input, if anything (Twisted's `brokenPeer`).
    pub fn error(&self) -> Option<&NetstringError> {
        self.state.error.as_ref()
    }

    /// Delivers each complete string of the buffer and `data` until the connection
    /// closes; keeps an unfinished one. Malformed input ends it all.
    fn deliver(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        if self.state.error.is_some() {
            return;
        }
        let mut pending = self.state.reader.begin(data);
        let mut broken = None;
        while cx.is_open() {
            match self.state.reader.next(&mut pending) {
                Ok(Some(string)) => {
                    let string = &pending.bytes()[string];
                    self.call(cx, |p, cx| p.string_received(cx, string));
                }
                Ok(None) => break,
                Err(error) => {
                    broken = Some(error);
                    break;
                }
            }
        }
        self.state.reader.end(pending);
        if let Some(error) = broken {
            self.fail(cx, error);
        }
    }

    /// The peer broke the format: stop parsing, remember why, close.
    fn fail(&mut self, cx: &mut Context<'_, Self>, error: NetstringError) {
        debug!("{}: {error}; closing", cx.get_peer());
        self.state.reader.release();
        self.state.error = Some(error);
        cx.lose_connection();
    }
}

/// What a [`NetstringProtocol`] callback can reach: the protocol [`Context`] (by
/// dereference) and the receiver's controls.
pub struct NetstringContext<'a, 'b, S: NetstringProtocol> {
    cx: &'a mut Context<'b, NetstringReceiver<S>>,
    state: &'a mut NetstringState,
}

impl<'b, S: NetstringProtocol> NetstringContext<'_, 'b, S> {
    /// Writes `string` as a netstring, in one write (Twisted's `sendString`).
    #[doc(alias = "sendString")]
    pub fn send_string(&mut self, string: &[u8]) {
        let length = string.len().to_string();
        self.cx
            .write_sequence(&[length.as_bytes(), b":", string, b","]);
    }

    /// The longest string accepted.
    pub fn max_length(&self) -> usize {
        self.state.reader.framing().max_length()
    }

    /// Changes the longest string accepted, for the string being received too.
    pub fn set_max_length(&mut self, max: usize) {
        self.state.reader.framing_mut().set_max_length(max);
    }

    /// What was wrong with the peer's input, if anything.
    pub fn error(&self) -> Option<&NetstringError> {
        self.state.error.as_ref()
    }
}
