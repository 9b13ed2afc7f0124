//! Connecting and listening: refusals, timeouts, and round trips over TCP (IPv4 and
//! IPv6) and Unix sockets through `Listener` and `Connecting`.

mod util;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use reactor::{ManualClock, Reactor};
use transport::{
    bind_tcp, bind_unix, start_connect_tcp, start_connect_unix, Address, Connecting, Connection,
    ListenOptions, Listener, OnConnect, Stream,
};
use util::{ended, Ended, Probe, Record, LIMIT};

type Outcome = Rc<RefCell<Option<Result<Box<dyn Stream>, Ended>>>>;

/// A connect callback that keeps the outcome for the test to look at.
fn keep_outcome() -> (OnConnect, Outcome) {
    let outcome: Outcome = Rc::new(RefCell::new(None));
    let keep = outcome.clone();
    let on_done: OnConnect = Box::new(move |_, result| {
        *keep.borrow_mut() = Some(result.map_err(|reason| ended(&reason)));
    });
    (on_done, outcome)
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut families = vec!["127.0.0.1:0"];
    if util::ipv6_available() {
        families.push("[::1]:0");
    }
    for family in families {
        // A port that was just bound and closed: nothing listens there.
        let target = std::net::TcpListener::bind(family)
            .unwrap()
            .local_addr()
            .unwrap();
        let mut reactor = Reactor::new().unwrap();
        let stream = start_connect_tcp(target, None).expect("a non-blocking connect starts");
        let (on_done, outcome) = keep_outcome();
        Connecting::start(
            &mut reactor,
            Box::new(stream),
            Address::Tcp(target),
            Some(LIMIT),
            on_done,
        )
        .unwrap();
        util::turn_until(&mut reactor, |_| outcome.borrow().is_some());
        let outcome = outcome.borrow_mut().take().unwrap();
        assert_eq!(outcome.err(), Some(Ended::Refused), "{family}");
        assert_eq!(
            reactor.descriptor_count(),
            0,
            "the attempt left the reactor"
        );
    }
}

#[test]
fn connect_that_never_completes_times_out() {
    // A listener with a backlog of 0 that never accepts holds one connection in its
    // queue; with that one filled, the kernel drops further SYNs, so a connect stays
    // in SYN_SENT (retrying after a second, then three...): it never completes here.
    let options = ListenOptions {
        backlog: 0,
        ..ListenOptions::default()
    };
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &options).unwrap();
    let target = listener.local_addr().unwrap();
    let _filler = std::net::TcpStream::connect(target).expect("the first connection is queued");

    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
    let stream = start_connect_tcp(target, None).unwrap();
    let (on_done, outcome) = keep_outcome();
    let timeout = Duration::from_secs(30);
    Connecting::start(
        &mut reactor,
        Box::new(stream),
        Address::Tcp(target),
        Some(timeout),
        on_done,
    )
    .unwrap();
    for _ in 0..5 {
        reactor.iterate(Some(Duration::from_millis(5))).unwrap();
    }
    assert!(
        outcome.borrow().is_none(),
        "the connect completed: the backlog trick failed"
    );
    clock.advance(timeout - Duration::from_millis(1));
    reactor.iterate(Some(Duration::ZERO)).unwrap();
    assert!(outcome.borrow().is_none(), "timed out early");
    clock.advance(Duration::from_millis(1));
    reactor.iterate(Some(Duration::ZERO)).unwrap();
    let outcome = outcome.borrow_mut().take().expect("timed out on time");
    assert_eq!(outcome.err(), Some(Ended::TimedOut));
    assert_eq!(reactor.descriptor_count(), 0);
    assert_eq!(reactor.pending_calls(), 0, "the timer is gone");
    drop(listener);
}

#[test]
fn cancel_abandons_a_connect() {
    let options = ListenOptions {
        backlog: 0,
        ..ListenOptions::default()
    };
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &options).unwrap();
    let target = listener.local_addr().unwrap();
    let _filler = std::net::TcpStream::connect(target).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (on_done, outcome) = keep_outcome();
    let stream = start_connect_tcp(target, None).unwrap();
    let id = Connecting::start(
        &mut reactor,
        Box::new(stream),
        Address::Tcp(target),
        Some(LIMIT),
        on_done,
    )
    .unwrap();
    reactor.iterate(Some(Duration::ZERO)).unwrap();
    assert!(Connecting::cancel(&mut reactor, id));
    assert!(!Connecting::cancel(&mut reactor, id), "only once");
    assert_eq!(
        outcome.borrow_mut().take().unwrap().err(),
        Some(Ended::Aborted)
    );
    assert_eq!(reactor.pending_calls(), 0, "the timeout was cancelled");
}

#[test]
fn reactor_shutdown_ends_a_pending_connect() {
    let options = ListenOptions {
        backlog: 0,
        ..ListenOptions::default()
    };
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &options).unwrap();
    let target = listener.local_addr().unwrap();
    let _filler = std::net::TcpStream::connect(target).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (on_done, outcome) = keep_outcome();
    let stream = start_connect_tcp(target, None).unwrap();
    Connecting::start(
        &mut reactor,
        Box::new(stream),
        Address::Tcp(target),
        Some(LIMIT),
        on_done,
    )
    .unwrap();
    reactor.call_soon(|r| r.stop());
    util::run_with_watchdog(&mut reactor, LIMIT);
    assert_eq!(
        outcome.borrow_mut().take().unwrap().err(),
        Some(Ended::Shutdown)
    );
}

/// Client and server records of one round trip: the client sends `ping`, the server
/// answers `pong`, the client closes once it has the answer.
struct RoundTrip {
    server: Rc<RefCell<Record>>,
    client: Rc<RefCell<Record>>,
    connect_failure: Rc<RefCell<Option<Ended>>>,
}

fn round_trip(
    reactor: &mut Reactor,
    listener: impl transport::Acceptor,
    connect: Box<dyn Stream>,
) -> RoundTrip {
    let (server_probe, server) = Probe::new();
    let mut server_probe = Some(server_probe.on_data(|t, _| {
        if t.bytes_received() == 4 {
            t.write(b"pong");
        }
    }));
    let (listener_id, address) = Listener::start(
        reactor,
        listener,
        Box::new(move |reactor: &mut Reactor, stream, peer| {
            // One connection expected; a second would find no probe and be dropped.
            if let Some(probe) = server_probe.take() {
                Connection::start(reactor, stream, peer, probe).unwrap();
            }
        }),
    )
    .unwrap();

    let (client_probe, client) = Probe::new();
    let client_probe = client_probe.on_made(|t| t.write(b"ping")).on_data(|t, _| {
        if t.bytes_received() == 4 {
            t.lose_connection();
        }
    });
    let connect_failure = Rc::new(RefCell::new(None));
    let failure = connect_failure.clone();
    Connecting::start(
        reactor,
        connect,
        address,
        Some(LIMIT),
        Box::new(move |reactor: &mut Reactor, outcome| match outcome {
            Ok(stream) => {
                util::start(reactor, stream, client_probe).unwrap();
            }
            Err(reason) => *failure.borrow_mut() = Some(ended(&reason)),
        }),
    )
    .unwrap();
    util::turn_until(reactor, |_| {
        connect_failure.borrow().is_some()
            || (server.borrow().is_lost() && client.borrow().is_lost())
    });
    assert!(Listener::stop(reactor, listener_id));
    RoundTrip {
        server,
        client,
        connect_failure,
    }
}

impl RoundTrip {
    #[track_caller]
    fn assert_clean(&self) {
        assert_eq!(*self.connect_failure.borrow(), None);
        let (server, client) = (self.server.borrow(), self.client.borrow());
        assert_eq!(server.received, b"ping");
        assert_eq!(client.received, b"pong");
        assert_eq!(client.only_reason(), Ended::Done);
        assert_eq!(server.only_reason(), Ended::Done);
        assert_eq!(
            server.read_lost, 1,
            "the server saw the client's end of file"
        );
    }
}

#[test]
fn tcp_round_trip_on_ipv4_and_ipv6() {
    let mut families: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
    if util::ipv6_available() {
        families.push("[::1]:0".parse().unwrap());
    }
    for family in families {
        let mut reactor = Reactor::new().unwrap();
        let listener = bind_tcp(family, &ListenOptions::default()).unwrap();
        let target = listener.local_addr().unwrap();
        let stream = start_connect_tcp(target, None).unwrap();
        let trip = round_trip(&mut reactor, listener, Box::new(stream));
        trip.assert_clean();
        let (server, client) = (trip.server.borrow(), trip.client.borrow());
        let (server_host, server_peer) = server.addresses_made.clone().unwrap();
        let (client_host, client_peer) = client.addresses_made.clone().unwrap();
        assert_eq!(server_host, Address::Tcp(target), "{family}");
        assert_eq!(client_peer, Address::Tcp(target), "{family}");
        assert_eq!(server_peer, client_host, "{family}");
        assert_eq!(server_host.tcp().unwrap().is_ipv6(), family.is_ipv6());
    }
}

#[test]
fn unix_socket_round_trip() {
    let path = util::TempSocketPath::new("round-trip");
    {
        let mut reactor = Reactor::new().unwrap();
        let listener = bind_unix(&path.0, 16).unwrap();
        let stream = start_connect_unix(&path.0).unwrap();
        let trip = round_trip(&mut reactor, listener, Box::new(stream));
        trip.assert_clean();
        let (server, client) = (trip.server.borrow(), trip.client.borrow());
        let unix = Address::Unix(Some(path.0.clone()));
        assert_eq!(server.addresses_made.as_ref().unwrap().0, unix);
        assert_eq!(client.addresses_made.as_ref().unwrap().1, unix);
        assert_eq!(client.addresses_lost, client.addresses_made);
        assert!(!path.0.exists(), "the listener removed its socket file");
    }
    let kept = path.0.clone();
    drop(path);
    assert!(!kept.exists(), "the socket file is cleaned up");
}
