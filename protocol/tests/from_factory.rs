//! Tests built from factories (`ProtocolTest::from_factory`, `from_client_factory`,
//! `Loopback::from_factories`): the factory hears, in memory, what a listening port
//! or a connector would tell it, in the same order; and a connector's value reaches
//! every callback about it.

use std::cell::RefCell;
use std::rc::Rc;

use protocol::testing::{Loopback, ProtocolTest, StartError};
use protocol::{
    Address, ClientFactory, ConnectError, Connector, Context, DisconnectReason, Factory, Protocol,
    Shared,
};
use reactor::Reactor;

/// What a factory and its protocols were told, in order, shared by both sides.
type Events = Rc<RefCell<Vec<String>>>;

/// A factory that records everything, refuses when told to, and tags its protocols
/// with the connector's value (client side) or a count (server side).
struct Recording {
    events: Events,
    refuse: bool,
    /// After a loss, connect the same connector again.
    reconnect: bool,
    built: u32,
}

impl Recording {
    fn new(events: &Events) -> Shared<Recording> {
        Shared::new(Recording {
            events: events.clone(),
            refuse: false,
            reconnect: false,
            built: 0,
        })
    }

    fn log(&self, event: impl Into<String>) {
        self.events.borrow_mut().push(event.into());
    }
}

struct Tagged {
    tag: String,
}

impl Protocol for Tagged {
    type Factory = Recording;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().log(format!("{}: made", self.tag));
        cx.write(self.tag.as_bytes());
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        let text = String::from_utf8_lossy(data).into_owned();
        cx.factory().log(format!("{}: got {text}", self.tag));
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        let clean = if reason.is_clean() {
            "clean"
        } else {
            "not clean"
        };
        cx.factory().log(format!("{}: lost, {clean}", self.tag));
    }
}

impl Factory for Recording {
    type Protocol = Tagged;

    fn build_protocol(&mut self, peer: &Address) -> Option<Tagged> {
        let memory = matches!(peer, Address::Memory(_));
        self.log(format!("build_protocol (memory peer: {memory})"));
        self.built += 1;
        (!self.refuse).then(|| Tagged {
            tag: format!("server {}", self.built),
        })
    }

    fn do_start(&mut self, _: &mut Reactor) {
        self.log("do_start");
    }

    fn do_stop(&mut self, _: &mut Reactor) {
        self.log("do_stop");
    }
}

impl ClientFactory for Recording {
    type Data = &'static str;

    fn build_client_protocol(
        &mut self,
        connector: &Connector<Self>,
        _: &Address,
    ) -> Option<Tagged> {
        self.log(format!("build_client_protocol {}", connector.data()));
        (!self.refuse).then(|| Tagged {
            tag: connector.data().to_string(),
        })
    }

    fn started_connecting(&mut self, _: &mut Reactor, connector: &Connector<Self>) {
        self.log(format!("started_connecting {}", connector.data()));
    }

    fn client_connection_failed(
        &mut self,
        _: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        self.log(format!("failed {}: {reason}", connector.data()));
    }

    fn client_connection_lost(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        _: &DisconnectReason,
    ) {
        self.log(format!("client lost {}", connector.data()));
        if self.reconnect {
            connector.connect(reactor);
        }
    }
}

fn taken(events: &Events) -> Vec<String> {
    std::mem::take(&mut *events.borrow_mut())
}

#[test]
fn a_server_factory_is_used_as_a_port_uses_it() {
    let events = Events::default();
    let factory = Recording::new(&events);
    let mut test = ProtocolTest::from_factory(&factory).unwrap();
    assert_eq!(test.take_written(), b"server 1");
    test.feed(b"hi");
    assert_eq!(factory.users(), 1);
    test.disconnect_peer(false);
    assert_eq!(
        taken(&events),
        [
            "do_start",
            "build_protocol (memory peer: true)",
            "server 1: made",
            "server 1: got hi",
            "server 1: lost, clean",
            "do_stop"
        ]
    );
    assert_eq!(factory.users(), 0);
}

#[test]
fn a_server_factory_that_refuses_is_started_and_stopped() {
    let events = Events::default();
    let factory = Recording::new(&events);
    factory.borrow_mut().refuse = true;
    assert_eq!(
        ProtocolTest::from_factory(&factory).err(),
        Some(StartError::Refused)
    );
    assert_eq!(
        taken(&events),
        ["do_start", "build_protocol (memory peer: true)", "do_stop"]
    );
    assert_eq!(factory.users(), 0);
}

#[test]
fn a_borrowed_server_factory_is_an_error_not_a_panic() {
    let events = Events::default();
    let factory = Recording::new(&events);
    let guard = factory.borrow();
    let outcome = ProtocolTest::from_factory(&factory).err();
    drop(guard);
    assert_eq!(outcome, Some(StartError::FactoryBorrowed));
    assert!(
        !taken(&events)
            .iter()
            .any(|e| e.starts_with("build_protocol")),
        "no protocol is built from a borrowed factory"
    );
    assert_eq!(factory.users(), 0);
    // Once the guard is gone the same factory serves a test.
    assert!(ProtocolTest::from_factory(&factory).is_ok());
}

#[test]
fn a_client_factory_is_used_as_a_connector_uses_it() {
    let events = Events::default();
    let factory = Recording::new(&events);
    let mut test = ProtocolTest::from_client_factory(&factory, "task 7").unwrap();
    assert_eq!(test.take_written(), b"task 7");
    test.feed(b"poem");
    test.disconnect_peer(false);
    assert_eq!(
        taken(&events),
        [
            "do_start",
            "started_connecting task 7",
            "build_client_protocol task 7",
            "task 7: made",
            "task 7: got poem",
            "task 7: lost, clean",
            "client lost task 7",
            "do_stop"
        ]
    );
}

#[test]
fn a_client_factory_that_refuses_hears_the_failure() {
    let events = Events::default();
    let factory = Recording::new(&events);
    factory.borrow_mut().refuse = true;
    let refused = ProtocolTest::from_client_factory(&factory, "task 1");
    assert_eq!(refused.err(), Some(StartError::Refused));
    let refused = ConnectError::Refused.to_string();
    assert_eq!(
        taken(&events),
        [
            "do_start".to_owned(),
            "started_connecting task 1".to_owned(),
            "build_client_protocol task 1".to_owned(),
            format!("failed task 1: {refused}"),
            "do_stop".to_owned()
        ]
    );
}

#[test]
fn an_in_memory_connector_connects_once_and_is_refused_after() {
    let events = Events::default();
    let factory = Recording::new(&events);
    factory.borrow_mut().reconnect = true;
    let mut test = ProtocolTest::from_client_factory(&factory, "again").unwrap();
    test.disconnect_peer(false);
    test.pump();
    let failed = ConnectError::Failed(DisconnectReason::Refused).to_string();
    let events = taken(&events);
    assert_eq!(
        events[events.len() - 4..],
        [
            "client lost again".to_owned(),
            "started_connecting again".to_owned(),
            format!("failed again: {failed}"),
            "do_stop".to_owned()
        ]
    );
    // One use from the first attempt to the last failure.
    assert_eq!(events.iter().filter(|e| *e == "do_start").count(), 1);
    assert_eq!(events.iter().filter(|e| *e == "do_stop").count(), 1);
}

#[test]
fn one_factory_tells_its_connectors_apart_by_their_values() {
    let events = Events::default();
    let factory = Recording::new(&events);
    let mut first = ProtocolTest::from_client_factory(&factory, "first").unwrap();
    let mut second = ProtocolTest::from_client_factory(&factory, "second").unwrap();
    assert_eq!(first.take_written(), b"first");
    assert_eq!(second.take_written(), b"second");
    second.disconnect_peer(true);
    first.disconnect_peer(false);
    let events = taken(&events);
    let ends: Vec<&String> = events.iter().filter(|e| e.contains("lost")).collect();
    assert_eq!(
        ends,
        [
            "second: lost, not clean",
            "client lost second",
            "first: lost, clean",
            "client lost first"
        ]
    );
}

#[test]
fn a_loopback_from_factories_runs_both_sides_hooks() {
    let (client_events, server_events) = (Events::default(), Events::default());
    let client = Recording::new(&client_events);
    let server = Recording::new(&server_events);
    let mut pair = Loopback::from_factories(&client, "c", &server).unwrap();
    assert_eq!((client.users(), server.users()), (1, 1));
    pair.with_client(|_, cx| cx.lose_connection());
    assert!(pair.client_reason().is_some_and(|r| r.is_clean()));
    assert!(pair.server_reason().is_some_and(|r| r.is_clean()));
    assert_eq!(
        taken(&client_events),
        [
            "do_start",
            "started_connecting c",
            "build_client_protocol c",
            "c: made",
            "c: got server 1",
            "c: lost, clean",
            "client lost c",
            "do_stop"
        ]
    );
    assert_eq!(
        taken(&server_events),
        [
            "do_start",
            "build_protocol (memory peer: true)",
            "server 1: made",
            "server 1: got c",
            "server 1: lost, clean",
            "do_stop"
        ]
    );
}

#[test]
fn a_loopback_is_refused_by_either_factory() {
    let events = Events::default();
    let (client, server) = (Recording::new(&events), Recording::new(&events));
    server.borrow_mut().refuse = true;
    assert_eq!(
        Loopback::from_factories(&client, "c", &server).err(),
        Some(StartError::Refused)
    );
    // The server refused first: the client never tried.
    assert!(!taken(&events)
        .iter()
        .any(|e| e.contains("started_connecting")));
    server.borrow_mut().refuse = false;
    client.borrow_mut().refuse = true;
    assert_eq!(
        Loopback::from_factories(&client, "c", &server).err(),
        Some(StartError::Refused)
    );
    assert!(taken(&events).iter().any(|e| e.starts_with("failed c")));
    assert_eq!((client.users(), server.users()), (0, 0));
}
