//! [`Protocol`]: what a program writes to speak a protocol on one connection
//! (Twisted's `IProtocol`), and the [`Context`] each callback receives.

use std::cell::RefMut;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use reactor::{DelayedCall, Reactor};
use transport::{Connection, DisconnectReason, EofAction, Transport};

use crate::handler::ProtocolHandler;
use crate::shared::Shared;
use crate::timeout::IdleTimer;

/// One connection's protocol: its state, and what it does when things happen
/// (Twisted's `IProtocol`).
///
/// A factory builds one instance per connection. Every callback receives a
/// [`Context`]: the connection's transport (write, close, addresses; `Context`
/// dereferences to [`Transport`]), the factory that built the protocol, the reactor,
/// and timers that come back to this protocol.
///
/// # The contract
///
/// * `make_connection` (which calls `connection_made`) comes first, exactly once;
///   then `data_received` any number of times; then `connection_lost` exactly once,
///   whatever ended the connection. No callback runs inside another: a close asked for
///   inside a callback happens after it returns.
/// * A panic in any callback (`connection_made` included) closes this connection only,
///   with [`DisconnectReason::Panicked`]; `connection_lost` still comes.
/// * `data_received` may get the stream cut anywhere: one byte at a time, or many
///   messages in one call. A protocol must not assume message boundaries.
///
/// # Examples
///
/// The tutorial's poetry protocol, collecting the poem until the server closes:
///
/// ```
/// use protocol::{Context, Protocol, for_protocol, SimpleFactory};
/// use transport::DisconnectReason;
///
/// #[derive(Default)]
/// struct PoetryProtocol { poem: Vec<u8> }
///
/// impl Protocol for PoetryProtocol {
///     type Factory = SimpleFactory<Self>;
///
///     fn data_received(&mut self, _cx: &mut Context<'_, Self>, data: &[u8]) {
///         self.poem.extend_from_slice(data);
///     }
///
///     fn connection_lost(&mut self, _cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
///         if reason.is_clean() {
///             println!("{}", String::from_utf8_lossy(&self.poem));
///         }
///     }
/// }
/// let factory = for_protocol::<PoetryProtocol>();
/// # let _ = factory;
/// ```
pub trait Protocol: Sized + 'static {
    /// The factory that builds this protocol; reachable from every callback with
    /// [`Context::factory`].
    type Factory: 'static;

    /// The connection is ready (Twisted's `makeConnection`). The transport is lent to
    /// every callback rather than kept, so the provided method only calls
    /// [`connection_made`](Self::connection_made); override it to wrap that.
    #[doc(alias = "makeConnection")]
    fn make_connection(&mut self, cx: &mut Context<'_, Self>) {
        self.connection_made(cx);
    }

    /// The connection is made (Twisted's `connectionMade`).
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let _ = cx;
    }

    /// Bytes arrived (Twisted's `dataReceived`).
    #[doc(alias = "dataReceived")]
    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]);

    /// The peer closed its writing half (Twisted's `readConnectionLost`). The default
    /// ends the connection; return [`EofAction::KeepWriting`] to half-close.
    #[doc(alias = "readConnectionLost")]
    fn read_connection_lost(&mut self, cx: &mut Context<'_, Self>) -> EofAction {
        let _ = cx;
        EofAction::Close
    }

    /// Our writing half was shut down (Twisted's `writeConnectionLost`).
    #[doc(alias = "writeConnectionLost")]
    fn write_connection_lost(&mut self, cx: &mut Context<'_, Self>) {
        let _ = cx;
    }

    /// The connection is over (Twisted's `connectionLost`). `reason.is_clean()` tells a
    /// clean close from a broken connection.
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        let _ = (cx, reason);
    }

    /// As a registered streaming producer: stop writing for now (Twisted's
    /// `pauseProducing`).
    #[doc(alias = "pauseProducing")]
    fn pause_producing(&mut self, cx: &mut Context<'_, Self>) {
        let _ = cx;
    }

    /// As a registered producer: write more (Twisted's `resumeProducing`).
    #[doc(alias = "resumeProducing")]
    fn resume_producing(&mut self, cx: &mut Context<'_, Self>) {
        let _ = cx;
    }

    /// As a registered producer: the transport takes nothing more from it, because
    /// the connection is ending or its writing half was shut (Twisted's
    /// `stopProducing`). It is unregistered already; `connection_lost` (or
    /// `write_connection_lost`) follows. See
    /// [`transport::Handler`](transport::Handler#when-a-close-waits-for-the-producer-and-when-it-stops-it)
    /// for when a close waits for a producer and when it stops it.
    #[doc(alias = "stopProducing")]
    fn stop_producing(&mut self, cx: &mut Context<'_, Self>) {
        let _ = cx;
    }

    /// The idle timeout set with [`Context::set_timeout`] expired with no progress in
    /// either direction (Twisted's `TimeoutMixin.timeoutConnection`). The default
    /// aborts the connection with [`DisconnectReason::TimedOut`]. The timeout is off
    /// by then, as in Twisted: one that keeps the connection sets it again.
    #[doc(alias = "timeoutConnection")]
    fn timeout_connection(&mut self, cx: &mut Context<'_, Self>) {
        cx.abort_timed_out();
    }
}

/// What a [`Protocol`] callback can reach: its connection's [`Transport`] (by
/// dereference: `cx.write(..)`, `cx.lose_connection()`, `cx.get_peer()`), its factory,
/// the reactor, timers that come back to it, and the idle timeout.
pub struct Context<'a, P: Protocol> {
    transport: Transport<'a>,
    factory: &'a Shared<P::Factory>,
    idle: &'a mut IdleTimer,
}

impl<P: Protocol> std::fmt::Debug for Context<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl<'a, P: Protocol> Deref for Context<'a, P> {
    type Target = Transport<'a>;

    fn deref(&self) -> &Transport<'a> {
        &self.transport
    }
}

impl<P: Protocol> DerefMut for Context<'_, P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.transport
    }
}

impl<'a, P: Protocol> Context<'a, P> {
    pub(crate) fn new(
        transport: Transport<'a>,
        factory: &'a Shared<P::Factory>,
        idle: &'a mut IdleTimer,
    ) -> Self {
        Context {
            transport,
            factory,
            idle,
        }
    }

    /// What the idle timeout works with: the transport, this connection's timer and
    /// the factory (whose queues time it).
    pub(crate) fn idle_parts(
        &mut self,
    ) -> (&mut Transport<'a>, &mut IdleTimer, &Shared<P::Factory>) {
        (&mut self.transport, self.idle, self.factory)
    }

    /// The factory that built this protocol (Twisted's `self.factory`), borrowed for
    /// as long as the guard lives. The guard does not borrow the context, so
    /// `cx.factory().finished(cx.reactor())` works, even when `finished` stops the
    /// factory's last port: the framework never borrows the factory over a guard (a
    /// `do_stop` or `do_start` that comes due meanwhile runs on the next turn).
    ///
    /// # Panics
    ///
    /// If this code already holds a guard of the same factory (two `cx.factory()`
    /// guards alive at once, as with a `RefCell`).
    pub fn factory(&self) -> RefMut<'a, P::Factory> {
        self.factory.borrow_mut()
    }

    /// Calls `f` with this protocol and a fresh context after `delay`, if the
    /// connection is still open then (the slow poetry server writes from such a
    /// timer). Cancel it with the returned handle.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut P, &mut Context<'_, P>) + 'static,
    ) -> DelayedCall {
        let id = self.transport.id();
        self.transport.reactor().call_later(delay, move |reactor| {
            with_protocol::<P, _>(reactor, id, f);
        })
    }

    /// Sets the idle timeout (Twisted's `TimeoutMixin.setTimeout`): after `period`
    /// with no progress in either direction (nothing received, nothing acknowledged by
    /// the peer), [`Protocol::timeout_connection`] is called. Progress is checked when the
    /// connection's turn comes in its period's queue (one reactor timer per period
    /// and factory, not one per connection), so the call comes between one and two
    /// periods after the last progress. `None` turns it off; setting the same period
    /// again restarts it, like [`reset_timeout`](Self::reset_timeout). It is
    /// cancelled by itself when the connection is lost.
    #[doc(alias = "setTimeout")]
    pub fn set_timeout(&mut self, period: Option<Duration>) {
        self.idle
            .set::<P>(&mut self.transport, self.factory, period);
    }

    /// Restarts the idle timeout's period from now (Twisted's `resetTimeout`).
    /// Progress in either direction does this by itself; call it for progress the
    /// transport cannot see. Nothing if the timeout is off (never set, turned off, or
    /// expired), as in Twisted. It costs no timer operation: the connection is only
    /// marked, and looked at when its turn in its period's queue comes.
    #[doc(alias = "resetTimeout")]
    pub fn reset_timeout(&mut self) {
        self.idle.reset();
    }
}

/// Calls `f` with the protocol of connection `id` and a context, if that connection
/// is still open and speaks `P`: how code outside a protocol's callbacks (a timer, a
/// thread's result) reaches it. Returns `None` otherwise.
pub fn with_protocol<P: Protocol, R>(
    reactor: &mut Reactor,
    id: reactor::DescriptorId,
    f: impl FnOnce(&mut P, &mut Context<'_, P>) -> R,
) -> Option<R> {
    Connection::<ProtocolHandler<P>>::with_handler(reactor, id, |handler, transport| {
        handler.with_context(transport, f)
    })
}
