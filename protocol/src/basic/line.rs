//! [`LineReceiver`]: lines, and raw data when asked (Twisted's
//! `basic.LineReceiver`).

use std::error::Error;
use std::fmt;

use super::framing::{FrameReader, Pending};
use super::parsers::LineSplitter;
use crate::protocol::Context;

/// The delimiter a [`LineReceiver`] starts with (Twisted's `delimiter`).
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";
/// The longest line a [`LineReceiver`] accepts by default (Twisted's `MAX_LENGTH`).
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16384;

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
/// * As [`Protocol`](crate::Protocol): `connection_made` first, then lines (or raw data), then
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
    /// The provided method logs an error and aborts the connection (a reset,
    /// [`DisconnectReason::Aborted`](crate::DisconnectReason::Aborted)) where
    /// Twisted's raises `NotImplementedError`: a protocol that uses raw mode must
    /// implement it, and bytes it cannot handle must not be taken for handled.
    #[doc(alias = "rawDataReceived")]
    fn raw_data_received(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        log::error!(
            "{}: raw mode was set but raw_data_received is not implemented: {} bytes \
             not handled, the connection is aborted",
            cx.get_peer(),
            data.len()
        );
        cx.abort_connection();
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

    forwarded_callbacks!(
        LineContext<'_, '_, Self>,
        lost: "Bytes still buffered (an unfinished line) are dropped.",
        eof: "The peer closed its writing half; an unfinished line stays buffered."
    );
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
    /// The splitter and the bytes received and not yet delivered. While the receiver
    /// is delivering, the bytes being parsed are out of it, and it collects what
    /// `set_line_mode(extra)` adds.
    reader: FrameReader<LineSplitter>,
    /// `clear_line_buffer` was called while delivering.
    cleared: bool,
    paused: bool,
    error: Option<LineError>,
}

/// Wraps a [`LineProtocol`] into a [`Protocol`](crate::Protocol): splits the byte stream into lines
/// (Twisted's `LineReceiver`), with a [`LineSplitter`].
///
/// Bytes are parsed straight from each read; only an unfinished line is copied aside.
/// The factory builds `LineReceiver::new(protocol)`; [`for_protocol`](crate::for_protocol)
/// works when the protocol is `Default` and its factory is
/// `SimpleFactory<LineReceiver<Self>>`.
pub struct LineReceiver<L: LineProtocol> {
    protocol: L,
    state: LineState,
}

framing_receiver!(
    LineReceiver<L> where [L: LineProtocol],
    inner: L,
    context: LineContext { rest: &[] },
);

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
        let splitter = LineSplitter::with_checked_delimiter(L::DELIMITER, L::MAX_LENGTH);
        LineReceiver {
            protocol,
            state: LineState {
                mode: Mode::Line,
                reader: FrameReader::new(splitter),
                cleared: false,
                paused: false,
                error: None,
            },
        }
    }

    /// The last limit the peer broke, if any.
    pub fn error(&self) -> Option<&LineError> {
        self.state.error.as_ref()
    }

    /// Bytes received and not yet delivered.
    pub fn buffered(&self) -> usize {
        self.state.reader.buffered().len()
    }

    /// Delivers what the buffer and `data` hold, line by line (or raw), until the
    /// bytes run out, a line is unfinished, the receiver pauses, or the connection
    /// closes; keeps the rest.
    fn deliver(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        let mut pending = self.state.reader.begin(data);
        self.state.cleared = false;
        while !pending.is_empty() && !self.state.paused && cx.is_open() {
            let delivered = match self.state.mode {
                Mode::Raw => self.deliver_raw(cx, &mut pending),
                Mode::Line => self.deliver_line(cx, &mut pending),
            };
            if !delivered {
                break;
            }
            self.follow_requests(&mut pending);
        }
        self.state.reader.end(pending);
    }

    /// Raw mode: everything not yet delivered goes to `raw_data_received`.
    fn deliver_raw(&mut self, cx: &mut Context<'_, Self>, pending: &mut Pending<'_>) -> bool {
        let rest = pending.take_rest();
        let mut lcx = LineContext {
            cx,
            state: &mut self.state,
            rest: &[],
        };
        self.protocol
            .raw_data_received(&mut lcx, &pending.bytes()[rest]);
        true
    }

    /// Line mode: the next line goes to `line_received`, or a line over the limit
    /// (and everything after it) to `line_length_exceeded`. `false` if the rest is an
    /// unfinished line.
    fn deliver_line(&mut self, cx: &mut Context<'_, Self>, pending: &mut Pending<'_>) -> bool {
        match self.state.reader.next(pending) {
            Ok(Some(line)) => {
                let mut lcx = LineContext {
                    cx,
                    state: &mut self.state,
                    rest: pending.rest(),
                };
                self.protocol
                    .line_received(&mut lcx, &pending.bytes()[line]);
            }
            Ok(None) => return false,
            Err(error) => {
                let rest = pending.take_rest();
                self.state.error = Some(error);
                let mut lcx = LineContext {
                    cx,
                    state: &mut self.state,
                    rest: &[],
                };
                self.protocol
                    .line_length_exceeded(&mut lcx, &pending.bytes()[rest]);
            }
        }
        true
    }

    /// What the callback asked for: drop the rest (`clear_line_buffer`), or parse
    /// more bytes after it (`set_line_mode(extra)`).
    fn follow_requests(&mut self, pending: &mut Pending<'_>) {
        if std::mem::take(&mut self.state.cleared) {
            pending.take_rest();
        }
        self.state.reader.absorb(pending);
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

impl<'b, L: LineProtocol> LineContext<'_, 'b, L> {
    /// Writes `line` followed by the delimiter, in one write (Twisted's `sendLine`).
    /// The line should not contain the delimiter: the peer would read two lines.
    #[doc(alias = "sendLine")]
    pub fn send_line(&mut self, line: &[u8]) {
        let (cx, delimiter) = (&mut *self.cx, self.state.reader.framing().delimiter());
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
        self.state.reader.extend(extra);
    }

    /// Whether lines (not raw data) are being delivered.
    pub fn is_line_mode(&self) -> bool {
        self.state.mode == Mode::Line
    }

    /// The delimiter lines end with.
    pub fn delimiter(&self) -> &[u8] {
        self.state.reader.framing().delimiter()
    }

    /// Changes the delimiter, for the bytes not yet delivered and for
    /// [`send_line`](Self::send_line).
    ///
    /// # Errors
    ///
    /// [`EmptyDelimiter`] if `delimiter` is empty (Twisted raises `ValueError: empty
    /// separator`); the delimiter in force is kept.
    pub fn set_delimiter(&mut self, delimiter: &[u8]) -> Result<(), EmptyDelimiter> {
        self.state.reader.framing_mut().set_delimiter(delimiter)
    }

    /// The longest line accepted, delimiter excluded.
    pub fn max_length(&self) -> usize {
        self.state.reader.framing().max_length()
    }

    /// Changes the longest line accepted (Twisted's `MAX_LENGTH`).
    pub fn set_max_length(&mut self, max: usize) {
        self.state.reader.framing_mut().set_max_length(max);
    }

    /// Drops the bytes received but not yet delivered, and returns them (Twisted's
    /// `clearLineBuffer`). From `line_received`, these are the bytes after the
    /// current line.
    #[doc(alias = "clearLineBuffer")]
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        let mut cleared = self.rest.to_vec();
        cleared.append(&mut self.state.reader.take_buffered());
        self.rest = &[];
        self.state.cleared = true;
        cleared
    }

    receiving_controls!("lines");

    /// Stops delivering for good and closes the connection (Twisted's
    /// `LineReceiver.stopProducing`).
    #[doc(alias = "stopProducing")]
    pub fn stop_receiving(&mut self) {
        self.state.paused = true;
        self.cx.lose_connection();
    }

    /// The last limit the peer broke, if any (read it in
    /// [`LineProtocol::connection_lost`] to tell why the connection was dropped).
    pub fn error(&self) -> Option<&LineError> {
        self.state.error.as_ref()
    }
}
