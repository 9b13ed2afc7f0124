//! Connecting: [`connect_tcp`], [`connect_unix`] and the [`Connector`] they return
//! (Twisted's `IReactorTCP.connectTCP`, `IReactorUNIX.connectUNIX`, `IConnector`).

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use log::debug;
use reactor::{DelayedCall, DescriptorId, Reactor};
use transport::{Connecting, Connection, DisconnectReason, Stream};

use crate::error::ConnectError;
use crate::factory::ClientFactory;
use crate::handler::ProtocolHandler;
use crate::reconnecting::{ConnectWith, Retry};
use crate::resolver::{self, Lookup};
use crate::shared::Shared;
use crate::testing::LostSlot;

mod attempt;

/// Where a connector connects to (Twisted's `getDestination` result).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A TCP host (name or address literal) and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix-domain socket path.
    Unix(PathBuf),
    /// An in-memory peer: the connectors of [`testing`](crate::testing), which
    /// connect once and are refused after.
    Memory,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Tcp { host, port } if host.contains(':') && !host.starts_with('[') => {
                write!(f, "[{host}]:{port}")
            }
            Destination::Tcp { host, port } => write!(f, "{host}:{port}"),
            Destination::Unix(path) => write!(f, "unix:{}", path.display()),
            Destination::Memory => f.write_str("memory"),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The whole attempt must succeed within this long (default 30 s, as Twisted);
    /// `None` waits for the resolver's and the operating system's own limits.
    ///
    /// As in Twisted, one timer is armed when the attempt starts, before the name is
    /// resolved, and it covers the resolution and every address tried: when it fires,
    /// the attempt fails with [`DisconnectReason::TimedOut`] and no later address is
    /// tried. An address that refuses moves on to the next one at once.
    pub timeout: Option<Duration>,
    /// Connect from this local address.
    pub bind_address: Option<SocketAddr>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Some(Duration::from_secs(30)),
            bind_address: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Disconnected,
    /// `connect` was called; the attempt starts on the next turn.
    Starting,
    Resolving(Lookup),
    Connecting(DescriptorId),
    /// The socket connected; the protocol is being built and started.
    Made,
    Connected(DescriptorId),
}

/// What a [`Destination::Memory`] connector connects with (once), and what the
/// test that made it learns: the connection's id, and how it ended.
pub(crate) struct MemoryPeer {
    stream: Option<Box<dyn Stream>>,
    id: Option<DescriptorId>,
    lost: LostSlot,
}

impl fmt::Debug for MemoryPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPeer")
            .field("unused", &self.stream.is_some())
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct State {
    destination: Destination,
    options: ConnectOptions,
    phase: Phase,
    /// Bumped by every `connect`, so a stale step of an earlier attempt does nothing.
    attempt: u64,
    /// The current attempt's timeout (Twisted's `timeoutID`).
    timer: Option<DelayedCall>,
    /// This connector counts as a user of its factory (Twisted's `factoryStarted`).
    factory_started: bool,
    /// Reconnecting with back-off, when made through a
    /// [`ReconnectingClientFactory`](crate::ReconnectingClientFactory).
    pub(crate) retry: Option<Retry>,
    /// Only for a [`Destination::Memory`] connector.
    memory: Option<MemoryPeer>,
}

/// One destination and the attempts to connect to it (Twisted's `IConnector`).
///
/// Cheap to clone: clones share the connector. Its factory is told about each
/// attempt through [`ClientFactory`], and each callback can read the value the
/// connector carries ([`data`](Self::data)).
pub struct Connector<F: ClientFactory> {
    pub(crate) state: Rc<RefCell<State>>,
    factory: Shared<F>,
    data: Rc<F::Data>,
}

impl<F: ClientFactory> Clone for Connector<F> {
    fn clone(&self) -> Self {
        Connector {
            state: self.state.clone(),
            factory: self.factory.clone(),
            data: self.data.clone(),
        }
    }
}

/// A connector held without keeping it alive (by the reconnecting factory that made
/// it, which it refers to in turn).
pub(crate) struct WeakConnector<F: ClientFactory> {
    state: std::rc::Weak<RefCell<State>>,
    data: std::rc::Weak<F::Data>,
}

impl<F: ClientFactory> WeakConnector<F> {
    pub(crate) fn upgrade(&self, factory: &Shared<F>) -> Option<Connector<F>> {
        Some(Connector {
            state: self.state.upgrade()?,
            factory: factory.clone(),
            data: self.data.upgrade()?,
        })
    }
}

impl<F: ClientFactory> fmt::Debug for Connector<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Connector")
            .field("destination", &state.destination)
            .field("phase", &state.phase)
            .finish()
    }
}

/// Connects to TCP `host`:`port` with `factory` (Twisted's `connectTCP`). The host
/// may be a name (resolved on a resolver thread, never blocking the reactor), an IPv4
/// or an IPv6 literal. When a name has several addresses they are tried in turn.
///
/// The attempt starts on the reactor's next turn; the factory hears how it went.
///
/// # Examples
///
/// ```no_run
/// use protocol::{connect_tcp, for_protocol, ConnectOptions, Context, Protocol, SimpleFactory};
///
/// #[derive(Default)]
/// struct Printer;
/// impl Protocol for Printer {
///     type Factory = SimpleFactory<Self>;
///     fn data_received(&mut self, _: &mut Context<'_, Self>, data: &[u8]) {
///         print!("{}", String::from_utf8_lossy(data));
///     }
/// }
///
/// let mut reactor = reactor::Reactor::new()?;
/// connect_tcp(&mut reactor, "localhost", 10000, &for_protocol::<Printer>(), &ConnectOptions::default());
/// reactor.run()?;
/// # Ok::<(), reactor::ReactorError>(())
/// ```
#[doc(alias = "connectTCP")]
pub fn connect_tcp<C>(
    reactor: &mut Reactor,
    host: &str,
    port: u16,
    factory: &C,
    options: &ConnectOptions,
) -> Connector<C::Factory>
where
    C: ConnectWith,
    C::Factory: ClientFactory<Data = ()>,
{
    connect_tcp_with(reactor, host, port, factory, (), options)
}

/// [`connect_tcp`] for a factory whose connectors carry a value: `data` goes with
/// this connector, and every callback of the factory about it reads it as
/// [`Connector::data`]. One factory can so serve many connections and know which
/// is which (a download's task number, a request's key), without a table of its own.
///
/// # Examples
///
/// ```no_run
/// use protocol::prelude::*;
///
/// struct Fetch { task: usize }
/// impl Protocol for Fetch {
///     type Factory = Fetcher;
///     fn data_received(&mut self, _: &mut Context<'_, Self>, data: &[u8]) {
///         println!("task {}: {} bytes", self.task, data.len());
///     }
/// }
///
/// struct Fetcher;
/// impl Factory for Fetcher {
///     type Protocol = Fetch;
///     fn build_protocol(&mut self, _: &Address) -> Option<Fetch> {
///         None // a connector's protocol comes from build_client_protocol
///     }
/// }
/// impl ClientFactory for Fetcher {
///     type Data = usize;
///     fn build_client_protocol(&mut self, connector: &Connector<Self>, _: &Address) -> Option<Fetch> {
///         Some(Fetch { task: *connector.data() })
///     }
///     fn client_connection_failed(&mut self, _: &mut Reactor, connector: &Connector<Self>, reason: &ConnectError) {
///         eprintln!("task {}: {reason}", connector.data());
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let factory = Shared::new(Fetcher);
/// for (task, port) in [(1, 10000), (2, 10001)] {
///     connect_tcp_with(&mut reactor, "127.0.0.1", port, &factory, task, &ConnectOptions::default());
/// }
/// reactor.run()?;
/// # Ok::<(), protocol::reactor::ReactorError>(())
/// ```
pub fn connect_tcp_with<C: ConnectWith>(
    reactor: &mut Reactor,
    host: &str,
    port: u16,
    factory: &C,
    data: <C::Factory as ClientFactory>::Data,
    options: &ConnectOptions,
) -> Connector<C::Factory> {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let destination = Destination::Tcp { host, port };
    Connector::new(reactor, destination, factory, data, *options)
}

/// Connects to the Unix-domain socket at `path` with `factory` (Twisted's
/// `connectUNIX`).
#[doc(alias = "connectUNIX")]
pub fn connect_unix<C>(
    reactor: &mut Reactor,
    path: impl Into<PathBuf>,
    factory: &C,
    options: &ConnectOptions,
) -> Connector<C::Factory>
where
    C: ConnectWith,
    C::Factory: ClientFactory<Data = ()>,
{
    connect_unix_with(reactor, path, factory, (), options)
}

/// [`connect_unix`] for a factory whose connectors carry a value (see
/// [`connect_tcp_with`]).
pub fn connect_unix_with<C: ConnectWith>(
    reactor: &mut Reactor,
    path: impl Into<PathBuf>,
    factory: &C,
    data: <C::Factory as ClientFactory>::Data,
    options: &ConnectOptions,
) -> Connector<C::Factory> {
    Connector::new(
        reactor,
        Destination::Unix(path.into()),
        factory,
        data,
        *options,
    )
}

/// Connects to an in-memory peer over `stream`, as the connectors of
/// [`testing`](crate::testing) do: the first attempt connects with it, any later
/// one is refused. `lost` learns how the connection ended.
pub(crate) fn connect_memory<C: ConnectWith>(
    reactor: &mut Reactor,
    stream: Box<dyn Stream>,
    factory: &C,
    data: <C::Factory as ClientFactory>::Data,
    lost: LostSlot,
) -> Connector<C::Factory> {
    let options = ConnectOptions::default();
    let connector = Connector::unstarted(Destination::Memory, factory.shared(), data, options);
    factory.adopt(&connector);
    connector.state.borrow_mut().memory = Some(MemoryPeer {
        stream: Some(stream),
        id: None,
        lost,
    });
    connector.connect(reactor);
    connector
}

impl<F: ClientFactory> Connector<F> {
    fn new<C: ConnectWith<Factory = F>>(
        reactor: &mut Reactor,
        destination: Destination,
        factory: &C,
        data: F::Data,
        options: ConnectOptions,
    ) -> Self {
        let connector = Self::unstarted(destination, factory.shared(), data, options);
        factory.adopt(&connector);
        connector.connect(reactor);
        connector
    }

    fn unstarted(
        destination: Destination,
        factory: &Shared<F>,
        data: F::Data,
        options: ConnectOptions,
    ) -> Self {
        Connector {
            state: Rc::new(RefCell::new(State {
                destination,
                options,
                phase: Phase::Disconnected,
                attempt: 0,
                timer: None,
                factory_started: false,
                retry: None,
                memory: None,
            })),
            factory: factory.clone(),
            data: Rc::new(data),
        }
    }

    /// The id of the connection a memory connector made, once made.
    pub(crate) fn memory_connection(&self) -> Option<DescriptorId> {
        self.state.borrow().memory.as_ref().and_then(|m| m.id)
    }

    pub(crate) fn downgrade(&self) -> WeakConnector<F> {
        WeakConnector {
            state: Rc::downgrade(&self.state),
            data: Rc::downgrade(&self.data),
        }
    }

    /// The value this connector carries: what [`connect_tcp_with`] was given, `()`
    /// for [`connect_tcp`].
    pub fn data(&self) -> &F::Data {
        &self.data
    }

    /// Where it connects to (Twisted's `getDestination`).
    #[doc(alias = "getDestination")]
    pub fn get_destination(&self) -> Destination {
        self.state.borrow().destination.clone()
    }

    /// Whether a connection made by this connector is open now.
    pub fn is_connected(&self) -> bool {
        matches!(self.state.borrow().phase, Phase::Connected(_))
    }

    /// Whether an attempt is in progress.
    pub fn is_connecting(&self) -> bool {
        matches!(
            self.state.borrow().phase,
            Phase::Starting | Phase::Resolving(_) | Phase::Connecting(_) | Phase::Made
        )
    }

    /// Starts a new attempt (Twisted's `connect`), on the next turn of the reactor;
    /// a reconnecting factory calls it after a connection failed or was lost. Returns
    /// `false`, doing nothing, if an attempt is in progress or a connection is open.
    pub fn connect(&self, reactor: &mut Reactor) -> bool {
        let (attempt, start_factory) = {
            let mut state = self.state.borrow_mut();
            if state.phase != Phase::Disconnected {
                return false;
            }
            state.phase = Phase::Starting;
            state.attempt += 1;
            let start_factory = !state.factory_started;
            state.factory_started = true;
            (state.attempt, start_factory)
        };
        if start_factory {
            self.factory.start_use(reactor);
        }
        self.arm_timeout(reactor, attempt);
        let connector = self.clone();
        reactor.call_soon(move |reactor| connector.begin(reactor, attempt));
        true
    }

    /// Abandons the attempt in progress (Twisted's `stopConnecting`); the factory's
    /// `client_connection_failed` hears [`ConnectError::Cancelled`] on the reactor's
    /// next turn, not from inside this call, so the factory may call it on itself
    /// (as [`ReconnectingClientFactory::stop_trying`] does) or from one of its
    /// callbacks. Returns whether there was an attempt.
    ///
    /// [`ReconnectingClientFactory::stop_trying`]: crate::ReconnectingClientFactory::stop_trying
    #[doc(alias = "stopConnecting")]
    pub fn stop_connecting(&self, reactor: &mut Reactor) -> bool {
        let phase = self.state.borrow().phase;
        match phase {
            Phase::Starting | Phase::Resolving(_) | Phase::Connecting(_) | Phase::Made => {}
            Phase::Disconnected | Phase::Connected(_) => return false,
        }
        // The attempt is over now: its pending steps find themselves stale.
        {
            let mut state = self.state.borrow_mut();
            state.phase = Phase::Disconnected;
            state.attempt += 1;
        }
        self.disarm_timeout(reactor);
        match phase {
            Phase::Resolving(lookup) => resolver::cancel(lookup),
            Phase::Connecting(id) => {
                Connecting::cancel(reactor, id);
            }
            _ => {}
        }
        let connector = self.clone();
        reactor
            .call_soon(move |reactor| connector.report_failure(reactor, ConnectError::Cancelled));
        true
    }

    /// Closes the connection, or abandons the attempt (Twisted's `disconnect`). As
    /// in Twisted, the connection closes on the reactor's next turn, so the factory
    /// hears of it (`client_connection_lost`) from there, never from inside this call.
    pub fn disconnect(&self, reactor: &mut Reactor) {
        let phase = self.state.borrow().phase;
        match phase {
            Phase::Connected(id) => reactor.call_soon(move |reactor| {
                Connection::<ProtocolHandler<F::Protocol>>::with_handler(reactor, id, |_, t| {
                    t.lose_connection()
                });
            }),
            _ => {
                self.stop_connecting(reactor);
            }
        }
    }

    /// Arms the attempt's one timeout, before anything of it runs.
    fn arm_timeout(&self, reactor: &mut Reactor, attempt: u64) {
        let Some(timeout) = self.state.borrow().options.timeout else {
            return;
        };
        let connector = self.clone();
        let timer = reactor.call_later(timeout, move |reactor| {
            connector.time_out(reactor, attempt);
        });
        let replaced = self.state.borrow_mut().timer.replace(timer);
        debug_assert!(replaced.is_none(), "one timer per attempt");
    }

    /// Cancels the attempt's timeout, if it has one.
    fn disarm_timeout(&self, reactor: &mut Reactor) {
        let timer = self.state.borrow_mut().timer.take();
        if let Some(timer) = timer {
            // Err: it already ran (this is its own failure) or was cancelled.
            if timer.cancel(reactor).is_err() {
                debug!("the connect timer had already run");
            }
        }
    }

    /// The attempt's timeout fired: whatever it is doing (starting, resolving,
    /// connecting to one of the addresses) stops, and the factory hears `TimedOut`.
    fn time_out(&self, reactor: &mut Reactor, attempt: u64) {
        let phase = {
            let mut state = self.state.borrow_mut();
            if state.attempt != attempt {
                return;
            }
            state.timer = None;
            let phase = state.phase;
            match phase {
                Phase::Disconnected | Phase::Connected(_) => return,
                Phase::Starting | Phase::Resolving(_) | Phase::Connecting(_) | Phase::Made => {}
            }
            // The attempt is over now: its pending steps find themselves stale.
            state.phase = Phase::Disconnected;
            state.attempt += 1;
            phase
        };
        match phase {
            Phase::Resolving(lookup) => resolver::cancel(lookup),
            Phase::Connecting(id) => {
                Connecting::cancel(reactor, id);
            }
            _ => {}
        }
        self.report_failure(reactor, ConnectError::Failed(DisconnectReason::TimedOut));
    }
}
