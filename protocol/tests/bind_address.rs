//! `ConnectOptions::bind_address` (Twisted's `connectTCP(..., bindAddress=...)`): the
//! connection leaves from the address and port asked for, as the server sees it.

mod util;

use std::net::{SocketAddr, TcpListener};

use protocol::{
    connect_tcp, ClientFactory, ConnectError, ConnectOptions, Connector, Context, Factory,
    Protocol, Shared,
};
use reactor::Reactor;
use transport::Address;
use util::turn_until;

/// Records the local address of the connection it makes, or why it failed.
#[derive(Debug, Default)]
struct Bound {
    host: Option<Address>,
    failed: Option<String>,
}

struct Quiet;

impl Protocol for Quiet {
    type Factory = Bound;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let host = cx.get_host().clone();
        cx.factory().host = Some(host);
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
}

impl Factory for Bound {
    type Protocol = Quiet;

    fn build_protocol(&mut self, _: &Address) -> Option<Quiet> {
        Some(Quiet)
    }
}

impl ClientFactory for Bound {
    type Data = ();
    fn client_connection_failed(
        &mut self,
        _: &mut Reactor,
        _: &Connector<Self>,
        reason: &ConnectError,
    ) {
        self.failed = Some(reason.to_string());
    }
}

/// A free port on `ip` (bound, then released).
fn free_port(ip: &str) -> u16 {
    let probe = TcpListener::bind((ip, 0)).expect("bind loopback");
    probe.local_addr().unwrap().port()
}

/// Connects to a std listener from `bind` and returns the peer address the server saw
/// and the local address our transport reports.
fn connect_from(bind: SocketAddr) -> (SocketAddr, Address) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut reactor = Reactor::new().unwrap();
    let factory = Shared::new(Bound::default());
    let options = ConnectOptions {
        bind_address: Some(bind),
        ..ConnectOptions::default()
    };
    connect_tcp(&mut reactor, "127.0.0.1", port, &factory, &options);
    let mut seen = None;
    turn_until(
        &mut reactor,
        "the connection from the bound address",
        || {
            if seen.is_none() {
                seen = listener.accept().ok().map(|(_, peer)| peer);
            }
            let factory = factory.borrow();
            assert!(factory.failed.is_none(), "{:?}", factory.failed);
            seen.is_some() && factory.host.is_some()
        },
    );
    let host = factory.borrow_mut().host.take().unwrap();
    (seen.unwrap(), host)
}

#[test]
fn the_server_sees_the_bound_source_address_and_port() {
    // 127.0.0.2 is loopback too (all of 127/8 is, on Linux), and not the address the
    // kernel would pick by itself: seeing it proves the bind.
    for ip in ["127.0.0.2", "127.0.0.1"] {
        let bind: SocketAddr = format!("{ip}:{}", free_port(ip)).parse().unwrap();
        let (peer, host) = connect_from(bind);
        assert_eq!(peer, bind, "the server's view");
        assert_eq!(host, Address::Tcp(bind), "the client's own view");
    }
}

#[test]
fn port_zero_binds_the_address_and_lets_the_kernel_pick_the_port() {
    let bind: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let (peer, host) = connect_from(bind);
    assert_eq!(peer.ip(), bind.ip());
    assert_ne!(peer.port(), 0);
    assert_eq!(host, Address::Tcp(peer));
}

#[test]
fn a_bind_address_in_use_fails_the_attempt() {
    // A listener holds the address and port: binding the client there must fail.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = holder.local_addr().unwrap();
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut reactor = Reactor::new().unwrap();
    let factory = Shared::new(Bound::default());
    let options = ConnectOptions {
        bind_address: Some(bind),
        ..ConnectOptions::default()
    };
    let port = target.local_addr().unwrap().port();
    connect_tcp(&mut reactor, "127.0.0.1", port, &factory, &options);
    turn_until(&mut reactor, "the attempt to fail", || {
        factory.borrow().failed.is_some()
    });
    assert!(factory.borrow().host.is_none());
}
