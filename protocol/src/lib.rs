//! Protocols, factories, connectors and listening ports: Twisted's `IProtocol`,
//! `Factory`, `ClientFactory`, `connectTCP` and `listenTCP`, on the transport layer.
//!
//! The third layer, and the one programs are written against. A [`Protocol`] holds one
//! connection's state and reacts to its events; a [`Factory`] builds one per
//! connection and holds what they share; [`listen_tcp`] and [`connect_tcp`] put them
//! on the network. Everything runs on one [`Reactor`](reactor::Reactor) thread.
//!
//! A protocol crate needs no other dependency: [`prelude`] brings what a typical
//! server and client use, and the layers underneath are re-exported whole as
//! [`protocol::reactor`](crate::reactor) and [`protocol::transport`](crate::transport).
//!
//! | here | Twisted |
//! |---|---|
//! | [`Protocol`] (`connection_made`, `data_received`, `connection_lost`) | `IProtocol`, `Protocol` |
//! | [`Context`] (dereferences to `transport::Transport`) | `self.transport`, `self.factory` |
//! | [`Factory`], [`for_protocol`], [`Shared`] | `IProtocolFactory`, `Factory.forProtocol`, `protocol.factory` |
//! | [`ClientFactory`], [`Connector`] | `ClientFactory`, `IConnector` |
//! | [`listen_tcp`], [`listen_unix`], [`ListeningPort`] | `listenTCP`, `listenUNIX`, `IListeningPort` |
//! | [`connect_tcp`], [`connect_unix`] (and `_with`, a connector carrying a value) | `connectTCP`, `connectUNIX` |
//! | [`ReconnectingClientFactory`] (wraps any client factory), [`ReconnectPolicy`] | `ReconnectingClientFactory` |
//! | [`standard_io`] (over `transport::PipeStream`) | `stdio.StandardIO` |
//! | [`ProcessProtocol`], [`spawn_process`] | `ProcessProtocol`, `spawnProcess` |
//! | [`Resolver`], [`install_resolver`], [`SystemResolver`], [`MemoryResolver`] | `IResolverSimple`, `installResolver`, `ThreadedResolver` |
//! | [`DatagramProtocol`], [`listen_udp`], [`UdpListeningPort`] | `DatagramProtocol`, `listenUDP` |
//! | [`Context::set_timeout`], [`Protocol::timeout_connection`] | `TimeoutMixin` |
//! | [`basic`] | `twisted.protocols.basic` |
//! | [`testing`] | `StringTransport`, `task.Clock`, `iosim` |
//!
//! # One shape for every call that listens, connects or spawns
//!
//! Each takes the reactor first, then where (a port, a host and port, a path, a
//! command), then what runs there (a shared factory, or a protocol), and last its
//! options *by reference*: an options struct with a `Default`, so the plain case reads
//! `&XOptions::default()` and the struct can grow without breaking callers.
//!
//! | call | options |
//! |---|---|
//! | [`listen_tcp`]`(reactor, port, &factory, &options)` | [`TcpListenOptions`] (interface, backlog, `SO_REUSEPORT`) |
//! | [`listen_unix`]`(reactor, path, &factory, &options)` | [`UnixListenOptions`] (backlog) |
//! | [`listen_udp`]`(reactor, port, protocol, &options)` | [`UdpListenOptions`] (interface, largest datagram) |
//! | [`connect_tcp`]`(reactor, host, port, &factory, &options)`, [`connect_tcp_with`]`(.., &factory, data, &options)` | [`ConnectOptions`] (timeout, local address) |
//! | [`connect_unix`]`(reactor, path, &factory, &options)` | [`ConnectOptions`] |
//! | [`spawn_process`]`(reactor, protocol, command, &options)` | [`transport::ProcessOptions`] |
//!
//! # Example: the tutorial's poetry client
//!
//! `get-poetry.py` of the Twisted Introduction (Part 5), almost line for line. Where
//! the tutorial numbers its tasks in `buildProtocol`, in the order connections happen
//! to complete, each connector here carries its task's number
//! ([`connect_tcp_with`]), so a failure also says which task it ended:
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use protocol::{connect_tcp_with, ClientFactory, ConnectError, ConnectOptions, Connector, Context, Factory, Protocol, Shared};
//! use reactor::Reactor;
//! use transport::{Address, DisconnectReason};
//!
//! struct PoetryProtocol { poem: Vec<u8>, task_num: usize }
//!
//! impl Protocol for PoetryProtocol {
//!     type Factory = PoetryClientFactory;
//!
//!     fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
//!         self.poem.extend_from_slice(data);
//!         println!("Task {}: got {} bytes of poetry from {}", self.task_num, data.len(), cx.get_peer());
//!     }
//!
//!     fn connection_lost(&mut self, cx: &mut Context<'_, Self>, _reason: &DisconnectReason) {
//!         let poem = std::mem::take(&mut self.poem);
//!         cx.factory().poem_finished(self.task_num, Some(poem), cx.reactor());
//!     }
//! }
//!
//! struct PoetryClientFactory { poetry_count: usize, poems: BTreeMap<usize, Vec<u8>> }
//!
//! impl PoetryClientFactory {
//!     fn poem_finished(&mut self, task_num: usize, poem: Option<Vec<u8>>, reactor: &mut Reactor) {
//!         if let Some(poem) = poem {
//!             self.poems.insert(task_num, poem);
//!         }
//!         self.poetry_count -= 1;
//!         if self.poetry_count == 0 {
//!             reactor.stop();
//!         }
//!     }
//! }
//!
//! impl Factory for PoetryClientFactory {
//!     type Protocol = PoetryProtocol;
//!
//!     fn build_protocol(&mut self, _addr: &Address) -> Option<PoetryProtocol> {
//!         None // every connection is a connector's: see build_client_protocol
//!     }
//! }
//!
//! impl ClientFactory for PoetryClientFactory {
//!     type Data = usize; // the task number each connector carries
//!
//!     fn build_client_protocol(&mut self, connector: &Connector<Self>, _addr: &Address) -> Option<PoetryProtocol> {
//!         Some(PoetryProtocol { poem: Vec::new(), task_num: *connector.data() })
//!     }
//!
//!     fn client_connection_failed(&mut self, reactor: &mut Reactor, connector: &Connector<Self>, reason: &ConnectError) {
//!         println!("Task {}: failed to connect to: {} ({reason})", connector.data(), connector.get_destination());
//!         self.poem_finished(*connector.data(), None, reactor);
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let addresses = [("127.0.0.1", 10000), ("127.0.0.1", 10001)];
//!     let mut reactor = Reactor::new()?;
//!     let factory = Shared::new(PoetryClientFactory { poetry_count: addresses.len(), poems: BTreeMap::new() });
//!     for (task, (host, port)) in addresses.into_iter().enumerate() {
//!         connect_tcp_with(&mut reactor, host, port, &factory, task + 1, &ConnectOptions::default());
//!     }
//!     reactor.run()?;
//!     for (task, poem) in &factory.borrow().poems {
//!         println!("Task {task}: {} bytes of poetry", poem.len());
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Testing a protocol without a socket
//!
//! [`testing::ProtocolTest`] runs a protocol on the real transport over an in-memory
//! stream, with a manual clock; see the [`testing`] module.
//!
//! # What it does not do
//!
//! No event loop and no sockets of its own: the reactor and transport crates do that.
//! Name resolution is pluggable per reactor thread ([`install_resolver`]): by default
//! the system's resolver runs on a small pool of threads that report back with
//! `call_from_thread`; tests install a [`MemoryResolver`] so no lookup leaves the
//! machine. Listening interfaces are resolved once, at listen time, by the same
//! resolver.

pub mod basic;
mod connector;
mod error;
mod factory;
mod handler;
mod idle_queue;
mod port;
pub mod prelude;
mod process;
mod protocol;
mod reconnecting;
mod resolver;
mod shared;
mod stdio;
pub mod testing;
mod timeout;
mod udp;

pub use crate::connector::{
    connect_tcp, connect_tcp_with, connect_unix, connect_unix_with, ConnectOptions, Connector,
    Destination,
};
pub use crate::error::{ConnectError, ListenError};
pub use crate::factory::{for_protocol, ClientFactory, Factory, SimpleFactory};
pub use crate::handler::ProtocolHandler;
pub use crate::port::{
    listen_tcp, listen_unix, ListeningPort, TcpListenOptions, UnixListenOptions,
};
pub use crate::process::{spawn_process, ProcessProtocol};
pub use crate::protocol::{with_protocol, Context, Protocol};
pub use crate::reconnecting::{Backoff, ConnectWith, ReconnectPolicy, ReconnectingClientFactory};
pub use crate::resolver::{
    install_resolver, installed_resolver, Answer, HostsError, MemoryResolver, Resolver,
    SystemResolver, TEST_HOSTS_VARIABLE,
};
pub use crate::shared::Shared;
pub use crate::stdio::standard_io;
pub use crate::udp::{listen_udp, DatagramProtocol, UdpListenOptions, UdpListeningPort};
pub use transport::{Address, DisconnectReason, EofAction};

/// The event loop underneath, re-exported whole so a protocol crate depends on
/// `protocol` alone (`protocol::reactor::Reactor`, `protocol::reactor::ManualClock`, ...).
pub use reactor;
/// The stream-connection layer underneath, re-exported whole
/// (`protocol::transport::Transport`, `protocol::transport::MemoryStream`, ...).
pub use transport;
