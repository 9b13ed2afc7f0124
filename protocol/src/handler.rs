//! [`ProtocolHandler`]: the adapter that puts a [`Protocol`] on a transport, as the
//! transport's [`Handler`].

use std::panic::{self, AssertUnwindSafe};

use reactor::{DescriptorId, Reactor};
use transport::{DisconnectReason, EofAction, Handler, Transport};

use crate::protocol::{Context, Protocol};
use crate::shared::Shared;
use crate::timeout::IdleTimer;

/// Told when a connection ends, after the protocol: how a connector learns it.
pub(crate) type OnLost = Box<dyn FnOnce(&mut Reactor, &DisconnectReason)>;

/// Told a connection is made, with its id, before the protocol's `connection_made`:
/// how a connector counts as connected while user code runs.
pub(crate) type OnMade = Box<dyn FnOnce(&mut Reactor, DescriptorId)>;

/// A [`Protocol`] together with its factory and idle timeout: the [`Handler`] a
/// connection built by this crate carries (`Connection<ProtocolHandler<P>>`).
///
/// Programs rarely name it; the testing helpers and
/// [`with_protocol`](crate::with_protocol) do.
pub struct ProtocolHandler<P: Protocol> {
    protocol: P,
    factory: Shared<P::Factory>,
    idle: IdleTimer,
    /// A connector's hooks; `None` (a server's connections) costs one pointer.
    hooks: Option<Box<Hooks>>,
}

/// What a connector hears of its connection, kept out of line: a server's connections
/// have none.
#[derive(Default)]
struct Hooks {
    on_lost: Option<OnLost>,
    on_made: Option<OnMade>,
}

impl<P: Protocol> std::fmt::Debug for ProtocolHandler<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolHandler").finish_non_exhaustive()
    }
}

impl<P: Protocol> ProtocolHandler<P> {
    /// Puts `protocol`, built by `factory`, on a connection. Crate-private: a
    /// connection started any other way than by a port, a connector or the testing
    /// helpers would bypass the factory's use count.
    pub(crate) fn new(protocol: P, factory: Shared<P::Factory>) -> Self {
        ProtocolHandler {
            protocol,
            factory,
            idle: IdleTimer::default(),
            hooks: None,
        }
    }

    pub(crate) fn on_lost(mut self, on_lost: OnLost) -> Self {
        self.hooks.get_or_insert_with(Box::default).on_lost = Some(on_lost);
        self
    }

    pub(crate) fn on_made(mut self, on_made: OnMade) -> Self {
        self.hooks.get_or_insert_with(Box::default).on_made = Some(on_made);
        self
    }

    /// The connection's idle timeout.
    pub(crate) fn idle(&self) -> &IdleTimer {
        &self.idle
    }

    /// The protocol.
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// Calls `f` with the protocol and a context over `transport`.
    pub(crate) fn with_context<R>(
        &mut self,
        transport: &mut Transport<'_>,
        f: impl FnOnce(&mut P, &mut Context<'_, P>) -> R,
    ) -> R {
        let mut cx = Context::new(transport.reborrow(), &self.factory, &mut self.idle);
        f(&mut self.protocol, &mut cx)
    }
}

impl<P: Protocol> Handler for ProtocolHandler<P> {
    fn connection_made(&mut self, transport: &mut Transport<'_>) {
        if let Some(on_made) = self.hooks.as_mut().and_then(|h| h.on_made.take()) {
            let id = transport.id();
            on_made(transport.reactor(), id);
        }
        self.with_context(transport, |p, cx| p.make_connection(cx));
    }

    fn data_received(&mut self, transport: &mut Transport<'_>, data: &[u8]) {
        self.with_context(transport, |p, cx| p.data_received(cx, data));
    }

    fn read_connection_lost(&mut self, transport: &mut Transport<'_>) -> EofAction {
        self.with_context(transport, |p, cx| p.read_connection_lost(cx))
    }

    fn write_connection_lost(&mut self, transport: &mut Transport<'_>) {
        self.with_context(transport, |p, cx| p.write_connection_lost(cx));
    }

    fn connection_lost(&mut self, transport: &mut Transport<'_>, reason: &DisconnectReason) {
        self.idle.leave::<P>(transport.reactor(), &self.factory);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            self.with_context(transport, |p, cx| p.connection_lost(cx, reason));
        }));
        // A timeout the protocol set again while being told of the loss is off too.
        self.idle.leave::<P>(transport.reactor(), &self.factory);
        // The connector learns of the loss even if the protocol panicked in it.
        if let Some(on_lost) = self.hooks.as_mut().and_then(|h| h.on_lost.take()) {
            on_lost(transport.reactor(), reason);
        }
        if let Err(payload) = outcome {
            panic::resume_unwind(payload);
        }
    }

    fn pause_producing(&mut self, transport: &mut Transport<'_>) {
        self.with_context(transport, |p, cx| p.pause_producing(cx));
    }

    fn resume_producing(&mut self, transport: &mut Transport<'_>) {
        self.with_context(transport, |p, cx| p.resume_producing(cx));
    }

    fn stop_producing(&mut self, transport: &mut Transport<'_>) {
        self.with_context(transport, |p, cx| p.stop_producing(cx));
    }
}
