//! Listeners: stopping one from anywhere, including from inside its own accept
//! callback, and Unix listening sockets and their files.

mod util;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::TcpStream;
use std::rc::Rc;

use reactor::{DescriptorId, Reactor};
use transport::{bind_tcp, ListenOptions, Listener};

/// A listener on `127.0.0.1` whose accept callback runs `on_first` on the first
/// connection it accepts, and counts every connection it accepts.
struct Counted {
    id: DescriptorId,
    address: std::net::SocketAddr,
    accepted: Rc<Cell<usize>>,
    closed: Rc<Cell<usize>>,
}

fn counted_listener(
    reactor: &mut Reactor,
    on_first: impl FnOnce(&mut Reactor, DescriptorId) + 'static,
) -> Counted {
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let closed = Rc::new(Cell::new(0));
    let own_id: Rc<Cell<Option<DescriptorId>>> = Rc::new(Cell::new(None));
    let on_first = RefCell::new(Some(on_first));
    let (count, me) = (accepted.clone(), own_id.clone());
    let (id, _) = Listener::start(
        reactor,
        listener,
        Box::new(move |reactor, _stream, _peer| {
            count.set(count.get() + 1);
            if let Some(f) = on_first.borrow_mut().take() {
                f(
                    reactor,
                    me.get().expect("listener id set before any accept"),
                );
            }
        }),
    )
    .unwrap();
    own_id.set(Some(id));
    let closes = closed.clone();
    assert!(Listener::set_on_close(
        reactor,
        id,
        Box::new(move |_| closes.set(closes.get() + 1)),
    ));
    Counted {
        id,
        address,
        accepted,
        closed,
    }
}

/// Connects `n` clients, which wait in the listener's accept queue.
fn queued_clients(address: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect()
}

#[test]
fn listener_stopped_from_its_own_accept_callback_stops() {
    let mut reactor = Reactor::new().unwrap();
    let stopped = Rc::new(Cell::new(None));
    let answer = stopped.clone();
    let listening = counted_listener(&mut reactor, move |reactor, id| {
        answer.set(Some(Listener::stop(reactor, id)));
    });
    let _clients = queued_clients(listening.address, 3);
    util::turn_until(&mut reactor, |_| listening.accepted.get() > 0);
    for _ in 0..5 {
        reactor.iterate(Some(std::time::Duration::ZERO)).unwrap();
    }
    assert_eq!(stopped.get(), Some(true), "stop answers the truth");
    assert_eq!(listening.accepted.get(), 1, "no accept after stop");
    assert_eq!(listening.closed.get(), 1, "the close hook ran once");
    assert!(!reactor.contains(listening.id));
    assert!(
        !Listener::stop(&mut reactor, listening.id),
        "already stopped"
    );
    let refused = TcpStream::connect(listening.address).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn close_hook_set_inside_the_accept_callback_runs_when_stopped_there() {
    let mut reactor = Reactor::new().unwrap();
    let hook_ran = Rc::new(Cell::new(0));
    let answers = Rc::new(Cell::new(None));
    let (ran, answer) = (hook_ran.clone(), answers.clone());
    let listening = counted_listener(&mut reactor, move |reactor, id| {
        let set = Listener::set_on_close(reactor, id, Box::new(move |_| ran.set(ran.get() + 1)));
        let stopped = Listener::stop(reactor, id);
        let set_after_stop = Listener::set_on_close(reactor, id, Box::new(|_| {}));
        answer.set(Some((set, stopped, set_after_stop)));
    });
    let _clients = queued_clients(listening.address, 2);
    util::turn_until(&mut reactor, |_| listening.accepted.get() > 0);
    reactor.iterate(Some(std::time::Duration::ZERO)).unwrap();
    assert_eq!(answers.get(), Some((true, true, false)));
    assert_eq!(hook_ran.get(), 1, "the hook set in the callback ran");
    assert_eq!(listening.closed.get(), 0, "it replaced the first hook");
    assert_eq!(listening.accepted.get(), 1);
}

#[test]
fn close_hook_set_inside_the_accept_callback_runs_when_stopped_later() {
    let mut reactor = Reactor::new().unwrap();
    let hook_ran = Rc::new(Cell::new(0));
    let ran = hook_ran.clone();
    let listening = counted_listener(&mut reactor, move |reactor, id| {
        assert!(Listener::set_on_close(
            reactor,
            id,
            Box::new(move |_| ran.set(ran.get() + 1)),
        ));
    });
    let _clients = queued_clients(listening.address, 1);
    util::turn_until(&mut reactor, |_| listening.accepted.get() > 0);
    assert!(Listener::stop(&mut reactor, listening.id));
    assert_eq!(hook_ran.get(), 1);
    assert_eq!(listening.closed.get(), 0);
}

// ===== Unix listening sockets and their files =====

fn unix_listener(reactor: &mut Reactor, path: &std::path::Path) -> DescriptorId {
    let listener = transport::bind_unix(path, 16).expect("bind unix");
    let (id, _) = Listener::start(reactor, listener, Box::new(|_, _, _| {})).unwrap();
    id
}

#[test]
fn unix_listener_removes_its_socket_file_when_it_stops() {
    let path = util::TempSocketPath::new("stop");
    let mut reactor = Reactor::new().unwrap();
    let id = unix_listener(&mut reactor, &path.0);
    assert!(path.0.exists());
    assert!(Listener::stop(&mut reactor, id));
    assert!(!path.0.exists(), "the socket file is gone");

    // At shutdown too.
    let id = unix_listener(&mut reactor, &path.0);
    reactor.call_soon(|r| r.stop());
    reactor.run().unwrap();
    assert!(!reactor.contains(id));
    assert!(!path.0.exists(), "the socket file is gone after shutdown");
}

#[test]
fn unix_listen_on_a_stale_socket_file_works() {
    let path = util::TempSocketPath::new("stale");
    // A listener that went away without removing its file.
    drop(std::os::unix::net::UnixListener::bind(&path.0).unwrap());
    assert!(path.0.exists());
    let mut reactor = Reactor::new().unwrap();
    let id = unix_listener(&mut reactor, &path.0);
    let _client = std::os::unix::net::UnixStream::connect(&path.0).expect("accepting");
    assert!(Listener::stop(&mut reactor, id));
}

#[test]
fn unix_listen_on_a_path_held_by_a_live_listener_is_refused() {
    let path = util::TempSocketPath::new("live");
    let live = std::os::unix::net::UnixListener::bind(&path.0).unwrap();
    let err = transport::bind_unix(&path.0, 16).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("a listener is already accepting on this path"),
        "{text}"
    );
    assert!(matches!(
        &err,
        transport::TransportError::Bind { source, .. } if source.kind() == io::ErrorKind::AddrInUse
    ));
    // Still the live listener's: it accepts.
    let _client = std::os::unix::net::UnixStream::connect(&path.0).expect("still live");
    live.accept().unwrap();

    // Something that is not a socket is never removed either.
    let file = util::TempSocketPath::new("plain");
    std::fs::write(&file.0, b"not a socket").unwrap();
    assert!(transport::bind_unix(&file.0, 16).is_err());
    assert_eq!(std::fs::read(&file.0).unwrap(), b"not a socket");
}

/// Accepts one connection from a non-blocking listener, within a bounded wait.
fn accept_one(listener: &mio::net::TcpListener) -> mio::net::TcpStream {
    for _ in 0..2_000 {
        match listener.accept() {
            Ok((stream, _)) => return stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    panic!("no connection to accept within 2 s");
}

#[test]
fn accepted_connections_inherit_the_listeners_send_buffer_and_reset_on_close() {
    use socket2::SockRef;
    let options = ListenOptions {
        send_buffer: Some(65_536),
        reset_on_close: true,
        ..ListenOptions::default()
    };
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &options).unwrap();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let accepted = accept_one(&listener);
    let accepted = SockRef::from(&accepted);
    assert_eq!(
        accepted.linger().unwrap(),
        Some(std::time::Duration::ZERO),
        "an accepted socket resets when closed"
    );
    let asked = SockRef::from(&listener).send_buffer_size().unwrap();
    assert_eq!(accepted.send_buffer_size().unwrap(), asked);

    // A listener without them gives its connections the kernel's defaults.
    let plain = bind_tcp("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let _client = std::net::TcpStream::connect(plain.local_addr().unwrap()).unwrap();
    let accepted = accept_one(&plain);
    assert_eq!(SockRef::from(&accepted).linger().unwrap(), None);
}
