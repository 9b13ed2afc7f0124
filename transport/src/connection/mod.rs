//! [`Connection`]: a stream transport that *is* a reactor descriptor (Twisted's
//! `tcp.Connection` / `abstract.FileDescriptor`), and [`Transport`], the view of it a
//! handler gets in every callback (Twisted's `ITransport`, `ITCPTransport`,
//! `IConsumer`).
//!
//! One idea per file:
//!
//! * here: the [`Connection`] itself, how it starts, and how a handler callback is
//!   run (`call`, `invoke`);
//! * `core.rs`: the state below the handler (stream, write buffer, flags, settings)
//!   and its invariants;
//! * `view.rs`: [`Transport`], the methods a handler calls;
//! * `closing.rs`: the lifecycle after a callback returns (`settle`), closes and
//!   half-closes, producers stopped, `finish`;
//! * `io.rs`: the descriptor side, reading and the write path (flush, producers
//!   asked for more).

mod closing;
mod core;
mod io;
mod view;

use std::panic::{self, AssertUnwindSafe};

use log::{error, trace};
use reactor::{panic_message, DescriptorId, Reactor};

use self::core::{Core, State};
pub use self::view::Transport;
use crate::address::Address;
use crate::error::TransportError;
use crate::handler::Handler;
use crate::reason::DisconnectReason;
use crate::stream::Stream;

/// Size of the read buffer, shared by every connection of a thread.
pub const READ_CHUNK: usize = 64 * 1024;
/// Reads per readiness event before yielding to other descriptors.
pub const MAX_READS_PER_TURN: usize = 16;
/// Default high-water mark of the write buffer (Twisted's `bufferSize`).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// Default low-water mark of the write buffer.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// A stream connection: the reactor's read and write descriptor for one socket (or
/// in-memory stream), delivering bytes to its [`Handler`].
///
/// Generic over the handler only; the stream is held behind one type (a TCP or Unix
/// socket inline, any other stream boxed), so every connection of a given handler has
/// one concrete type, which timers use to find it again with
/// [`Connection::with_handler`] (a virtual call per system call is noise next to the
/// system call).
pub struct Connection<H> {
    core: Core,
    handler: H,
}

impl<H> std::fmt::Debug for Connection<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.core.host.get())
            .field("peer", &self.core.peer)
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Connection<H> {
    /// Puts a connected `stream` to `peer` in the reactor, reading, and calls the
    /// handler's `connection_made` (Twisted builds a `tcp.Connection` and calls
    /// `makeConnection`). Returns the connection's id, which the handler already had.
    ///
    /// The caller names the peer: whoever made the stream knows it (`accept` and a
    /// connect return it, a pipe's is [`Address::Pipe`]), and asking the socket
    /// would cost a system call per connection. For a stream of unknown origin,
    /// [`Stream::peer_address`] asks it.
    ///
    /// # Errors
    ///
    /// [`TransportError::Reactor`] if the reactor cannot take another descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::Reactor;
    /// use transport::{Connection, DisconnectReason, Handler, MemoryStream, Stream, Transport};
    ///
    /// struct Quiet;
    /// impl Handler for Quiet {
    ///     fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}
    ///     fn connection_lost(&mut self, _: &mut Transport<'_>, _: &DisconnectReason) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (ours, _theirs) = MemoryStream::pair(1024);
    /// let peer = ours.peer_address()?;
    /// let id = Connection::start(&mut reactor, Box::new(ours), peer, Quiet)?;
    /// assert!(reactor.contains(id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(
        reactor: &mut Reactor,
        stream: Box<dyn Stream>,
        peer: Address,
        handler: H,
    ) -> Result<DescriptorId, TransportError> {
        let id = reactor.insert_with(|id| {
            Box::new(Connection {
                core: Core::new(id, stream, peer),
                handler,
            })
        })?;
        reactor.add_reader(id)?;
        reactor.with_descriptor::<Self, _>(id, |conn, reactor| {
            trace!("connection {id} made with {}", conn.core.peer);
            conn.invoke(reactor, |h, t| h.connection_made(t));
        });
        Ok(id)
    }

    /// Calls `f` with the handler of connection `id` and its transport, then acts on
    /// what `f` asked for (writes, closes): how a timer or other code outside the
    /// connection's own callbacks reaches it. Returns `None` if the connection is gone
    /// (or is not a `Connection<H>`), or if `f` panicked (the connection is then
    /// closed with [`DisconnectReason::Panicked`]).
    pub fn with_handler<R>(
        reactor: &mut Reactor,
        id: DescriptorId,
        f: impl FnOnce(&mut H, &mut Transport<'_>) -> R,
    ) -> Option<R> {
        reactor
            .with_descriptor::<Self, _>(id, |conn, reactor| conn.invoke(reactor, f))
            .flatten()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Runs one handler callback, catching a panic; no follow-up.
    fn call<R>(
        &mut self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut H, &mut Transport<'_>) -> R,
    ) -> Result<R, String> {
        let core = &mut self.core;
        let handler = &mut self.handler;
        panic::catch_unwind(AssertUnwindSafe(|| {
            let mut transport = Transport { core, reactor };
            f(handler, &mut transport)
        }))
        .map_err(|payload| panic_message(payload.as_ref()))
    }

    /// Runs one handler callback, then acts on what it asked for.
    fn invoke<R>(
        &mut self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut H, &mut Transport<'_>) -> R,
    ) -> Option<R> {
        if self.core.state == State::Closed {
            return None;
        }
        match self.call(reactor, f) {
            Ok(value) => {
                self.settle(reactor);
                self.core.check_invariants();
                Some(value)
            }
            Err(msg) => {
                error!(
                    "connection {:?} to {}: protocol panicked: {msg}",
                    self.core.id, self.core.peer
                );
                self.finish(reactor, DisconnectReason::Panicked(msg));
                None
            }
        }
    }
}
