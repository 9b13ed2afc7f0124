//! [`Handler`]: the callback contract between a transport and what sits on it
//! (Twisted's `IProtocol`, `IHalfCloseableProtocol` and `IPushProducer` /
//! `IPullProducer`, as the transport sees them).

use crate::connection::Transport;
use crate::reason::DisconnectReason;

/// What to do when the peer shuts down its writing half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EofAction {
    /// End the connection: whatever is already buffered is still flushed, then it
    /// closes with [`DisconnectReason::Done`].
    Close,
    /// Keep the connection open for writing (half-close): the handler closes it later,
    /// with `lose_connection`.
    KeepWriting,
}

/// The callbacks a [`Connection`](crate::Connection) makes to the code above it.
///
/// This contract lives here and only here; the protocol crate's `Protocol` is built on
/// it.
///
/// # Order
///
/// `connection_made` first, exactly once; then any number of `data_received`
/// (and at most one `read_connection_lost`); then `connection_lost`, exactly once,
/// whatever ended the connection: our close, the peer, an error, a panic in a
/// callback, or the reactor shutting down. No callback is ever made from inside
/// another: a close requested inside a callback takes effect after it returns.
///
/// # Producers
///
/// A handler that streams data can register itself as the transport's producer
/// ([`Transport::register_producer`]). A *streaming* (push) producer is told to
/// `pause_producing` when the write buffer passes its high-water mark and to
/// `resume_producing` once it drains below the low-water mark. Unlike Twisted, where
/// `pauseProducing` is called from inside the `write` that crossed the mark, it is
/// called once the callback that wrote returns: a push producer writes a bounded
/// amount per callback (a chunk per turn, from a timer or `resume_producing`), never
/// "until paused" in a loop. A non-streaming (pull)
/// producer is asked to `resume_producing` each time the buffer has drained: it writes
/// one chunk per call.
///
/// ## When a close waits for the producer, and when it stops it
///
/// The transport never waits for a producer that can no longer make progress, and
/// never cuts off one that still can:
///
/// * A **pull** producer holds [`lose_connection`](Transport::lose_connection) and
///   [`lose_write_connection`](Transport::lose_write_connection) until it
///   unregisters: it writes only when asked, so only it knows when it is done. This
///   holds after the peer's end of file too (the peer may still be reading).
/// * A **streaming** producer never holds them: once the buffer has drained the close
///   (or half-close) goes ahead, as in Twisted, where `doWrite` closes at the drain
///   unless a pull (or paused) producer is to be asked for more. A streaming
///   producer that still has something to say writes it before asking for the close.
///   A protocol that registers itself only to pause its reading (the echo server)
///   needs nothing more: the peer's end of file closes the connection as usual.
/// * Whenever the transport will take nothing more from a registered producer — the
///   connection ends for any reason (our close, the peer's close or reset, an error,
///   an abort, a timeout, the reactor shutting down), or the writing half is shut —
///   it unregisters it and calls [`stop_producing`](Handler::stop_producing) once
///   (Twisted's `stopProducing`), before `connection_lost` or `write_connection_lost`.
///
/// A close timeout ([`Transport::set_close_timeout`]) bounds only the wait for the
/// buffer to drain; a pull producer that never unregisters keeps the connection open,
/// as in Twisted.
///
/// # Examples
///
/// ```
/// use transport::{DisconnectReason, Handler, Transport};
///
/// /// Writes back whatever arrives.
/// struct Echo;
///
/// impl Handler for Echo {
///     fn data_received(&mut self, transport: &mut Transport<'_>, data: &[u8]) {
///         transport.write(data);
///     }
///     fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
///         println!("echo ended: {reason}");
///     }
/// }
/// ```
pub trait Handler: 'static {
    /// The connection is ready (Twisted's `connectionMade`).
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, transport: &mut Transport<'_>) {
        let _ = transport;
    }

    /// Bytes arrived (Twisted's `dataReceived`). `data` is only valid for this call.
    #[doc(alias = "dataReceived")]
    fn data_received(&mut self, transport: &mut Transport<'_>, data: &[u8]);

    /// The peer shut down its writing half (Twisted's
    /// `IHalfCloseableProtocol.readConnectionLost`). The default ends the connection.
    #[doc(alias = "readConnectionLost")]
    fn read_connection_lost(&mut self, transport: &mut Transport<'_>) -> EofAction {
        let _ = transport;
        EofAction::Close
    }

    /// Our writing half was shut down after `lose_write_connection` (Twisted's
    /// `IHalfCloseableProtocol.writeConnectionLost`).
    #[doc(alias = "writeConnectionLost")]
    fn write_connection_lost(&mut self, transport: &mut Transport<'_>) {
        let _ = transport;
    }

    /// The connection is over, for `reason` (Twisted's `connectionLost`). The
    /// transport still answers `get_host` and `get_peer`; writes are ignored.
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, transport: &mut Transport<'_>, reason: &DisconnectReason);

    /// The write buffer passed its high-water mark: stop writing for now (Twisted's
    /// `IPushProducer.pauseProducing`). Only for registered streaming producers.
    #[doc(alias = "pauseProducing")]
    fn pause_producing(&mut self, transport: &mut Transport<'_>) {
        let _ = transport;
    }

    /// Write more: the buffer drained (Twisted's `resumeProducing`). Only for
    /// registered producers.
    #[doc(alias = "resumeProducing")]
    fn resume_producing(&mut self, transport: &mut Transport<'_>) {
        let _ = transport;
    }

    /// The transport will take nothing more from this producer (Twisted's
    /// `IProducer.stopProducing`): the connection is ending, or its writing half was
    /// shut. Only for registered producers, which are unregistered first; called once,
    /// before `connection_lost` (or `write_connection_lost`). Writes from here are
    /// refused. Not called after [`Transport::unregister_producer`].
    #[doc(alias = "stopProducing")]
    fn stop_producing(&mut self, transport: &mut Transport<'_>) {
        let _ = transport;
    }
}
