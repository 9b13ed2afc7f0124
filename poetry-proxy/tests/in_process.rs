//! The proxy in-process on one reactor, over loopback: an upstream poet whose
//! behaviour each test scripts, the proxy, and clients, all on one thread. Every wait
//! is a bounded loop of reactor turns.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use poetry_proxy::{
    default_get_options, serve, GetOptions, ProxyEvent, ProxyFactory, ProxyOptions,
};
use protocol::prelude::*;
use protocol::reactor::DescriptorId;
use protocol::{with_protocol, ListeningPort};

const POEM: &[u8] = b"Here is my poem,\nline after line,\nto the last.\n";

/// How the upstream poet behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Sends the whole poem and closes.
    Whole,
    /// Sends this many bytes, then resets the connection.
    ResetAfter(usize),
    /// Sends this many bytes and waits for the test.
    Hold(usize),
}

#[derive(Debug)]
struct PoetFactory {
    mode: Mode,
    connections: u64,
    /// How each connection ended: cleanly or not.
    lost: Vec<bool>,
    held: Vec<DescriptorId>,
}

impl Factory for PoetFactory {
    type Protocol = Poet;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Poet> {
        self.connections += 1;
        Some(Poet)
    }
}

#[derive(Debug)]
struct Poet;

impl Poet {
    fn finish(cx: &mut Context<'_, Self>, from: usize) {
        cx.write(&POEM[from..]);
        cx.lose_connection();
    }
}

impl Protocol for Poet {
    type Factory = PoetFactory;
    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let mode = cx.factory().mode;
        match mode {
            Mode::Whole => Poet::finish(cx, 0),
            Mode::ResetAfter(n) => {
                cx.write(&POEM[..n]);
                // Let the bytes go before the reset.
                cx.call_later(Duration::from_millis(20), |_, cx| cx.abort_connection());
            }
            Mode::Hold(n) => {
                cx.write(&POEM[..n]);
                let id = cx.id();
                cx.factory().held.push(id);
            }
        }
    }
    fn data_received(&mut self, _cx: &mut Context<'_, Self>, _data: &[u8]) {}
    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        cx.factory().lost.push(reason.is_clean());
    }
}

/// A client of the proxy: what it got, and whether the close was clean.
#[derive(Debug, Default)]
struct Readers {
    done: Vec<(Vec<u8>, bool)>,
    next: usize,
}

impl Factory for Readers {
    type Protocol = Reader;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Reader> {
        Some(Reader(Vec::new()))
    }
}

impl ClientFactory for Readers {
    type Data = ();
    fn client_connection_failed(
        &mut self,
        _: &mut Reactor,
        _: &Connector<Self>,
        _reason: &ConnectError,
    ) {
        // A reset that arrives before the connection is seen (the proxy refusing one
        // over its cap, at once) fails the connection: nothing, and not clean.
        self.done.push((Vec::new(), false));
    }
}

#[derive(Debug)]
struct Reader(Vec<u8>);

impl Protocol for Reader {
    type Factory = Readers;
    fn data_received(&mut self, _cx: &mut Context<'_, Self>, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        let poem = std::mem::take(&mut self.0);
        cx.factory().done.push((poem, reason.is_clean()));
    }
}

struct World {
    reactor: Reactor,
    poet: Shared<PoetFactory>,
    _upstream: ListeningPort,
    proxy: Shared<ProxyFactory>,
    proxy_port: u16,
    events: Rc<RefCell<Vec<ProxyEvent>>>,
    readers: Shared<Readers>,
}

impl World {
    fn new(mode: Mode, fetch: GetOptions) -> World {
        World::with_options(
            mode,
            ProxyOptions {
                fetch,
                ..ProxyOptions::default()
            },
        )
    }

    fn with_options(mode: Mode, options: ProxyOptions) -> World {
        let mut reactor = Reactor::new().unwrap();
        let poet = Shared::new(PoetFactory {
            mode,
            connections: 0,
            lost: Vec::new(),
            held: Vec::new(),
        });
        let upstream = listen_tcp(&mut reactor, 0, &poet, &TcpListenOptions::default()).unwrap();
        let upstream_port = upstream.get_host().port().unwrap();
        let (port, proxy) = serve(&mut reactor, "127.0.0.1", upstream_port, options).unwrap();
        let events = Rc::new(RefCell::new(Vec::new()));
        let sink = events.clone();
        proxy
            .borrow()
            .service()
            .borrow_mut()
            .set_event_hook(move |e| sink.borrow_mut().push(e));
        World {
            reactor,
            poet,
            _upstream: upstream,
            proxy,
            proxy_port: port.get_host().port().unwrap(),
            events,
            readers: Shared::new(Readers::default()),
        }
    }

    /// Starts a client of the proxy.
    fn client(&mut self) -> Connector<Readers> {
        self.readers.borrow_mut().next += 1;
        connect_tcp(
            &mut self.reactor,
            "127.0.0.1",
            self.proxy_port,
            &self.readers,
            &ConnectOptions::default(),
        )
    }

    /// Turns the reactor until `done` holds (at most 10 s).
    fn until(&mut self, what: &str, done: impl Fn(&mut World) -> bool) {
        for _ in 0..1000 {
            if done(self) {
                return;
            }
            self.reactor
                .iterate(Some(Duration::from_millis(10)))
                .unwrap();
        }
        panic!("never happened: {what}");
    }

    fn finished(&self) -> usize {
        self.readers.borrow().done.len()
    }

    fn waiting(&self) -> usize {
        self.proxy.borrow().service().borrow().waiting()
    }

    fn events(&self) -> Vec<ProxyEvent> {
        self.events.borrow().clone()
    }

    /// The held upstream connections send the rest of the poem and close.
    fn release(&mut self) {
        let held = std::mem::take(&mut self.poet.borrow_mut().held);
        let from = match self.poet.borrow().mode {
            Mode::Hold(n) => n,
            _ => 0,
        };
        for id in held {
            with_protocol::<Poet, _>(&mut self.reactor, id, |_, cx| Poet::finish(cx, from));
        }
    }
}

#[test]
fn the_second_client_is_served_from_the_cache() {
    let mut world = World::new(Mode::Whole, default_get_options());
    world.client();
    world.until("the first poem", |w| w.finished() == 1);
    world.client();
    world.until("the second poem", |w| w.finished() == 2);
    assert_eq!(
        world.readers.borrow().done,
        [(POEM.to_vec(), true), (POEM.to_vec(), true)]
    );
    assert_eq!(
        world.events(),
        [ProxyEvent::Fetching, ProxyEvent::UsingCache]
    );
    assert_eq!(world.poet.borrow().connections, 1);
}

#[test]
fn concurrent_first_requests_share_one_download() {
    let mut world = World::new(Mode::Hold(5), default_get_options());
    for _ in 0..3 {
        world.client();
    }
    world.until("three clients waiting", |w| w.waiting() == 3);
    world.until("the upstream holding", |w| !w.poet.borrow().held.is_empty());
    world.release();
    world.until("three poems", |w| w.finished() == 3);
    assert!(world
        .readers
        .borrow()
        .done
        .iter()
        .all(|(poem, clean)| poem == POEM && *clean));
    assert_eq!(world.poet.borrow().connections, 1, "one upstream download");
    assert_eq!(world.events(), [ProxyEvent::Fetching]);
}

#[test]
fn an_upstream_that_resets_mid_poem_is_never_cached_and_its_clients_are_reset() {
    let unhandled = deferred::catch_unhandled();
    let mut world = World::new(Mode::ResetAfter(10), default_get_options());
    world.client();
    world.client();
    world.until("both clients ended", |w| w.finished() == 2);
    for (poem, clean) in &world.readers.borrow().done {
        assert!(
            !clean,
            "a cut download must reset its clients, not close cleanly"
        );
        assert!(
            poem.is_empty(),
            "nothing of a cut poem is relayed: {poem:?}"
        );
    }
    let stats = world.proxy.borrow().service().borrow().stats();
    assert_eq!((stats.downloads, stats.failed, stats.fetched), (1, 1, 0));
    assert!(world.proxy.borrow().service().borrow().cached().is_none());
    // The next client starts a new download, which this time is whole.
    world.poet.borrow_mut().mode = Mode::Whole;
    world.client();
    world.until("a third poem", |w| w.finished() == 3);
    assert_eq!(world.readers.borrow().done[2], (POEM.to_vec(), true));
    assert_eq!(world.events(), [ProxyEvent::Fetching, ProxyEvent::Fetching]);
    assert!(unhandled.take().is_empty(), "every failure was handled");
}

#[test]
fn the_download_is_cancelled_when_the_last_waiting_client_leaves() {
    let unhandled = deferred::catch_unhandled();
    let mut world = World::new(Mode::Hold(5), default_get_options());
    let first = world.client();
    let second = world.client();
    world.until("two clients waiting", |w| w.waiting() == 2);
    first.disconnect(&mut world.reactor);
    world.until("one client left", |w| w.waiting() == 1);
    assert_eq!(
        world.events(),
        [ProxyEvent::Fetching],
        "one leaving cancels nothing"
    );
    second.disconnect(&mut world.reactor);
    world.until("the upstream connection reset", |w| {
        !w.poet.borrow().lost.is_empty()
    });
    assert_eq!(
        world.poet.borrow().lost,
        [false],
        "the upstream connection is aborted"
    );
    assert_eq!(
        world.events(),
        [ProxyEvent::Fetching, ProxyEvent::Cancelling]
    );
    let stats = world.proxy.borrow().service().borrow().stats();
    assert_eq!((stats.cancelled, stats.fetched), (1, 0));
    // A new client starts a new download.
    world.poet.borrow_mut().mode = Mode::Whole;
    world.client();
    world.until("a poem after the cancel", |w| {
        w.readers.borrow().done.iter().any(|(p, c)| p == POEM && *c)
    });
    assert_eq!(world.poet.borrow().connections, 2);
    assert!(unhandled.take().is_empty(), "every failure was handled");
}

#[test]
fn a_poem_over_the_bound_is_neither_relayed_nor_cached() {
    let fetch = GetOptions {
        max_poem_bytes: 10,
        ..default_get_options()
    };
    let mut world = World::new(Mode::Whole, fetch);
    world.client();
    world.until("the client ended", |w| w.finished() == 1);
    assert_eq!(world.readers.borrow().done, [(Vec::new(), false)]);
    assert!(world.proxy.borrow().service().borrow().cached().is_none());
    let fetch = GetOptions {
        max_poem_bytes: POEM.len() as u64,
        ..default_get_options()
    };
    let mut world = World::new(Mode::Whole, fetch);
    world.client();
    world.until("the client ended", |w| w.finished() == 1);
    assert_eq!(
        world.readers.borrow().done,
        [(POEM.to_vec(), true)],
        "a poem at the bound is fine"
    );
}

#[test]
fn an_upstream_that_is_not_there_resets_the_client() {
    let mut reactor = Reactor::new().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let (port, proxy) = serve(
        &mut reactor,
        "127.0.0.1",
        dead_port,
        ProxyOptions::default(),
    )
    .unwrap();
    let readers = Shared::new(Readers::default());
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port.get_host().port().unwrap(),
        &readers,
        &ConnectOptions::default(),
    );
    for _ in 0..1000 {
        if !readers.borrow().done.is_empty() {
            break;
        }
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(readers.borrow().done, [(Vec::new(), false)]);
    assert_eq!(proxy.borrow().service().borrow().stats().failed, 1);
}

#[test]
fn clients_over_the_cap_are_refused_with_a_reset() {
    let options = ProxyOptions {
        max_connections: 2,
        ..ProxyOptions::default()
    };
    let mut world = World::with_options(Mode::Hold(5), options);
    for _ in 0..3 {
        world.client();
    }
    world.until("one refused", |w| w.finished() == 1);
    assert_eq!(
        world.readers.borrow().done,
        [(Vec::new(), false)],
        "refused: nothing, and a reset (a clean close would be a whole, empty poem)"
    );
    assert_eq!(world.proxy.borrow().refused(), 1);
    assert_eq!(world.waiting(), 2);
    world.until("the upstream holding", |w| !w.poet.borrow().held.is_empty());
    world.release();
    world.until("the two admitted served", |w| w.finished() == 3);
    assert_eq!(
        world
            .readers
            .borrow()
            .done
            .iter()
            .filter(|(p, c)| p == POEM && *c)
            .count(),
        2
    );
}
