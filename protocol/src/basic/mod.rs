//! Reusable framings: lines, netstrings and length-prefixed strings (Twisted's
//! `twisted.protocols.basic`).
//!
//! | here | Twisted |
//! |---|---|
//! | [`LineReceiver`], [`LineProtocol`] (`line_received`, `raw_data_received`, `line_length_exceeded`) | `LineReceiver` (`lineReceived`, `rawDataReceived`, `lineLengthExceeded`) |
//! | [`LineContext`]: `send_line`, `set_raw_mode`, `set_line_mode`, `set_delimiter`, `clear_line_buffer`, `pause_receiving` | `sendLine`, `setRawMode`, `setLineMode`, `delimiter`, `clearLineBuffer`, `pauseProducing` |
//! | [`NetstringReceiver`], [`NetstringProtocol`], [`NetstringError`] | `NetstringReceiver`, `NetstringParseError`, `brokenPeer` |
//! | [`Int32StringReceiver`], [`Int16StringReceiver`], [`Int8StringReceiver`] ([`IntNStringReceiver`] over a [`LengthPrefix`]) | `Int32StringReceiver`, `Int16StringReceiver`, `Int8StringReceiver` (`IntNStringReceiver`) |
//! | [`IntStringError::TooLongToSend`] | `StringTooLongError` |
//! | [`LineSplitter`], [`NetstringParser`], [`IntPrefixParser`] ([`Framing`]s), [`FrameReader`] | the parsing inside `dataReceived` of each |
//!
//! # How a protocol crate is written on this layer
//!
//! Twisted reuses a framing by subclassing: `class Chat(LineReceiver)` inherits
//! `dataReceived` and overrides `lineReceived`. Here a framing is a *wrapper*:
//!
//! 1. A trait for the protocol inside ([`LineProtocol`]), with the framing's own
//!    callbacks (`line_received`) and the [`Protocol`](crate::Protocol) callbacks it
//!    forwards (`connection_made`, `connection_lost`, ...), each given a richer
//!    context.
//! 2. A wrapper struct ([`LineReceiver<L>`](LineReceiver)) that owns the inner
//!    protocol and the framing state (buffer, mode, limits), and implements
//!    [`Protocol`](crate::Protocol) with `type Factory = L::Factory`: its
//!    `data_received` parses and calls the inner protocol; the factory builds
//!    `LineReceiver::new(inner)`.
//! 3. A context ([`LineContext`]) that dereferences to the protocol
//!    [`Context`](crate::Context) (so `cx.write`, `cx.factory()`, `cx.set_timeout`
//!    all work) and adds the framing's controls (`send_line`, `set_raw_mode`), plus a
//!    `call_later` whose callback gets the inner protocol back.
//!
//! The parsing itself is pure and usable alone: a [`Framing`] ([`LineSplitter`],
//! [`NetstringParser`], [`IntPrefixParser`]) finds the frame at the start of some
//! bytes, and a [`FrameReader`] keeps what is not yet a frame between reads (for a
//! framing over something that is not a connection, or to test one). The wrappers
//! are a `FrameReader` each: they parse straight from the transport's read buffer and
//! copy aside only a message that spans reads; every limit is checked before
//! anything is buffered for it. Nothing here knows about sockets: they are tested with
//! [`testing::ProtocolTest`](crate::testing::ProtocolTest), every input replayed at
//! every chunk size.
//!
//! # Example: a chat server
//!
//! Each line a client sends goes to every other client (the factory holds who is
//! connected; `protocol/examples/chat_server.rs` is the full program).
//!
//! ```
//! use std::collections::BTreeMap;
//! use protocol::basic::{LineContext, LineProtocol, LineReceiver};
//! use protocol::{Factory, Shared, with_protocol};
//! use reactor::{DescriptorId, Reactor};
//! use transport::{Address, DisconnectReason};
//!
//! #[derive(Default)]
//! struct ChatFactory { clients: BTreeMap<DescriptorId, String> }
//!
//! impl Factory for ChatFactory {
//!     type Protocol = LineReceiver<Chat>;
//!     fn build_protocol(&mut self, peer: &Address) -> Option<LineReceiver<Chat>> {
//!         Some(LineReceiver::new(Chat { name: peer.to_string() }))
//!     }
//! }
//!
//! struct Chat { name: String }
//!
//! impl LineProtocol for Chat {
//!     type Factory = ChatFactory;
//!
//!     fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
//!         let id = cx.id();
//!         cx.factory().clients.insert(id, self.name.clone());
//!     }
//!
//!     fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
//!         let me = cx.id();
//!         let others: Vec<DescriptorId> =
//!             cx.factory().clients.keys().copied().filter(|id| *id != me).collect();
//!         let message = [format!("<{}> ", self.name).as_bytes(), line].concat();
//!         for id in others {
//!             with_protocol::<LineReceiver<Chat>, _>(cx.reactor(), id, |receiver, cx| {
//!                 receiver.with_context(cx, |_, cx| cx.send_line(&message))
//!             });
//!         }
//!     }
//!
//!     fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, _: &DisconnectReason) {
//!         let id = cx.id();
//!         cx.factory().clients.remove(&id);
//!     }
//! }
//! # let _ = Shared::new(ChatFactory::default());
//! ```

#[macro_use]
mod adapter;
mod framing;
mod int_prefixed;
mod line;
mod netstring;
mod parsers;

pub use self::framing::{FrameReader, Framing, Parsed};
pub use self::parsers::{IntPrefixParser, LineSplitter, NetstringParser};

pub use self::int_prefixed::{
    Int16StringReceiver, Int32StringReceiver, Int8StringReceiver, IntNStringReceiver,
    IntStringContext, IntStringError, IntStringProtocol, LengthPrefix,
};
pub use self::line::{
    EmptyDelimiter, LineContext, LineError, LineProtocol, LineReceiver, DEFAULT_DELIMITER,
    DEFAULT_MAX_LINE_LENGTH,
};
pub use self::netstring::{
    NetstringContext, NetstringError, NetstringProtocol, NetstringReceiver,
    DEFAULT_MAX_STRING_LENGTH,
};

#[cfg(test)]
mod tests;
