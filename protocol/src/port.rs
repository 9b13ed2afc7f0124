//! Listening: [`listen_tcp`], [`listen_unix`] and the [`ListeningPort`] they return
//! (Twisted's `IReactorTCP.listenTCP`, `IReactorUNIX.listenUNIX`, `IListeningPort`).

use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use log::{debug, error, warn};
use reactor::{panic_message, DescriptorId, Reactor};
use transport::{
    bind_tcp, bind_unix, Acceptor, Address, Connection, ListenOptions, Listener, OnAccept,
};

use crate::error::ListenError;
use crate::factory::Factory;
use crate::handler::ProtocolHandler;
use crate::resolver::installed_resolver;
use crate::shared::Shared;

/// How to listen on TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListenOptions {
    /// The interface: an IP address or a host name resolved at once (default
    /// `127.0.0.1`: loopback only, never every interface unless asked with `0.0.0.0`
    /// or `::`).
    pub interface: String,
    /// Length of the accept queue (default 1024).
    pub backlog: i32,
    /// `SO_REUSEPORT`, so several reactors can share the port.
    pub reuse_port: bool,
    /// `SO_SNDBUF` of every accepted connection (default `None`: the kernel's
    /// autotuning); set once on the listening socket, which accepted sockets inherit
    /// (see [`transport::ListenOptions::send_buffer`]).
    pub send_buffer: Option<usize>,
    /// `SO_LINGER {on, 0}` on every accepted connection (default off): closing one
    /// resets it until the protocol switches linger off through
    /// [`Transport::handle`](transport::Transport::handle) (see
    /// [`transport::ListenOptions::reset_on_close`]).
    pub reset_on_close: bool,
}

impl Default for TcpListenOptions {
    fn default() -> Self {
        TcpListenOptions {
            interface: "127.0.0.1".to_owned(),
            backlog: ListenOptions::default().backlog,
            reuse_port: false,
            send_buffer: None,
            reset_on_close: false,
        }
    }
}

/// How to listen on a Unix-domain socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListenOptions {
    /// Length of the accept queue (default 1024, as for TCP).
    pub backlog: i32,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions {
            backlog: ListenOptions::default().backlog,
        }
    }
}

/// A port that is listening (Twisted's `IListeningPort`). Dropping the handle does
/// not stop it; [`stop_listening`](Self::stop_listening) does, as does the reactor's
/// shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListeningPort {
    id: DescriptorId,
    address: Address,
}

impl ListeningPort {
    /// The address it listens on, with the real port when port 0 was asked for
    /// (Twisted's `getHost`).
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> &Address {
        &self.address
    }

    /// Stops listening (Twisted's `stopListening`): the socket closes, connections
    /// already made go on, and the factory is told it is no longer used by this port.
    /// Returns whether it was still listening.
    #[doc(alias = "stopListening")]
    pub fn stop_listening(&self, reactor: &mut Reactor) -> bool {
        Listener::stop(reactor, self.id)
    }

    /// The listener's id in the reactor.
    pub fn id(&self) -> DescriptorId {
        self.id
    }
}

/// Resolves an interface name to a local socket address (blocking: done once, before
/// the reactor runs).
pub(crate) fn interface_address(interface: &str, port: u16) -> Result<SocketAddr, ListenError> {
    // Brackets only as a pair: `[::1]` is `::1`, `[::1` is not an address.
    let bare = interface
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(interface);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let error = |source| ListenError::Interface {
        interface: interface.to_owned(),
        source,
    };
    let mut candidates = installed_resolver()
        .resolve_now(interface, port)
        .map_err(error)?;
    // Prefer IPv4, as clients given "localhost" try it too.
    candidates.sort_by_key(|a| a.is_ipv6());
    candidates.into_iter().next().ok_or_else(|| {
        error(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ))
    })
}

/// Listens on TCP `port` (0: any free port) with `factory` (Twisted's `listenTCP`):
/// each connection gets a protocol from `factory.build_protocol`.
///
/// # Errors
///
/// [`ListenError::Interface`] if the interface does not resolve;
/// [`ListenError::Transport`] if the port cannot be bound (in use, not permitted).
///
/// # Examples
///
/// ```
/// use protocol::{for_protocol, listen_tcp, Context, Protocol, SimpleFactory, TcpListenOptions};
///
/// #[derive(Default)]
/// struct Echo;
/// impl Protocol for Echo {
///     type Factory = SimpleFactory<Self>;
///     fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) { cx.write(data); }
/// }
///
/// let mut reactor = reactor::Reactor::new()?;
/// let port = listen_tcp(&mut reactor, 0, &for_protocol::<Echo>(), &TcpListenOptions::default())?;
/// assert_ne!(port.get_host().port(), Some(0));
/// port.stop_listening(&mut reactor);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "listenTCP")]
pub fn listen_tcp<F: Factory>(
    reactor: &mut Reactor,
    port: u16,
    factory: &Shared<F>,
    options: &TcpListenOptions,
) -> Result<ListeningPort, ListenError> {
    let address = interface_address(&options.interface, port)?;
    let listen = ListenOptions {
        backlog: options.backlog,
        reuse_address: true,
        reuse_port: options.reuse_port,
        send_buffer: options.send_buffer,
        reset_on_close: options.reset_on_close,
    };
    let listener = bind_tcp(address, &listen)?;
    start_port(reactor, listener, factory)
}

/// Listens on the Unix-domain socket `path` with `factory` (Twisted's `listenUNIX`).
///
/// # Errors
///
/// [`ListenError::Transport`] if the path cannot be bound.
#[doc(alias = "listenUNIX")]
pub fn listen_unix<F: Factory>(
    reactor: &mut Reactor,
    path: &Path,
    factory: &Shared<F>,
    options: &UnixListenOptions,
) -> Result<ListeningPort, ListenError> {
    let listener = bind_unix(path, options.backlog)?;
    start_port(reactor, listener, factory)
}

fn start_port<F: Factory>(
    reactor: &mut Reactor,
    acceptor: impl Acceptor,
    factory: &Shared<F>,
) -> Result<ListeningPort, ListenError> {
    let (id, address) = Listener::start(reactor, acceptor, accept_with(factory.clone()))?;
    factory.start_use(reactor);
    let stopping = factory.clone();
    Listener::set_on_close(
        reactor,
        id,
        Box::new(move |reactor| stopping.stop_use(reactor)),
    );
    debug!("listening on {address}");
    Ok(ListeningPort { id, address })
}

/// What a port does with each accepted stream: ask the factory for a protocol and
/// start a connection with it.
fn accept_with<F: Factory>(factory: Shared<F>) -> OnAccept {
    Box::new(move |reactor, stream, peer| {
        // Nothing of user code is on the stack here (accepting is the reactor's
        // dispatch), so the factory is free.
        let built = panic::catch_unwind(AssertUnwindSafe(|| match factory.try_borrow_mut() {
            Some(mut factory) => factory.build_protocol(&peer),
            None => {
                debug_assert!(false, "the factory is borrowed across reactor turns");
                None
            }
        }));
        match built {
            Ok(Some(protocol)) => {
                let handler = ProtocolHandler::new(protocol, factory.clone());
                if let Err(e) = Connection::start(reactor, stream, peer.clone(), handler) {
                    warn!("cannot start connection from {peer}: {e}");
                }
            }
            Ok(None) => debug!("factory refused connection from {peer}"),
            Err(payload) => error!(
                "build_protocol panicked for {peer}: {}; connection refused",
                panic_message(payload.as_ref())
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_resolve_to_local_addresses() {
        use crate::resolver::{install_resolver, MemoryResolver};
        let hosts = MemoryResolver::parse("localhost=::1,127.0.0.1").unwrap();
        install_resolver(hosts);
        assert_eq!(
            interface_address("127.0.0.1", 80).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            interface_address("[::1]", 81).unwrap(),
            "[::1]:81".parse().unwrap()
        );
        assert!(interface_address("localhost", 0)
            .unwrap()
            .ip()
            .is_loopback());
        assert!(matches!(
            interface_address("unknown.test", 0),
            Err(ListenError::Interface { .. })
        ));
        for unbalanced in ["[::1", "::1]", "[127.0.0.1", "[]", ""] {
            assert!(
                matches!(
                    interface_address(unbalanced, 0),
                    Err(ListenError::Interface { .. })
                ),
                "{unbalanced:?}"
            );
        }
    }
}
