//! Factories: what makes one protocol per connection (Twisted's `IProtocolFactory`,
//! `Factory`, `ServerFactory`, `ClientFactory`).

use std::marker::PhantomData;

use reactor::Reactor;
use transport::{Address, DisconnectReason};

use crate::connector::Connector;
use crate::error::ConnectError;
use crate::protocol::Protocol;
use crate::shared::Shared;

/// Makes a protocol for each new connection and holds what they share (Twisted's
/// `Factory`).
///
/// Hand it to [`listen_tcp`](crate::listen_tcp) or
/// [`connect_tcp`](crate::connect_tcp) inside a [`Shared`]; protocols reach it through
/// [`Context::factory`](crate::Context::factory).
///
/// # The contract
///
/// * `do_start` runs once before the first port or connector uses the factory, and
///   `do_stop` once after the last one stops (Twisted's `doStart` / `doStop`).
/// * `build_protocol` runs once per connection, before its `connection_made`; `None`
///   refuses the connection (it is closed at once). A panic in it refuses that
///   connection only.
pub trait Factory: Sized + 'static {
    /// The protocol it builds (Twisted's `protocol` class attribute).
    type Protocol: Protocol<Factory = Self>;

    /// A protocol for a new connection with `peer`, or `None` to refuse it (Twisted's
    /// `buildProtocol`).
    #[doc(alias = "buildProtocol")]
    fn build_protocol(&mut self, peer: &Address) -> Option<Self::Protocol>;

    /// Called before the first port or connector starts using the factory (Twisted's
    /// `doStart` / `startFactory`).
    #[doc(alias = "doStart")]
    fn do_start(&mut self, reactor: &mut Reactor) {
        let _ = reactor;
    }

    /// Called after the last port or connector stopped using it (Twisted's `doStop` /
    /// `stopFactory`).
    #[doc(alias = "doStop")]
    fn do_stop(&mut self, reactor: &mut Reactor) {
        let _ = reactor;
    }
}

/// A factory that connects: told how each attempt went (Twisted's `ClientFactory`).
///
/// Every callback receives the [`Connector`]: it can [`connect`](Connector::connect)
/// again, and it carries the value the caller connected with
/// ([`Connector::data`]), so one factory serving several connectors knows which
/// one it hears about. To retry with back-off, wrap the factory in a
/// [`ReconnectingClientFactory`](crate::ReconnectingClientFactory).
pub trait ClientFactory: Factory {
    /// The value each of its connectors carries: given to
    /// [`connect_tcp_with`](crate::connect_tcp_with), read in every callback as
    /// [`Connector::data`]. `()` for a factory whose connectors carry nothing (what
    /// [`connect_tcp`](crate::connect_tcp) needs).
    type Data: 'static;

    /// Builds the protocol for a connection `connector` made; the default asks
    /// [`Factory::build_protocol`]. Override it when one factory serves several
    /// connectors and each protocol must know which one it belongs to: read
    /// [`connector.data()`](Connector::data).
    fn build_client_protocol(
        &mut self,
        connector: &Connector<Self>,
        peer: &Address,
    ) -> Option<Self::Protocol> {
        let _ = connector;
        self.build_protocol(peer)
    }

    /// An attempt begins (Twisted's `startedConnecting`).
    #[doc(alias = "startedConnecting")]
    fn started_connecting(&mut self, reactor: &mut Reactor, connector: &Connector<Self>) {
        let _ = (reactor, connector);
    }

    /// The attempt failed: the name did not resolve, the peer refused, it timed out, or
    /// it was cancelled (Twisted's `clientConnectionFailed`).
    #[doc(alias = "clientConnectionFailed")]
    fn client_connection_failed(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        let _ = (reactor, connector, reason);
    }

    /// A connection it made has ended, after its protocol's `connection_lost`
    /// (Twisted's `clientConnectionLost`).
    #[doc(alias = "clientConnectionLost")]
    fn client_connection_lost(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        reason: &DisconnectReason,
    ) {
        let _ = (reactor, connector, reason);
    }
}

/// A factory that builds `P::default()` for every connection and holds nothing else:
/// Twisted's `Factory.forProtocol(P)`. See [`for_protocol`].
pub struct SimpleFactory<P> {
    connections: u64,
    protocol: PhantomData<fn() -> P>,
}

impl<P> std::fmt::Debug for SimpleFactory<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleFactory")
            .field("connections", &self.connections)
            .finish()
    }
}

impl<P> Default for SimpleFactory<P> {
    fn default() -> Self {
        SimpleFactory {
            connections: 0,
            protocol: PhantomData,
        }
    }
}

impl<P> SimpleFactory<P> {
    /// How many protocols it has built.
    pub fn connections(&self) -> u64 {
        self.connections
    }
}

impl<P: Protocol<Factory = SimpleFactory<P>> + Default> Factory for SimpleFactory<P> {
    type Protocol = P;

    fn build_protocol(&mut self, _peer: &Address) -> Option<P> {
        self.connections += 1;
        Some(P::default())
    }
}

impl<P: Protocol<Factory = SimpleFactory<P>> + Default> ClientFactory for SimpleFactory<P> {
    type Data = ();
}

/// A shared [`SimpleFactory`] for `P`: one line declares which protocol a server builds
/// (Twisted's `Factory.forProtocol(Echo)`).
///
/// # Examples
///
/// ```
/// use protocol::{for_protocol, Context, Protocol, SimpleFactory};
///
/// #[derive(Default)]
/// struct Echo;
/// impl Protocol for Echo {
///     type Factory = SimpleFactory<Self>;
///     fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
///         cx.write(data);
///     }
/// }
///
/// let factory = for_protocol::<Echo>();
/// assert_eq!(factory.borrow().connections(), 0);
/// ```
#[doc(alias = "forProtocol")]
pub fn for_protocol<P: Protocol<Factory = SimpleFactory<P>> + Default>() -> Shared<SimpleFactory<P>>
{
    Shared::new(SimpleFactory::default())
}
