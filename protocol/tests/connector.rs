//! The connector's life cycle (issue 17, items 6 and 7): calls into the connector from
//! `connection_made` see a connection, not an attempt, and a panicking
//! `started_connecting` cannot leave it stuck. Real sockets on loopback only.

mod util;

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use protocol::{
    connect_tcp, install_resolver, listen_tcp, Answer, ClientFactory, ConnectError, ConnectOptions,
    Connector, Context, DisconnectReason, Factory, MemoryResolver, Protocol, ReconnectPolicy,
    ReconnectingClientFactory, Resolver, Shared, TcpListenOptions,
};
use reactor::{ManualClock, Reactor};
use transport::Address;
use util::{turn_a_while, turn_until};

// ===== a server that keeps every connection open and counts them =====

#[derive(Debug, Default)]
struct Holder {
    accepted: u32,
    open: u32,
}

struct Held;

impl Protocol for Held {
    type Factory = Holder;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let mut holder = cx.factory();
        holder.accepted += 1;
        holder.open += 1;
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, _: &DisconnectReason) {
        cx.factory().open -= 1;
    }
}

impl Factory for Holder {
    type Protocol = Held;

    fn build_protocol(&mut self, _: &Address) -> Option<Held> {
        Some(Held)
    }
}

fn holding_server(reactor: &mut Reactor) -> (Shared<Holder>, u16) {
    let server = Shared::new(Holder::default());
    let port = listen_tcp(reactor, 0, &server, &TcpListenOptions::default()).unwrap();
    (server, port.get_host().port().unwrap())
}

// ===== a client that acts on its own connector from connection_made =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InMade {
    Disconnect,
    StopTrying,
    /// `stop_connecting`, with a factory that connects again after every failure.
    StopConnectingAndRetryOnFailure,
    Nothing,
}

#[derive(Debug)]
struct Client {
    in_made: InMade,
    panic_when_started: bool,
    /// The back-off the connector is made with (none with
    /// `StopConnectingAndRetryOnFailure`, whose factory retries by hand).
    policy: ReconnectPolicy,
    /// The wrapper the client connects through, for `stop_trying` (taken out at the
    /// end of a test: it refers to the factory).
    reconnecting: Option<ReconnectingClientFactory<Client>>,
    connector: Option<Connector<Client>>,
    /// What stop_connecting / stop_trying answered from connection_made.
    stop_answer: Option<bool>,
    events: Vec<String>,
}

impl Client {
    fn new(in_made: InMade) -> Shared<Client> {
        let policy = ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        };
        Shared::new(Client {
            in_made,
            panic_when_started: false,
            policy,
            reconnecting: None,
            connector: None,
            stop_answer: None,
            events: Vec::new(),
        })
    }

    fn has(&self, event: &str) -> bool {
        self.events.iter().any(|e| e.starts_with(event))
    }
}

struct Talker;

impl Protocol for Talker {
    type Factory = Client;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let mut client = cx.factory();
        let connector = client.connector.clone().expect("built by a connector");
        let state = (connector.is_connected(), connector.is_connecting());
        client.events.push(format!(
            "made: connected {}, connecting {}",
            state.0, state.1
        ));
        match client.in_made {
            InMade::Disconnect => connector.disconnect(cx.reactor()),
            InMade::StopTrying => {
                let reconnecting = client.reconnecting.clone().expect("connected through it");
                reconnecting.stop_trying(cx.reactor());
            }
            InMade::StopConnectingAndRetryOnFailure => {
                client.stop_answer = Some(connector.stop_connecting(cx.reactor()));
            }
            InMade::Nothing => {}
        }
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, _: &DisconnectReason) {
        cx.factory().events.push("lost".into());
    }
}

impl Factory for Client {
    type Protocol = Talker;

    fn build_protocol(&mut self, _: &Address) -> Option<Talker> {
        Some(Talker)
    }

    fn do_start(&mut self, _: &mut Reactor) {
        self.events.push("do_start".into());
    }

    fn do_stop(&mut self, _: &mut Reactor) {
        self.events.push("do_stop".into());
    }
}

impl ClientFactory for Client {
    type Data = ();
    fn build_client_protocol(
        &mut self,
        connector: &Connector<Self>,
        _: &Address,
    ) -> Option<Talker> {
        self.connector = Some(connector.clone());
        Some(Talker)
    }

    fn started_connecting(&mut self, _: &mut Reactor, _: &Connector<Self>) {
        self.events.push("started".into());
        if self.panic_when_started {
            panic!("started_connecting panics");
        }
    }

    fn client_connection_failed(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        self.events.push(format!("failed: {reason}"));
        if self.in_made == InMade::StopConnectingAndRetryOnFailure {
            connector.connect(reactor);
        }
    }

    fn client_connection_lost(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        _: &DisconnectReason,
    ) {
        let _ = (reactor, connector);
        self.events.push("client lost".into());
    }
}

/// Connects through a `ReconnectingClientFactory` with the client's policy, except
/// for the client that retries by hand.
fn connect(reactor: &mut Reactor, port: u16, client: &Shared<Client>) -> Connector<Client> {
    let options = ConnectOptions::default();
    if client.borrow().in_made == InMade::StopConnectingAndRetryOnFailure {
        return connect_tcp(reactor, "127.0.0.1", port, client, &options);
    }
    let policy = client.borrow().policy;
    let reconnecting = ReconnectingClientFactory::with_policy(client, policy);
    client.borrow_mut().reconnecting = Some(reconnecting.clone());
    connect_tcp(reactor, "127.0.0.1", port, &reconnecting, &options)
}

fn events(client: &Shared<Client>) -> Vec<String> {
    client.borrow().events.clone()
}

#[test]
fn disconnect_from_connection_made_closes_the_connection() {
    let mut reactor = Reactor::new().unwrap();
    let (server, port) = holding_server(&mut reactor);
    let client = Client::new(InMade::Disconnect);
    client.borrow_mut().policy.max_retries = Some(0);
    let connector = connect(&mut reactor, port, &client);
    turn_until(&mut reactor, "the connection to end", || {
        client.borrow().has("do_stop")
    });
    // A connection was closed, not an attempt cancelled; the factory's use ended
    // after the connection did.
    assert_eq!(
        events(&client),
        [
            "do_start",
            "started",
            "made: connected true, connecting false",
            "lost",
            "client lost",
            "do_stop"
        ]
    );
    turn_until(&mut reactor, "the server to see the close", || {
        server.borrow().open == 0
    });
    assert_eq!(server.borrow().accepted, 1);
    assert!(!connector.is_connected() && !connector.is_connecting());
}

#[test]
fn stop_trying_from_connection_made_keeps_the_connection() {
    let mut reactor = Reactor::new().unwrap();
    let (server, port) = holding_server(&mut reactor);
    let client = Client::new(InMade::StopTrying);
    let connector = connect(&mut reactor, port, &client);
    turn_until(&mut reactor, "the connection", || server.borrow().open == 1);
    turn_a_while(&mut reactor, 5);
    // The open connection is untouched: no failure, the factory still in use.
    assert_eq!(
        events(&client),
        [
            "do_start",
            "started",
            "made: connected true, connecting false"
        ]
    );
    assert!(connector.is_connected());
    // When it ends, the policy does not retry (it was told to stop).
    connector.disconnect(&mut reactor);
    turn_until(&mut reactor, "the end", || client.borrow().has("do_stop"));
    turn_a_while(&mut reactor, 5);
    assert_eq!(
        events(&client),
        [
            "do_start",
            "started",
            "made: connected true, connecting false",
            "lost",
            "client lost",
            "do_stop"
        ]
    );
    assert_eq!(connector.retry_delay(), None);
    let reconnecting = client.borrow_mut().reconnecting.take().unwrap();
    assert!(!reconnecting.is_trying());
    assert_eq!(server.borrow().accepted, 1);
}

#[test]
fn stop_connecting_from_connection_made_cannot_open_a_second_connection() {
    let mut reactor = Reactor::new().unwrap();
    let (server, port) = holding_server(&mut reactor);
    let client = Client::new(InMade::StopConnectingAndRetryOnFailure);
    let connector = connect(&mut reactor, port, &client);
    turn_until(&mut reactor, "the connection", || server.borrow().open == 1);
    turn_a_while(&mut reactor, 10);
    // There was no attempt to stop: nothing failed, nothing retried.
    assert_eq!(client.borrow().stop_answer, Some(false));
    assert_eq!(
        events(&client),
        [
            "do_start",
            "started",
            "made: connected true, connecting false"
        ]
    );
    assert_eq!((server.borrow().accepted, server.borrow().open), (1, 1));
    assert!(connector.is_connected());
    // The connector still knows its connection.
    connector.disconnect(&mut reactor);
    turn_until(&mut reactor, "the close", || server.borrow().open == 0);
}

#[test]
fn a_panic_in_started_connecting_does_not_leave_the_connector_stuck() {
    let mut reactor = Reactor::new().unwrap();
    let (server, port) = holding_server(&mut reactor);
    let client = Client::new(InMade::Nothing);
    client.borrow_mut().panic_when_started = true;
    let connector = connect(&mut reactor, port, &client);
    turn_until(&mut reactor, "the connection", || {
        client
            .borrow()
            .has("made: connected true, connecting false")
    });
    assert!(connector.is_connected());
    assert_eq!(server.borrow().accepted, 1);
    connector.disconnect(&mut reactor);
    turn_until(&mut reactor, "the end", || {
        client.borrow().has("client lost")
    });

    // A refused attempt still fails and lets go of the factory.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::new(InMade::Nothing);
    {
        let mut c = client.borrow_mut();
        c.panic_when_started = true;
        c.policy.max_retries = Some(0);
    }
    let connector = connect(&mut reactor, closed, &client);
    turn_until(&mut reactor, "the failure", || {
        client.borrow().has("do_stop")
    });
    assert_eq!(
        events(&client),
        [
            "do_start",
            "started",
            "failed: connection was refused",
            "do_stop"
        ]
    );
    assert!(
        connector.connect(&mut reactor),
        "the connector is free again"
    );
}

// ===== the connect timeout and name resolution (issue 17, "confirm or fix") =====

/// A resolver that keeps every question and never answers.
struct Hanging(Rc<RefCell<Vec<Answer>>>);

impl Resolver for Hanging {
    fn resolve(&self, _: &mut Reactor, _: &str, _: u16, answer: Answer) {
        self.0.borrow_mut().push(answer);
    }

    fn resolve_now(&self, _: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
        Err(io::Error::new(io::ErrorKind::TimedOut, "hanging"))
    }
}

#[test]
fn the_connect_timeout_starts_before_name_resolution() {
    let questions = Rc::new(RefCell::new(Vec::new()));
    install_resolver(Hanging(questions.clone()));
    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
    let client = Client::new(InMade::Nothing);
    client.borrow_mut().policy.max_retries = Some(0);
    let options = ConnectOptions {
        timeout: Some(Duration::from_secs(5)),
        ..ConnectOptions::default()
    };
    let connector = connect_tcp(&mut reactor, "slow.test", 80, &client, &options);
    turn_a_while(&mut reactor, 3);
    assert_eq!(questions.borrow().len(), 1, "the name is being resolved");
    assert!(connector.is_connecting());
    clock.advance(Duration::from_millis(4999));
    turn_a_while(&mut reactor, 3);
    assert_eq!(events(&client), ["do_start", "started"]);
    clock.advance(Duration::from_millis(1));
    turn_until(&mut reactor, "the timeout", || {
        client.borrow().has("do_stop")
    });
    assert_eq!(
        events(&client),
        [
            "do_start",
            "started",
            "failed: connection timed out",
            "do_stop"
        ]
    );
    // A late answer finds no one waiting.
    questions.borrow_mut().clear();
    turn_a_while(&mut reactor, 3);
    assert_eq!(client.borrow().events.len(), 4);
    assert!(!connector.is_connecting());
}

#[test]
fn a_refused_address_moves_on_to_the_next_one() {
    let mut hosts = MemoryResolver::new();
    // 127.0.0.2 is loopback too, but nothing listens there: it refuses.
    hosts.insert(
        "two.test",
        ["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()],
    );
    install_resolver(hosts);
    let mut reactor = Reactor::new().unwrap();
    let (server, port) = holding_server(&mut reactor);
    let client = Client::new(InMade::Nothing);
    let connector = connect_tcp(
        &mut reactor,
        "two.test",
        port,
        &client,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the connection", || server.borrow().open == 1);
    assert!(connector.is_connected());
    assert!(!client.borrow().has("failed"));
    connector.disconnect(&mut reactor);
    turn_until(&mut reactor, "the close", || server.borrow().open == 0);
}
