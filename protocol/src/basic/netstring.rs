//! [`NetstringReceiver`]: `<length>:<bytes>,` framing (Twisted's
//! `basic.NetstringReceiver`; the format is D. J. Bernstein's netstrings).

use std::error::Error;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use log::debug;
use reactor::DelayedCall;
use transport::{DisconnectReason, EofAction};

use crate::protocol::{Context, Protocol};

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

    /// As [`Protocol::connection_made`].
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::connection_lost`]; [`NetstringContext::error`] tells whether
    /// the peer sent malformed input.
    #[doc(alias = "connectionLost")]
    fn connection_lost(
        &mut self,
        cx: &mut NetstringContext<'_, '_, Self>,
        reason: &DisconnectReason,
    ) {
        let _ = (cx, reason);
    }

    /// As [`Protocol::read_connection_lost`].
    #[doc(alias = "readConnectionLost")]
    fn read_connection_lost(&mut self, cx: &mut NetstringContext<'_, '_, Self>) -> EofAction {
        let _ = cx;
        EofAction::Close
    }

    /// As [`Protocol::write_connection_lost`].
    #[doc(alias = "writeConnectionLost")]
    fn write_connection_lost(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::pause_producing`].
    #[doc(alias = "pauseProducing")]
    fn pause_producing(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::resume_producing`].
    #[doc(alias = "resumeProducing")]
    fn resume_producing(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::timeout_connection`]; the default aborts with
    /// [`DisconnectReason::TimedOut`].
    #[doc(alias = "timeoutConnection")]
    fn timeout_connection(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        cx.abort_with_reason(DisconnectReason::TimedOut);
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// Reading the length: its value and how many digits so far.
    Length { value: usize, digits: usize },
    /// Reading a payload of `length` bytes (the bytes so far are in `payload`).
    Payload { length: usize },
    /// The payload is complete; expecting the comma.
    Comma,
    /// The peer sent malformed input: nothing more is parsed.
    Broken,
}

const START: Parse = Parse::Length {
    value: 0,
    digits: 0,
};

#[derive(Debug)]
struct NetstringState {
    parse: Parse,
    /// The payload being received, when it spans reads.
    payload: Vec<u8>,
    max_length: usize,
    error: Option<NetstringError>,
}

/// Wraps a [`NetstringProtocol`] into a [`Protocol`] (Twisted's `NetstringReceiver`).
///
/// A string that arrives whole in one read is delivered straight from it; only a
/// string split across reads is copied aside.
pub struct NetstringReceiver<S: NetstringProtocol> {
    protocol: S,
    state: NetstringState,
}

impl<S: NetstringProtocol + fmt::Debug> fmt::Debug for NetstringReceiver<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetstringReceiver")
            .field("protocol", &self.protocol)
            .field("state", &self.state)
            .finish()
    }
}

impl<S: NetstringProtocol + Default> Default for NetstringReceiver<S> {
    fn default() -> Self {
        NetstringReceiver::new(S::default())
    }
}

impl<S: NetstringProtocol> NetstringReceiver<S> {
    /// Wraps `protocol`, with its `MAX_LENGTH`.
    pub fn new(protocol: S) -> Self {
        NetstringReceiver {
            protocol,
            state: NetstringState {
                parse: START,
                payload: Vec::new(),
                max_length: S::MAX_LENGTH,
                error: None,
            },
        }
    }

    /// The wrapped protocol.
    pub fn protocol(&self) -> &S {
        &self.protocol
    }

    /// The wrapped protocol, to change.
    pub fn protocol_mut(&mut self) -> &mut S {
        &mut self.protocol
    }

    /// What was wrong with the peer's input, if anything (Twisted's `brokenPeer`).
    pub fn error(&self) -> Option<&NetstringError> {
        self.state.error.as_ref()
    }

    /// Calls `f` with the protocol and a [`NetstringContext`] over `cx`: how a timer
    /// or a test reaches a netstring protocol.
    pub fn with_context<R>(
        &mut self,
        cx: &mut Context<'_, Self>,
        f: impl FnOnce(&mut S, &mut NetstringContext<'_, '_, S>) -> R,
    ) -> R {
        let mut ncx = NetstringContext {
            cx,
            state: &mut self.state,
        };
        f(&mut self.protocol, &mut ncx)
    }

    /// Parses `data`, delivering each complete string.
    fn parse(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        let mut i = 0;
        while i < data.len() && cx.is_open() {
            match self.state.parse {
                Parse::Broken => return,
                Parse::Length { value, digits } => {
                    let byte = data[i];
                    i += 1;
                    match byte {
                        // "0:" is a length; "01:" is not.
                        b'0'..=b'9' if digits == 0 || value != 0 => {
                            let value = value
                                .checked_mul(10)
                                .and_then(|v| v.checked_add(usize::from(byte - b'0')))
                                .filter(|v| *v <= self.state.max_length);
                            match value {
                                Some(value) => {
                                    self.state.parse = Parse::Length {
                                        value,
                                        digits: digits + 1,
                                    };
                                }
                                None => {
                                    let max = self.state.max_length;
                                    self.fail(cx, NetstringError::TooLong { max });
                                }
                            }
                        }
                        b':' if digits > 0 => {
                            self.state.parse = Parse::Payload { length: value };
                            self.state.payload.clear();
                        }
                        found => self.fail(cx, NetstringError::MalformedLength { found }),
                    }
                }
                Parse::Payload { length } => {
                    let available = data.len() - i;
                    if self.state.payload.is_empty() && available > length {
                        // The whole string and its comma are here: no copy.
                        let string = &data[i..i + length];
                        let comma = data[i + length];
                        i += length + 1;
                        if comma == b',' {
                            self.state.parse = START;
                            self.with_context(cx, |p, cx| p.string_received(cx, string));
                        } else {
                            self.fail(cx, NetstringError::MissingComma { found: comma });
                        }
                    } else {
                        let take = (length - self.state.payload.len()).min(available);
                        self.state.payload.extend_from_slice(&data[i..i + take]);
                        i += take;
                        if self.state.payload.len() == length {
                            self.state.parse = Parse::Comma;
                        }
                    }
                }
                Parse::Comma => {
                    let byte = data[i];
                    i += 1;
                    if byte == b',' {
                        self.state.parse = START;
                        let payload = std::mem::take(&mut self.state.payload);
                        self.with_context(cx, |p, cx| p.string_received(cx, &payload));
                        self.state.payload = payload;
                        self.state.payload.clear();
                    } else {
                        self.fail(cx, NetstringError::MissingComma { found: byte });
                    }
                }
            }
        }
    }

    /// The peer broke the format: stop parsing, remember why, close.
    fn fail(&mut self, cx: &mut Context<'_, Self>, error: NetstringError) {
        debug!("{}: {error}; closing", cx.get_peer());
        self.state.parse = Parse::Broken;
        self.state.payload = Vec::new();
        self.state.error = Some(error);
        cx.lose_connection();
    }
}

// ===== impl IProtocol =====

impl<S: NetstringProtocol> Protocol for NetstringReceiver<S> {
    type Factory = S::Factory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        self.with_context(cx, |p, cx| p.connection_made(cx));
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        self.parse(cx, data);
    }

    fn read_connection_lost(&mut self, cx: &mut Context<'_, Self>) -> EofAction {
        self.with_context(cx, |p, cx| p.read_connection_lost(cx))
    }

    fn write_connection_lost(&mut self, cx: &mut Context<'_, Self>) {
        self.with_context(cx, |p, cx| p.write_connection_lost(cx));
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        self.with_context(cx, |p, cx| p.connection_lost(cx, reason));
        self.state.payload = Vec::new();
    }

    fn pause_producing(&mut self, cx: &mut Context<'_, Self>) {
        self.with_context(cx, |p, cx| p.pause_producing(cx));
    }

    fn resume_producing(&mut self, cx: &mut Context<'_, Self>) {
        self.with_context(cx, |p, cx| p.resume_producing(cx));
    }

    fn timeout_connection(&mut self, cx: &mut Context<'_, Self>) {
        self.with_context(cx, |p, cx| p.timeout_connection(cx));
    }
}

/// What a [`NetstringProtocol`] callback can reach: the protocol [`Context`] (by
/// dereference) and the receiver's controls.
pub struct NetstringContext<'a, 'b, S: NetstringProtocol> {
    cx: &'a mut Context<'b, NetstringReceiver<S>>,
    state: &'a mut NetstringState,
}

impl<S: NetstringProtocol> fmt::Debug for NetstringContext<'_, '_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetstringContext")
            .field("cx", &self.cx)
            .finish_non_exhaustive()
    }
}

impl<'b, S: NetstringProtocol> Deref for NetstringContext<'_, 'b, S> {
    type Target = Context<'b, NetstringReceiver<S>>;

    fn deref(&self) -> &Self::Target {
        self.cx
    }
}

impl<S: NetstringProtocol> DerefMut for NetstringContext<'_, '_, S> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.cx
    }
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
        self.state.max_length
    }

    /// Changes the longest string accepted, from the next length read on.
    pub fn set_max_length(&mut self, max: usize) {
        self.state.max_length = max;
    }

    /// What was wrong with the peer's input, if anything.
    pub fn error(&self) -> Option<&NetstringError> {
        self.state.error.as_ref()
    }

    /// Calls `f` with this protocol and a fresh context after `delay`, if the
    /// connection is still open.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut S, &mut NetstringContext<'_, '_, S>) + 'static,
    ) -> DelayedCall {
        self.cx
            .call_later(delay, move |receiver, cx| receiver.with_context(cx, f))
    }
}
