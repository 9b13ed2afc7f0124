//! Tests built from factories: [`ProtocolTest::from_factory`],
//! [`ProtocolTest::from_client_factory`] and [`Loopback::from_factories`] ask the
//! factory for the protocol as a listening port or a connector would, so its
//! `build_protocol`, `build_client_protocol`, `client_connection_*` and
//! `do_start` / `do_stop` run in memory too.

use std::fmt;
use std::time::Duration;

use reactor::{DescriptorId, Reactor};
use transport::{MemoryStream, Stream};

use super::{manual_reactor, start_then, Loopback, LostSlot, ProtocolTest, DEFAULT_CAPACITY};
use crate::connector::connect_memory;
use crate::factory::{ClientFactory, Factory};
use crate::protocol::Protocol;
use crate::reconnecting::ConnectWith;
use crate::shared::Shared;

/// Turns a connector's attempt gets at most before the test gives up on it.
const MAX_CONNECT_TURNS: usize = 1_000;

/// Why a test built from a factory did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The factory refused the in-memory connection: its `build_protocol` (server
    /// side) or `build_client_protocol` (client side) returned `None`. As with a real
    /// port or connector, the factory has heard of it by then (`client_connection_failed`
    /// with [`ConnectError::Refused`](crate::ConnectError::Refused) on the client side)
    /// and its `do_stop` has run.
    Refused,
    /// The server factory was borrowed (a guard from [`Shared::borrow_mut`] or
    /// [`Shared::borrow`] still alive) when the test asked it for a protocol; nothing
    /// was started and its `do_stop` has run. A real port asks only from the reactor's
    /// dispatch, where no guard of the caller's can be alive.
    FactoryBorrowed,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StartError::Refused => "the factory refused the connection",
            StartError::FactoryBorrowed => {
                "the factory was borrowed when the test asked it for a protocol"
            }
        })
    }
}

impl std::error::Error for StartError {}

/// As a listening port that accepts one connection over `stream` and stops
/// listening when it ends: `do_start`, `build_protocol(peer)`, the connection; then
/// `do_stop` after its `connection_lost`, or at once if refused.
fn accept<F: Factory>(
    reactor: &mut Reactor,
    factory: &Shared<F>,
    stream: MemoryStream,
) -> Result<(DescriptorId, LostSlot), StartError> {
    factory.start_use(reactor);
    let peer = stream
        .peer_address()
        .expect("an in-memory stream knows its peer");
    let built = match factory.try_borrow_mut() {
        Some(mut factory) => factory.build_protocol(&peer),
        None => {
            factory.stop_use(reactor);
            return Err(StartError::FactoryBorrowed);
        }
    };
    let Some(protocol) = built else {
        factory.stop_use(reactor);
        return Err(StartError::Refused);
    };
    let stopping = factory.clone();
    let then = move |reactor: &mut Reactor| stopping.stop_use(reactor);
    Ok(start_then(reactor, protocol, factory.clone(), stream, then))
}

/// As a connector to an in-memory peer over `stream`: `do_start`,
/// `started_connecting`, then on the next turn `build_client_protocol` and the
/// connection; its end reaches `client_connection_lost` and `do_stop`, a refusal
/// `client_connection_failed`. Turns `reactor` until the attempt is decided.
fn connect<C: ConnectWith>(
    reactor: &mut Reactor,
    factory: &C,
    data: <C::Factory as ClientFactory>::Data,
    stream: MemoryStream,
) -> Result<(DescriptorId, LostSlot), StartError> {
    let lost = LostSlot::default();
    let connector = connect_memory(reactor, Box::new(stream), factory, data, lost.clone());
    for _ in 0..MAX_CONNECT_TURNS {
        if let Some(id) = connector.memory_connection() {
            return Ok((id, lost));
        }
        if !connector.is_connecting() {
            return Err(StartError::Refused);
        }
        reactor
            .iterate(Some(Duration::ZERO))
            .expect("iterate in a test");
    }
    panic!("an in-memory connect was not decided within {MAX_CONNECT_TURNS} turns");
}

impl<P: Protocol> ProtocolTest<P> {
    /// The protocol `factory` builds for a connection accepted as by a listening
    /// port, with the test as the client: `do_start`, then `build_protocol` with the
    /// peer's (in-memory) address, then `connection_made`; `do_stop` after the
    /// connection ends, as a port that stopped listening after this one connection.
    ///
    /// # Errors
    ///
    /// [`StartError::Refused`] if `build_protocol` returned `None` (`do_stop` has run).
    ///
    /// # Panics
    ///
    /// If the factory is borrowed (a guard of the test's own is alive).
    ///
    /// # Examples
    ///
    /// ```
    /// use protocol::prelude::*;
    /// use protocol::testing::{ProtocolTest, StartError};
    ///
    /// struct Greeter { number: u32 }
    /// impl Protocol for Greeter {
    ///     type Factory = Greeters;
    ///     fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
    ///         cx.write(format!("you are visitor {}\n", self.number).as_bytes());
    ///     }
    ///     fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
    /// }
    ///
    /// /// Numbers its visitors, and lets two in.
    /// #[derive(Default)]
    /// struct Greeters { visitors: u32 }
    /// impl Factory for Greeters {
    ///     type Protocol = Greeter;
    ///     fn build_protocol(&mut self, _: &Address) -> Option<Greeter> {
    ///         (self.visitors < 2).then(|| {
    ///             self.visitors += 1;
    ///             Greeter { number: self.visitors }
    ///         })
    ///     }
    /// }
    ///
    /// let factory = Shared::new(Greeters::default());
    /// let mut first = ProtocolTest::from_factory(&factory)?;
    /// assert_eq!(first.take_written(), b"you are visitor 1\n");
    /// assert_eq!(factory.users(), 1, "in use while the connection lasts");
    /// let mut second = ProtocolTest::from_factory(&factory)?;
    /// assert_eq!(second.take_written(), b"you are visitor 2\n");
    /// assert_eq!(ProtocolTest::from_factory(&factory).err(), Some(StartError::Refused));
    /// first.disconnect_peer(false);
    /// second.disconnect_peer(false);
    /// assert_eq!(factory.users(), 0, "do_stop ran after each connection");
    /// # Ok::<(), StartError>(())
    /// ```
    #[doc(alias = "buildProtocol")]
    pub fn from_factory<F>(factory: &Shared<F>) -> Result<Self, StartError>
    where
        F: Factory<Protocol = P>,
        P: Protocol<Factory = F>,
    {
        let (mut reactor, clock) = manual_reactor();
        let (ours, peer) = MemoryStream::pair(DEFAULT_CAPACITY);
        let side = accept(&mut reactor, factory, ours)?;
        Ok(Self::assemble(reactor, clock, side, peer, factory.clone()))
    }

    /// The protocol `factory` builds for a connection made as by a connector, with
    /// the test as the server: `do_start`, `started_connecting`, then
    /// `build_client_protocol` and `connection_made`; when the connection ends,
    /// `connection_lost`, `client_connection_lost` and `do_stop`. The connector
    /// carries `data` ([`Connector::data`](crate::Connector::data)); it connects
    /// once, so a factory that connects it again hears `client_connection_failed`
    /// (refused), as from a server that went away. `factory` is what
    /// [`connect_tcp`](crate::connect_tcp) takes: a [`Shared`] client factory, or a
    /// [`ReconnectingClientFactory`](crate::ReconnectingClientFactory) around one,
    /// whose connector then retries on the test's clock.
    ///
    /// # Errors
    ///
    /// [`StartError::Refused`] if `build_client_protocol` returned `None` (the factory has heard
    /// `client_connection_failed`, and `do_stop` has run).
    ///
    /// # Panics
    ///
    /// If the attempt is not decided within a bound of reactor turns (a
    /// `started_connecting` that keeps scheduling work).
    ///
    /// # Examples
    ///
    /// ```
    /// use protocol::prelude::*;
    /// use protocol::testing::{ProtocolTest, StartError};
    ///
    /// struct Ask;
    /// impl Protocol for Ask {
    ///     type Factory = Asker;
    ///     fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
    ///         cx.write(b"question\n");
    ///     }
    ///     fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
    ///         cx.factory().answer.extend_from_slice(data);
    ///     }
    /// }
    ///
    /// #[derive(Default)]
    /// struct Asker { answer: Vec<u8>, ended: Vec<String> }
    /// impl Factory for Asker {
    ///     type Protocol = Ask;
    ///     fn build_protocol(&mut self, _: &Address) -> Option<Ask> { Some(Ask) }
    /// }
    /// impl ClientFactory for Asker {
    ///     type Data = &'static str;
    ///     fn client_connection_lost(&mut self, _: &mut Reactor, c: &Connector<Self>, r: &DisconnectReason) {
    ///         self.ended.push(format!("{}: {r}", c.data()));
    ///     }
    /// }
    ///
    /// let factory = Shared::new(Asker::default());
    /// let mut test = ProtocolTest::from_client_factory(&factory, "first")?;
    /// assert_eq!(test.take_written(), b"question\n");
    /// test.feed(b"answer");
    /// test.disconnect_peer(false);
    /// let asker = factory.borrow();
    /// assert_eq!(asker.answer, b"answer");
    /// assert_eq!(asker.ended.len(), 1);
    /// assert!(asker.ended[0].starts_with("first: "));
    /// # Ok::<(), StartError>(())
    /// ```
    #[doc(alias = "clientConnectionLost")]
    pub fn from_client_factory<C>(
        factory: &C,
        data: <C::Factory as ClientFactory>::Data,
    ) -> Result<Self, StartError>
    where
        C: ConnectWith,
        C::Factory: ClientFactory<Protocol = P>,
        P: Protocol<Factory = C::Factory>,
    {
        let (mut reactor, clock) = manual_reactor();
        let (ours, peer) = MemoryStream::pair(DEFAULT_CAPACITY);
        let side = connect(&mut reactor, factory, data, ours)?;
        Ok(Self::assemble(
            reactor,
            clock,
            side,
            peer,
            factory.shared().clone(),
        ))
    }
}

impl<C: Protocol, S: Protocol> Loopback<C, S> {
    /// A client and a server connected in memory, each protocol built by its
    /// factory as a connector and a listening port would: the server side as
    /// [`ProtocolTest::from_factory`] (accepted first), the client side as
    /// [`ProtocolTest::from_client_factory`], its connector carrying `data`.
    ///
    /// # Errors
    ///
    /// [`StartError::Refused`] if either factory refused (the server's first: then the client
    /// never connects; if the client's, the server's connection ends first, so its
    /// factory's `do_stop` has run).
    ///
    /// # Panics
    ///
    /// As [`ProtocolTest::from_factory`] and [`ProtocolTest::from_client_factory`].
    ///
    /// # Examples
    ///
    /// ```
    /// use protocol::prelude::*;
    /// use protocol::testing::{Loopback, StartError};
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
    /// #[derive(Default)]
    /// struct Hello { heard: Vec<u8> }
    /// impl Protocol for Hello {
    ///     type Factory = SimpleFactory<Self>;
    ///     fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
    ///         cx.write(b"hello");
    ///     }
    ///     fn data_received(&mut self, _: &mut Context<'_, Self>, data: &[u8]) {
    ///         self.heard.extend_from_slice(data);
    ///     }
    /// }
    ///
    /// let (client, server) = (for_protocol::<Hello>(), for_protocol::<Echo>());
    /// let mut pair = Loopback::from_factories(&client, (), &server)?;
    /// assert_eq!(pair.with_client(|hello, _| hello.heard.clone()), Some(b"hello".to_vec()));
    /// assert_eq!((client.borrow().connections(), server.borrow().connections()), (1, 1));
    /// assert_eq!((client.users(), server.users()), (1, 1), "a connector and a port");
    /// pair.with_client(|_, cx| cx.lose_connection());
    /// assert!(pair.server_reason().is_some_and(|r| r.is_clean()));
    /// assert_eq!((client.users(), server.users()), (0, 0), "both do_stop ran");
    /// # Ok::<(), StartError>(())
    /// ```
    pub fn from_factories<CF, SF>(
        client_factory: &CF,
        data: <CF::Factory as ClientFactory>::Data,
        server_factory: &Shared<SF>,
    ) -> Result<Self, StartError>
    where
        CF: ConnectWith,
        CF::Factory: ClientFactory<Protocol = C>,
        C: Protocol<Factory = CF::Factory>,
        SF: Factory<Protocol = S>,
        S: Protocol<Factory = SF>,
    {
        let (mut reactor, clock) = manual_reactor();
        let (client_end, server_end) = MemoryStream::pair(DEFAULT_CAPACITY);
        let server_side = accept(&mut reactor, server_factory, server_end)?;
        match connect(&mut reactor, client_factory, data, client_end) {
            Ok(client_side) => Ok(Self::assemble(reactor, clock, client_side, server_side)),
            Err(refused) => {
                // The refused client's end is closed: let the server's connection
                // hear it, so its factory's `do_stop` runs as after any connection.
                for _ in 0..MAX_CONNECT_TURNS {
                    if server_side.1.borrow().is_some() {
                        break;
                    }
                    let _ = reactor.set_ready(server_side.0, true, true);
                    reactor
                        .iterate(Some(Duration::ZERO))
                        .expect("iterate in a test");
                }
                Err(refused)
            }
        }
    }
}
