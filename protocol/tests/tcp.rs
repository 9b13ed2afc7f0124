//! The protocol layer end to end over real sockets: loopback TCP on port 0 (IPv4 and
//! IPv6) and Unix sockets. Every wait is bounded by a watchdog.

mod util;

use protocol::{
    connect_tcp, connect_unix, listen_tcp, listen_unix, with_protocol, ClientFactory, ConnectError,
    ConnectOptions, Connector, Context, DisconnectReason, Factory, Protocol, Shared,
    TcpListenOptions, UnixListenOptions,
};
use reactor::{DescriptorId, Reactor};
use std::cell::RefCell;
use std::rc::Rc;
use transport::Address;

use protocol::{install_resolver, MemoryResolver};
use util::{turn_a_while, turn_until};

// ===== the server: echoes, and panics on "boom" =====

#[derive(Debug, Default)]
struct Server {
    starts: u32,
    stops: u32,
    built: u32,
    /// How many connections to refuse (build_protocol answers None).
    refuse: u32,
    /// Close each connection as soon as it is made.
    close_at_once: bool,
    lost: Vec<String>,
}

struct Echo;

impl Protocol for Echo {
    type Factory = Server;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        if cx.factory().close_at_once {
            cx.lose_connection();
        }
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        if data.ends_with(b"boom") {
            panic!("boom");
        }
        cx.write(data);
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        cx.factory().lost.push(reason.to_string());
    }
}

impl Factory for Server {
    type Protocol = Echo;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Echo> {
        self.built += 1;
        if self.refuse > 0 {
            self.refuse -= 1;
            return None;
        }
        Some(Echo)
    }

    fn do_start(&mut self, _: &mut Reactor) {
        self.starts += 1;
    }

    fn do_stop(&mut self, _: &mut Reactor) {
        self.stops += 1;
    }
}

fn server() -> Shared<Server> {
    Shared::new(Server::default())
}

fn listen(reactor: &mut Reactor, interface: &str, factory: &Shared<Server>) -> Option<u16> {
    let options = TcpListenOptions {
        interface: interface.to_owned(),
        ..TcpListenOptions::default()
    };
    match listen_tcp(reactor, 0, factory, &options) {
        Ok(port) => port.get_host().port(),
        Err(e) => {
            eprintln!("cannot listen on {interface}: {e}; skipped");
            None
        }
    }
}

// ===== the client: sends a message, closes once `expect` bytes came back =====

#[derive(Debug, Default)]
struct Client {
    message: Vec<u8>,
    expect: usize,
    /// Refuse to build a protocol.
    refuse: bool,
    /// Call `stop_connecting` from `started_connecting`.
    stop_when_started: bool,
    starts: u32,
    stops: u32,
    /// Factory callbacks and protocol events, in order.
    events: Vec<String>,
    received: Vec<u8>,
    id: Option<DescriptorId>,
}

impl Client {
    fn sending(message: &[u8], expect: usize) -> Shared<Client> {
        Shared::new(Client {
            message: message.to_vec(),
            expect,
            ..Client::default()
        })
    }

    fn ended(&self) -> bool {
        self.events
            .iter()
            .any(|e| e.starts_with("failed") || e.starts_with("client lost"))
    }
}

/// Counts what came back on its own connection.
struct Sender {
    got: usize,
}

impl Protocol for Sender {
    type Factory = Client;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let message = {
            let mut client = cx.factory();
            client.events.push("made".into());
            client.id = Some(cx.id());
            client.message.clone()
        };
        cx.write(&message);
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        self.got += data.len();
        let done = {
            let mut client = cx.factory();
            client.received.extend_from_slice(data);
            self.got >= client.expect
        };
        if done {
            cx.lose_connection();
        }
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        cx.factory().events.push(format!("lost: {reason}"));
    }
}

impl Factory for Client {
    type Protocol = Sender;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Sender> {
        (!self.refuse).then_some(Sender { got: 0 })
    }

    fn do_start(&mut self, _: &mut Reactor) {
        self.starts += 1;
    }

    fn do_stop(&mut self, _: &mut Reactor) {
        self.stops += 1;
    }
}

fn classify(reason: &ConnectError) -> String {
    match reason {
        ConnectError::Failed(DisconnectReason::Refused) => "refused".into(),
        ConnectError::Lookup { host, .. } => format!("lookup {host}"),
        ConnectError::Cancelled => "cancelled".into(),
        ConnectError::Refused => "factory refused".into(),
        other => format!("other: {other}"),
    }
}

impl ClientFactory for Client {
    type Data = ();
    fn started_connecting(&mut self, reactor: &mut Reactor, connector: &Connector<Self>) {
        self.events.push("started".into());
        if self.stop_when_started {
            assert!(connector.stop_connecting(reactor));
        }
    }

    fn client_connection_failed(
        &mut self,
        _: &mut Reactor,
        _: &Connector<Self>,
        reason: &ConnectError,
    ) {
        self.events.push(format!("failed: {}", classify(reason)));
    }

    fn client_connection_lost(
        &mut self,
        _: &mut Reactor,
        _: &Connector<Self>,
        reason: &DisconnectReason,
    ) {
        self.events.push(format!("client lost: {reason}"));
    }
}

fn events(client: &Shared<Client>) -> Vec<String> {
    client.borrow().events.clone()
}

const CLEAN: [&str; 4] = [
    "started",
    "made",
    "lost: connection was closed cleanly",
    "client lost: connection was closed cleanly",
];

/// A port nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// ===== tests =====

#[test]
fn echo_round_trip_over_ipv4_and_ipv6() {
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for interface in ["127.0.0.1", "::1"] {
        let mut reactor = Reactor::new().unwrap();
        let factory = server();
        let Some(port) = listen(&mut reactor, interface, &factory) else {
            continue;
        };
        let client = Client::sending(&message, message.len());
        connect_tcp(
            &mut reactor,
            interface,
            port,
            &client,
            &ConnectOptions::default(),
        );
        turn_until(&mut reactor, "the echo", || client.borrow().ended());
        assert_eq!(client.borrow().received, message, "over {interface}");
        assert_eq!(events(&client), CLEAN, "over {interface}");
        turn_until(&mut reactor, "the server's side to close", || {
            !factory.borrow().lost.is_empty()
        });
        assert_eq!(factory.borrow().lost, ["connection was closed cleanly"]);
    }
}

#[test]
fn do_start_and_do_stop_come_once_around_all_ports() {
    let mut reactor = Reactor::new().unwrap();
    let factory = server();
    let options = TcpListenOptions::default();
    let first = listen_tcp(&mut reactor, 0, &factory, &options).unwrap();
    let second = listen_tcp(&mut reactor, 0, &factory, &options).unwrap();
    assert_eq!((factory.borrow().starts, factory.borrow().stops), (1, 0));
    assert!(first.stop_listening(&mut reactor));
    turn_a_while(&mut reactor, 3);
    assert_eq!((factory.borrow().starts, factory.borrow().stops), (1, 0));
    assert!(second.stop_listening(&mut reactor));
    turn_a_while(&mut reactor, 3);
    assert_eq!((factory.borrow().starts, factory.borrow().stops), (1, 1));
    assert!(!second.stop_listening(&mut reactor));
}

#[test]
fn do_start_and_do_stop_come_once_around_all_connectors() {
    let mut reactor = Reactor::new().unwrap();
    let port = listen(&mut reactor, "127.0.0.1", &server()).unwrap();
    // One factory, two connectors: a short exchange, and one that stays open.
    let client = Client::sending(b"a", 1);
    let short = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &client,
        &ConnectOptions::default(),
    );
    let long = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &client,
        &ConnectOptions::default(),
    );
    assert_eq!((client.borrow().starts, client.borrow().stops), (1, 0));
    client.borrow_mut().expect = 2; // the long one waits for more than comes
    turn_until(&mut reactor, "both connected and echoed", || {
        client.borrow().received.len() >= 2
    });
    short.disconnect(&mut reactor);
    turn_until(&mut reactor, "one connection to end", || {
        !short.is_connected() || !long.is_connected()
    });
    assert_eq!((client.borrow().starts, client.borrow().stops), (1, 0));
    long.disconnect(&mut reactor);
    turn_until(&mut reactor, "both connections to end", || {
        !short.is_connected() && !long.is_connected()
    });
    assert_eq!((client.borrow().starts, client.borrow().stops), (1, 1));
}

#[test]
fn build_protocol_returning_none_refuses_cleanly() {
    let mut reactor = Reactor::new().unwrap();
    let factory = Shared::new(Server {
        refuse: 1,
        ..Server::default()
    });
    let port = listen(&mut reactor, "127.0.0.1", &factory).unwrap();
    let refused = Client::sending(b"hello", 5);
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &refused,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the refused client to end", || {
        refused.borrow().ended()
    });
    assert!(refused.borrow().received.is_empty());
    // The port goes on serving.
    let welcome = Client::sending(b"hello", 5);
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &welcome,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the second client", || {
        welcome.borrow().ended()
    });
    assert_eq!(welcome.borrow().received, b"hello");
    assert_eq!(factory.borrow().built, 2);

    // A client factory that refuses: the attempt fails with ConnectError::Refused.
    let picky = Shared::new(Client {
        refuse: true,
        ..Client::default()
    });
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &picky,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the picky client", || picky.borrow().ended());
    assert_eq!(events(&picky), ["started", "failed: factory refused"]);
    assert_eq!((picky.borrow().starts, picky.borrow().stops), (1, 1));
}

#[test]
fn a_closed_port_fails_with_refused() {
    let mut reactor = Reactor::new().unwrap();
    let client = Client::sending(b"x", 1);
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        closed_port(),
        &client,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the refusal", || client.borrow().ended());
    assert_eq!(events(&client), ["started", "failed: refused"]);
    assert_eq!((client.borrow().starts, client.borrow().stops), (1, 1));
}

#[test]
fn an_unresolvable_name_fails_with_lookup() {
    install_resolver(MemoryResolver::new());
    let mut reactor = Reactor::new().unwrap();
    let client = Client::sending(b"x", 1);
    connect_tcp(
        &mut reactor,
        "unknown.test",
        80,
        &client,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the lookup", || client.borrow().ended());
    assert_eq!(events(&client), ["started", "failed: lookup unknown.test"]);
}

#[test]
fn stop_connecting_fails_with_cancelled() {
    let mut reactor = Reactor::new().unwrap();
    let port = listen(&mut reactor, "127.0.0.1", &server()).unwrap();
    // Before the attempt has begun.
    let client = Client::sending(b"x", 1);
    let connector = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &client,
        &ConnectOptions::default(),
    );
    assert!(connector.stop_connecting(&mut reactor));
    assert!(!connector.is_connecting());
    // The factory hears of it on the next turn, not from inside stop_connecting.
    assert!(events(&client).is_empty());
    turn_until(&mut reactor, "the cancellation", || client.borrow().ended());
    assert_eq!(events(&client), ["failed: cancelled"]);
    // While the name is being resolved (by a resolver that never answers).
    let questions = Rc::new(RefCell::new(Vec::new()));
    install_resolver(util::Hanging(questions.clone()));
    let client = Client::sending(b"x", 1);
    let connector = connect_tcp(
        &mut reactor,
        "slow.test",
        port,
        &client,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the attempt to start", || {
        !client.borrow().events.is_empty()
    });
    assert_eq!(questions.borrow().len(), 1, "the name is being resolved");
    assert!(connector.stop_connecting(&mut reactor));
    turn_until(&mut reactor, "the cancellation", || client.borrow().ended());
    assert_eq!(events(&client), ["started", "failed: cancelled"]);
    assert!(!connector.stop_connecting(&mut reactor));
    assert_eq!((client.borrow().starts, client.borrow().stops), (1, 1));
}

#[test]
fn a_factory_can_stop_its_own_attempt_from_started_connecting() {
    let mut reactor = Reactor::new().unwrap();
    let port = listen(&mut reactor, "127.0.0.1", &server()).unwrap();
    let client = Shared::new(Client {
        stop_when_started: true,
        ..Client::default()
    });
    let connector = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &client,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the cancellation", || client.borrow().ended());
    assert_eq!(events(&client), ["started", "failed: cancelled"]);
    turn_a_while(&mut reactor, 3);
    assert!(!connector.is_connected());
    assert_eq!((client.borrow().starts, client.borrow().stops), (1, 1));
}

#[test]
fn client_connection_lost_follows_the_server_closing() {
    let mut reactor = Reactor::new().unwrap();
    let factory = Shared::new(Server {
        close_at_once: true,
        ..Server::default()
    });
    let port = listen(&mut reactor, "127.0.0.1", &factory).unwrap();
    let client = Client::sending(b"", 1);
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &client,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the server to close", || {
        client.borrow().ended()
    });
    assert_eq!(events(&client), CLEAN);
}

#[test]
fn localhost_reaches_a_server_on_ipv4_only() {
    // As many systems answer: IPv6 first, which refuses; IPv4 is tried next.
    install_resolver(MemoryResolver::parse("localhost=::1,127.0.0.1").unwrap());
    let mut reactor = Reactor::new().unwrap();
    let port = listen(&mut reactor, "127.0.0.1", &server()).unwrap();
    let client = Client::sending(b"via localhost", 13);
    connect_tcp(
        &mut reactor,
        "localhost",
        port,
        &client,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the echo", || client.borrow().ended());
    assert_eq!(client.borrow().received, b"via localhost");
    assert_eq!(events(&client), CLEAN);
}

#[test]
fn unix_sockets_round_trip() {
    let dir = util::temp_dir("unix-echo");
    let path = dir.join("echo.sock");
    let mut reactor = Reactor::new().unwrap();
    let factory = server();
    let port = listen_unix(&mut reactor, &path, &factory, &UnixListenOptions::default()).unwrap();
    assert_eq!(port.get_host(), &Address::Unix(Some(path.clone())));
    let client = Client::sending(b"over a unix socket", 18);
    connect_unix(&mut reactor, &path, &client, &ConnectOptions::default());
    turn_until(&mut reactor, "the echo", || client.borrow().ended());
    assert_eq!(client.borrow().received, b"over a unix socket");
    assert_eq!(events(&client), CLEAN);
    port.stop_listening(&mut reactor);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_panic_closes_only_the_connection_it_happened_on() {
    let mut reactor = Reactor::new().unwrap();
    let factory = server();
    let port = listen(&mut reactor, "127.0.0.1", &factory).unwrap();
    let steady = Client::sending(b"hello", 10);
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &steady,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the first echo", || {
        steady.borrow().received.len() == 5
    });
    let doomed = Client::sending(b"boom", 1);
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &doomed,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the panic", || doomed.borrow().ended());
    assert!(doomed.borrow().received.is_empty());
    assert_eq!(factory.borrow().lost, ["protocol panicked: boom"]);
    // The other connection carries on.
    let id = steady.borrow().id.unwrap();
    with_protocol::<Sender, _>(&mut reactor, id, |_, cx| cx.write(b"hello")).unwrap();
    turn_until(&mut reactor, "the second echo", || steady.borrow().ended());
    assert_eq!(steady.borrow().received, b"hellohello");
    assert_eq!(events(&steady), CLEAN);
}
