//! [`LineReceiver`]: lines, and raw data when asked (Twisted's
//! `basic.LineReceiver`).

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use reactor::DelayedCall;
use transport::{DisconnectReason, EofAction};

use crate::protocol::{Context, Protocol};

/// The delimiter a [`LineReceiver`] starts with (Twisted's `delimiter`).
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";
/// The longest line a [`LineReceiver`] accepts by default (Twisted's `MAX_LENGTH`).
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16384;

/// Above this capacity, an emptied buffer is given back rather than kept, so an idle
/// connection holds no large buffer.
const KEEP_CAPACITY: usize = 4096;

/// A line-oriented protocol: what one writes to be wrapped in a [`LineReceiver`]
/// (Twisted's `LineReceiver` subclass: `lineReceived`, `rawDataReceived`,
/// `lineLengthExceeded`).
///
/// Every callback gets a [`LineContext`]: the protocol [`Context`] (by dereference:
/// `cx.write(..)`, `cx.factory()`, `cx.lose_connection()`) plus the line controls
/// (`send_line`, `set_raw_mode`, `set_line_mode`, `set_delimiter`, ...).
///
/// # The contract
///
/// * As [`Protocol`]: `connection_made` first, then lines (or raw data), then
///   `connection_lost` exactly once.
/// * `line_received` gets each line without its delimiter, in order, however the
///   stream was cut; many lines in one read make many calls.
/// * After the protocol closes the connection (or pauses, see
///   [`LineContext::pause_receiving`]), no more lines are delivered from what is
///   buffered.
/// * A line longer than [`max_length`](LineContext::set_max_length) is never
///   delivered: [`line_length_exceeded`](Self::line_length_exceeded) gets it (and
///   whatever followed it), and the buffer is emptied. An unfinished line is refused
///   as soon as it cannot fit any more, so the buffer never grows beyond the limit
///   plus one read.
///
/// # Examples
///
/// A protocol that answers each line with its length, and closes on `quit`:
///
/// ```
/// use protocol::basic::{LineContext, LineProtocol, LineReceiver};
/// use protocol::testing::ProtocolTest;
/// use protocol::{for_protocol, SimpleFactory};
///
/// #[derive(Default)]
/// struct Measure;
///
/// impl LineProtocol for Measure {
///     type Factory = SimpleFactory<LineReceiver<Self>>;
///
///     fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
///         if line == b"quit" {
///             cx.lose_connection();
///         } else {
///             cx.send_line(line.len().to_string().as_bytes());
///         }
///     }
/// }
///
/// let mut test = ProtocolTest::new(LineReceiver::new(Measure), for_protocol());
/// test.feed(b"hello\r\nhi\r\nquit\r\nignored\r\n");
/// assert_eq!(test.take_written(), b"5\r\n2\r\n");
/// assert!(test.is_lost());
/// ```
pub trait LineProtocol: Sized + 'static {
    /// The factory that builds the [`LineReceiver`] around this protocol.
    type Factory: 'static;

    /// The delimiter the receiver starts with; change it at run time with
    /// [`LineContext::set_delimiter`] (Twisted's `delimiter`).
    const DELIMITER: &'static [u8] = DEFAULT_DELIMITER;

    /// The longest line accepted, delimiter excluded; change it at run time with
    /// [`LineContext::set_max_length`] (Twisted's `MAX_LENGTH`).
    const MAX_LENGTH: usize = DEFAULT_MAX_LINE_LENGTH;

    /// A line arrived, without its delimiter (Twisted's `lineReceived`).
    #[doc(alias = "lineReceived")]
    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]);

    /// Bytes arrived in raw mode (Twisted's `rawDataReceived`): everything buffered
    /// after the line that switched to raw mode, then each read as it comes. Call
    /// [`LineContext::set_line_mode`] with the bytes not consumed to go back to lines.
    ///
    /// # Panics
    ///
    /// The provided method panics (closing the connection with
    /// [`DisconnectReason::Panicked`]), as Twisted's raises `NotImplementedError`: a
    /// protocol that uses raw mode must implement it.
    #[doc(alias = "rawDataReceived")]
    fn raw_data_received(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        let _ = (cx, data);
        panic!("raw mode was set but raw_data_received is not implemented");
    }

    /// A line longer than the maximum arrived, or an unfinished one grew past it
    /// (Twisted's `lineLengthExceeded`). `data` holds the offending line and
    /// everything buffered after it; the buffer is already empty, so
    /// [`LineContext::set_line_mode`] can feed part of it back. [`LineContext::error`]
    /// tells the length. The default closes the connection.
    #[doc(alias = "lineLengthExceeded")]
    fn line_length_exceeded(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        let _ = data;
        cx.lose_connection();
    }

    /// As [`Protocol::connection_made`].
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::connection_lost`]. Bytes still buffered (an unfinished line)
    /// are dropped.
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, reason: &DisconnectReason) {
        let _ = (cx, reason);
    }

    /// As [`Protocol::read_connection_lost`]: the peer closed its writing half. An
    /// unfinished line stays buffered.
    #[doc(alias = "readConnectionLost")]
    fn read_connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>) -> EofAction {
        let _ = cx;
        EofAction::Close
    }

    /// As [`Protocol::write_connection_lost`].
    #[doc(alias = "writeConnectionLost")]
    fn write_connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::pause_producing`] (for a protocol registered as its transport's
    /// producer; compare [`LineContext::pause_receiving`] for the other direction).
    #[doc(alias = "pauseProducing")]
    fn pause_producing(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::resume_producing`].
    #[doc(alias = "resumeProducing")]
    fn resume_producing(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        let _ = cx;
    }

    /// As [`Protocol::timeout_connection`]; the default aborts with
    /// [`DisconnectReason::TimedOut`].
    #[doc(alias = "timeoutConnection")]
    fn timeout_connection(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        cx.abort_with_reason(DisconnectReason::TimedOut);
    }
}

/// Why a [`LineReceiver`] refused input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// A line (or an unfinished line) was longer than the maximum.
    TooLong {
        /// How many bytes the line had, or the unfinished line had reached.
        length: usize,
        /// The maximum in force.
        max: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { length, max } => {
                write!(
                    f,
                    "line of {length} bytes is longer than the maximum of {max}"
                )
            }
        }
    }
}

impl Error for LineError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Line,
    Raw,
}

/// The error of an empty line delimiter, which would find a line at every byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyDelimiter;

impl fmt::Display for EmptyDelimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a line delimiter cannot be empty")
    }
}

impl Error for EmptyDelimiter {}

/// A receiver's state beside its protocol.
#[derive(Debug)]
struct LineState {
    mode: Mode,
    delimiter: Vec<u8>,
    max_length: usize,
    /// Bytes received and not yet delivered. While the receiver is delivering, the
    /// bytes being parsed are out of it, and it collects what `set_line_mode(extra)`
    /// adds.
    buffer: Vec<u8>,
    /// Leading bytes of `buffer` already searched for the delimiter in vain.
    searched: usize,
    /// `clear_line_buffer` was called while delivering.
    cleared: bool,
    paused: bool,
    error: Option<LineError>,
}

/// Wraps a [`LineProtocol`] into a [`Protocol`]: splits the byte stream into lines
/// (Twisted's `LineReceiver`).
///
/// Bytes are parsed straight from each read; only an unfinished line is copied aside.
/// The factory builds `LineReceiver::new(protocol)`; [`for_protocol`](crate::for_protocol)
/// works when the protocol is `Default` and its factory is
/// `SimpleFactory<LineReceiver<Self>>`.
pub struct LineReceiver<L: LineProtocol> {
    protocol: L,
    state: LineState,
}

impl<L: LineProtocol + fmt::Debug> fmt::Debug for LineReceiver<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReceiver")
            .field("protocol", &self.protocol)
            .field("state", &self.state)
            .finish()
    }
}

impl<L: LineProtocol + Default> Default for LineReceiver<L> {
    fn default() -> Self {
        LineReceiver::new(L::default())
    }
}

impl<L: LineProtocol> LineReceiver<L> {
    /// Wraps `protocol`, in line mode with its `DELIMITER` and `MAX_LENGTH`.
    ///
    /// An empty `DELIMITER` does not compile (it would find a line at every byte and
    /// never move on):
    ///
    /// ```compile_fail
    /// use protocol::basic::{LineContext, LineProtocol, LineReceiver};
    ///
    /// struct Endless;
    /// impl LineProtocol for Endless {
    ///     type Factory = ();
    ///     const DELIMITER: &'static [u8] = b"";
    ///     fn line_received(&mut self, _: &mut LineContext<'_, '_, Self>, _: &[u8]) {}
    /// }
    /// let _ = LineReceiver::new(Endless);
    /// ```
    pub fn new(protocol: L) -> Self {
        const {
            assert!(
                !L::DELIMITER.is_empty(),
                "LineProtocol::DELIMITER cannot be empty"
            )
        };
        LineReceiver {
            protocol,
            state: LineState {
                mode: Mode::Line,
                delimiter: L::DELIMITER.to_vec(),
                max_length: L::MAX_LENGTH,
                buffer: Vec::new(),
                searched: 0,
                cleared: false,
                paused: false,
                error: None,
            },
        }
    }

    /// The wrapped protocol.
    pub fn protocol(&self) -> &L {
        &self.protocol
    }

    /// The wrapped protocol, to change.
    pub fn protocol_mut(&mut self) -> &mut L {
        &mut self.protocol
    }

    /// The last limit the peer broke, if any.
    pub fn error(&self) -> Option<&LineError> {
        self.state.error.as_ref()
    }

    /// Bytes received and not yet delivered.
    pub fn buffered(&self) -> usize {
        self.state.buffer.len()
    }

    /// Calls `f` with the protocol and a [`LineContext`] over `cx`, then delivers
    /// what became deliverable (after `resume_receiving` or `set_line_mode`): how a
    /// timer or a test reaches a line protocol. [`LineContext::call_later`] uses it.
    pub fn with_context<R>(
        &mut self,
        cx: &mut Context<'_, Self>,
        f: impl FnOnce(&mut L, &mut LineContext<'_, '_, L>) -> R,
    ) -> R {
        let result = self.call(cx, f);
        self.deliver(cx, &[]);
        result
    }

    /// Calls `f` with the protocol and a context, delivering nothing.
    fn call<R>(
        &mut self,
        cx: &mut Context<'_, Self>,
        f: impl FnOnce(&mut L, &mut LineContext<'_, '_, L>) -> R,
    ) -> R {
        let mut lcx = LineContext {
            cx,
            state: &mut self.state,
            rest: &[],
        };
        f(&mut self.protocol, &mut lcx)
    }

    /// Delivers what the buffer and `data` hold, line by line (or raw), until the
    /// bytes run out, the receiver pauses, or the connection closes; keeps the rest.
    fn deliver(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        let state = &mut self.state;
        // Parse straight from `data` when nothing is buffered.
        let (mut bytes, mut searched): (Cow<'_, [u8]>, usize) = if state.buffer.is_empty() {
            (Cow::Borrowed(data), 0)
        } else {
            let mut buffer = std::mem::take(&mut state.buffer);
            buffer.extend_from_slice(data);
            let searched = state.searched.min(buffer.len());
            (Cow::Owned(buffer), searched)
        };
        state.searched = 0;
        state.cleared = false;
        let mut pos = 0;
        while pos < bytes.len() && !state.paused && cx.is_open() {
            let mut lcx = LineContext {
                cx: &mut *cx,
                state: &mut *state,
                rest: &[],
            };
            match lcx.state.mode {
                Mode::Raw => {
                    let data = &bytes[pos..];
                    pos = bytes.len();
                    self.protocol.raw_data_received(&mut lcx, data);
                }
                Mode::Line => {
                    let delimiter_len = lcx.state.delimiter.len();
                    let max = lcx.state.max_length;
                    let from = pos + searched.saturating_sub(pos);
                    searched = 0;
                    match find(&bytes[from..], &lcx.state.delimiter) {
                        Some(at) if from + at - pos <= max => {
                            let line = &bytes[pos..from + at];
                            pos = from + at + delimiter_len;
                            lcx.rest = &bytes[pos..];
                            self.protocol.line_received(&mut lcx, line);
                        }
                        Some(at) => {
                            let length = from + at - pos;
                            let data = &bytes[pos..];
                            pos = bytes.len();
                            lcx.state.error = Some(LineError::TooLong { length, max });
                            self.protocol.line_length_exceeded(&mut lcx, data);
                        }
                        // A line of `max` bytes may still be followed by all but the
                        // last byte of its delimiter.
                        None if bytes.len() - pos >= max.saturating_add(delimiter_len) => {
                            let data = &bytes[pos..];
                            pos = bytes.len();
                            lcx.state.error = Some(LineError::TooLong {
                                length: data.len(),
                                max,
                            });
                            self.protocol.line_length_exceeded(&mut lcx, data);
                        }
                        None => {
                            // Unfinished: remember how far the search got.
                            state.searched = (bytes.len() - pos).saturating_sub(delimiter_len - 1);
                            break;
                        }
                    }
                }
            }
            // What the callback asked for: drop the rest, or add bytes after it.
            if state.cleared {
                state.cleared = false;
                pos = bytes.len();
            }
            if !state.buffer.is_empty() {
                let mut more = match bytes {
                    Cow::Owned(mut owned) => {
                        owned.drain(..pos);
                        owned
                    }
                    Cow::Borrowed(borrowed) => borrowed[pos..].to_vec(),
                };
                more.append(&mut state.buffer);
                bytes = Cow::Owned(more);
                pos = 0;
                state.searched = 0;
            }
        }
        let searched = std::mem::take(&mut state.searched);
        state.buffer = match bytes {
            Cow::Owned(mut owned) => {
                owned.drain(..pos);
                if owned.is_empty() && owned.capacity() > KEEP_CAPACITY {
                    Vec::new()
                } else {
                    owned
                }
            }
            Cow::Borrowed(borrowed) => borrowed[pos..].to_vec(),
        };
        // Still valid only if the loop stopped on an unfinished line.
        if state.mode == Mode::Line && searched <= state.buffer.len() {
            state.searched = searched;
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [] => Some(0),
        [byte] => haystack.iter().position(|b| b == byte),
        [first, tail @ ..] => {
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
    }
}

// ===== impl IProtocol =====

impl<L: LineProtocol> Protocol for LineReceiver<L> {
    type Factory = L::Factory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        self.with_context(cx, |p, cx| p.connection_made(cx));
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        self.deliver(cx, data);
    }

    fn read_connection_lost(&mut self, cx: &mut Context<'_, Self>) -> EofAction {
        self.with_context(cx, |p, cx| p.read_connection_lost(cx))
    }

    fn write_connection_lost(&mut self, cx: &mut Context<'_, Self>) {
        self.with_context(cx, |p, cx| p.write_connection_lost(cx));
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        self.call(cx, |p, cx| p.connection_lost(cx, reason));
        self.state.buffer = Vec::new();
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

/// What a [`LineProtocol`] callback can reach: the protocol [`Context`] (by
/// dereference) and the receiver's line controls.
pub struct LineContext<'a, 'b, L: LineProtocol> {
    cx: &'a mut Context<'b, LineReceiver<L>>,
    state: &'a mut LineState,
    /// The bytes after the line being delivered (for `clear_line_buffer`).
    rest: &'a [u8],
}

impl<L: LineProtocol> fmt::Debug for LineContext<'_, '_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineContext")
            .field("cx", &self.cx)
            .field("mode", &self.state.mode)
            .finish_non_exhaustive()
    }
}

impl<'b, L: LineProtocol> Deref for LineContext<'_, 'b, L> {
    type Target = Context<'b, LineReceiver<L>>;

    fn deref(&self) -> &Self::Target {
        self.cx
    }
}

impl<L: LineProtocol> DerefMut for LineContext<'_, '_, L> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.cx
    }
}

impl<'b, L: LineProtocol> LineContext<'_, 'b, L> {
    /// Writes `line` followed by the delimiter, in one write (Twisted's `sendLine`).
    /// The line should not contain the delimiter: the peer would read two lines.
    #[doc(alias = "sendLine")]
    pub fn send_line(&mut self, line: &[u8]) {
        let (cx, delimiter) = (&mut *self.cx, &self.state.delimiter);
        cx.write_sequence(&[line, delimiter]);
    }

    /// Switches to raw mode (Twisted's `setRawMode`): the bytes after the current
    /// line, and every later read, go to [`LineProtocol::raw_data_received`].
    #[doc(alias = "setRawMode")]
    pub fn set_raw_mode(&mut self) {
        self.state.mode = Mode::Raw;
    }

    /// Switches back to line mode (Twisted's `setLineMode`), parsing `extra` first:
    /// from `raw_data_received`, pass the bytes it did not consume. From
    /// `line_received`, `extra` would come after the bytes still buffered: pass
    /// nothing there.
    #[doc(alias = "setLineMode")]
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        self.state.mode = Mode::Line;
        self.state.buffer.extend_from_slice(extra);
    }

    /// Whether lines (not raw data) are being delivered.
    pub fn is_line_mode(&self) -> bool {
        self.state.mode == Mode::Line
    }

    /// The delimiter lines end with.
    pub fn delimiter(&self) -> &[u8] {
        &self.state.delimiter
    }

    /// Changes the delimiter, for the bytes not yet delivered and for
    /// [`send_line`](Self::send_line).
    ///
    /// # Errors
    ///
    /// [`EmptyDelimiter`] if `delimiter` is empty (Twisted raises `ValueError: empty
    /// separator`); the delimiter in force is kept.
    pub fn set_delimiter(&mut self, delimiter: &[u8]) -> Result<(), EmptyDelimiter> {
        if delimiter.is_empty() {
            return Err(EmptyDelimiter);
        }
        self.state.delimiter = delimiter.to_vec();
        self.state.searched = 0;
        Ok(())
    }

    /// The longest line accepted, delimiter excluded.
    pub fn max_length(&self) -> usize {
        self.state.max_length
    }

    /// Changes the longest line accepted (Twisted's `MAX_LENGTH`).
    pub fn set_max_length(&mut self, max: usize) {
        self.state.max_length = max;
    }

    /// Drops the bytes received but not yet delivered, and returns them (Twisted's
    /// `clearLineBuffer`). From `line_received`, these are the bytes after the
    /// current line.
    #[doc(alias = "clearLineBuffer")]
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        let mut cleared = self.rest.to_vec();
        cleared.append(&mut self.state.buffer);
        self.state.searched = 0;
        self.rest = &[];
        self.state.cleared = true;
        cleared
    }

    /// Stops delivering lines (and reading) until
    /// [`resume_receiving`](Self::resume_receiving): lines already read stay
    /// buffered (Twisted's `LineReceiver.pauseProducing`).
    #[doc(alias = "pauseProducing")]
    pub fn pause_receiving(&mut self) {
        self.state.paused = true;
        self.cx.pause_reading();
    }

    /// Delivers the buffered lines and reads again (Twisted's
    /// `LineReceiver.resumeProducing`). Called from a callback, delivery goes on when
    /// it returns.
    #[doc(alias = "resumeProducing")]
    pub fn resume_receiving(&mut self) {
        self.state.paused = false;
        self.cx.resume_reading();
    }

    /// Stops delivering for good and closes the connection (Twisted's
    /// `LineReceiver.stopProducing`).
    #[doc(alias = "stopProducing")]
    pub fn stop_receiving(&mut self) {
        self.state.paused = true;
        self.cx.lose_connection();
    }

    /// Whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.state.paused
    }

    /// The last limit the peer broke, if any (read it in
    /// [`LineProtocol::connection_lost`] to tell why the connection was dropped).
    pub fn error(&self) -> Option<&LineError> {
        self.state.error.as_ref()
    }

    /// Calls `f` with this protocol and a fresh line context after `delay`, if the
    /// connection is still open; lines that `f` makes deliverable (by resuming) are
    /// delivered when it returns.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut L, &mut LineContext<'_, '_, L>) + 'static,
    ) -> DelayedCall {
        self.cx
            .call_later(delay, move |receiver, cx| receiver.with_context(cx, f))
    }
}
