//! UDP ports: echo over IPv4 and IPv6, empty and large datagrams, a datagram larger
//! than the port accepts (reported, never cut), ICMP errors that must not stop a port,
//! connected ports and refusals, the bounded batch per turn, and two peers no one here
//! wrote: `nc -u` and a Twisted `DatagramProtocol`.

mod util;

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use reactor::Reactor;
use transport::{DatagramHandler, DatagramTransport, UdpOptions, UdpPort, MAX_DATAGRAMS_PER_TURN};
use util::turn_until;

/// What a [`Recorder`] saw.
#[derive(Debug, Default)]
struct Seen {
    datagrams: Vec<(Vec<u8>, SocketAddr)>,
    too_large: Vec<usize>,
    refused: usize,
    stopped: usize,
}

/// Records everything; echoes datagrams back when `echo` is set; connects to
/// `connect_to` and sends there when started.
struct Recorder {
    seen: Rc<RefCell<Seen>>,
    echo: bool,
    connect_to: Option<SocketAddr>,
}

fn recorder(echo: bool) -> (Recorder, Rc<RefCell<Seen>>) {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let recorder = Recorder {
        seen: seen.clone(),
        echo,
        connect_to: None,
    };
    (recorder, seen)
}

impl DatagramHandler for Recorder {
    fn start_protocol(&mut self, port: &mut DatagramTransport<'_>) {
        if let Some(peer) = self.connect_to {
            port.connect(peer).unwrap();
            port.write(b"anyone?", None).unwrap();
        }
    }

    fn datagram_received(
        &mut self,
        port: &mut DatagramTransport<'_>,
        data: &[u8],
        from: SocketAddr,
    ) {
        self.seen.borrow_mut().datagrams.push((data.to_vec(), from));
        if self.echo {
            port.write(data, Some(from)).unwrap();
        }
    }

    fn connection_refused(&mut self, _: &mut DatagramTransport<'_>) {
        self.seen.borrow_mut().refused += 1;
    }

    fn datagram_too_large(&mut self, _: &mut DatagramTransport<'_>, size: usize, _: SocketAddr) {
        self.seen.borrow_mut().too_large.push(size);
    }

    fn stop_protocol(&mut self, _: &mut DatagramTransport<'_>) {
        self.seen.borrow_mut().stopped += 1;
    }
}

fn listen(reactor: &mut Reactor, at: &str, handler: Recorder, options: &UdpOptions) -> SocketAddr {
    UdpPort::listen(reactor, at.parse().unwrap(), handler, options)
        .unwrap()
        .1
}

/// A blocking peer socket with a read timeout (a watchdog, not a wait for correctness).
fn peer(at: &str) -> UdpSocket {
    let socket = UdpSocket::bind(at).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
}

/// Sends `data` to `port`, turns the reactor until it is echoed, returns the echo.
fn round_trip(reactor: &mut Reactor, socket: &UdpSocket, port: SocketAddr, data: &[u8]) -> Vec<u8> {
    socket.send_to(data, port).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut got = None;
    turn_until(reactor, |_| {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            assert_eq!(from, port);
            got = Some(buf[..n].to_vec());
        }
        got.is_some()
    });
    socket.set_nonblocking(false).unwrap();
    got.unwrap()
}

fn echo_on(local: &str) {
    let mut reactor = Reactor::new().unwrap();
    let (handler, seen) = recorder(true);
    let port = listen(
        &mut reactor,
        &format!("{local}:0"),
        handler,
        &UdpOptions::default(),
    );
    let socket = peer(&format!("{local}:0"));
    let large: Vec<u8> = (0..65_000).map(|i| (i % 251) as u8).collect();
    for data in [&b"ping"[..], b"", &large] {
        assert!(
            round_trip(&mut reactor, &socket, port, data) == data,
            "{} bytes",
            data.len()
        );
    }
    let seen = seen.borrow();
    assert_eq!(seen.datagrams.len(), 3);
    assert!(seen
        .datagrams
        .iter()
        .all(|(_, from)| *from == socket.local_addr().unwrap()));
    assert_eq!(seen.datagrams[1].0, b"");
}

#[test]
fn echoes_empty_small_and_large_datagrams_over_ipv4() {
    echo_on("127.0.0.1");
}

#[test]
fn echoes_empty_small_and_large_datagrams_over_ipv6() {
    if !util::ipv6_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have IPv6 loopback"
        );
        return;
    }
    echo_on("[::1]");
}

#[test]
fn a_datagram_larger_than_accepted_is_reported_never_cut() {
    let mut reactor = Reactor::new().unwrap();
    let (handler, seen) = recorder(false);
    let options = UdpOptions {
        max_datagram_size: 1000,
    };
    let port = listen(&mut reactor, "127.0.0.1:0", handler, &options);
    let socket = peer("127.0.0.1:0");
    socket.send_to(&[7u8; 1500], port).unwrap();
    socket.send_to(&[8u8; 1000], port).unwrap();
    turn_until(&mut reactor, |_| seen.borrow().datagrams.len() == 1);
    let seen = seen.borrow();
    assert_eq!(seen.too_large, [1500]);
    assert_eq!(seen.datagrams[0].0, [8u8; 1000]);
}

#[test]
fn an_icmp_error_never_stops_an_unconnected_port() {
    let mut reactor = Reactor::new().unwrap();
    let (handler, seen) = recorder(false);
    let (id, port) = UdpPort::listen(
        &mut reactor,
        "127.0.0.1:0".parse().unwrap(),
        handler,
        &UdpOptions::default(),
    )
    .unwrap();
    // Datagrams to a port nobody listens on draw ICMP "port unreachable" errors.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for _ in 0..3 {
        UdpPort::<Recorder>::with_handler(&mut reactor, id, |_, t| {
            t.write(b"anyone?", Some(dead)).unwrap();
        });
        reactor.iterate(Some(Duration::ZERO)).unwrap();
    }
    let socket = peer("127.0.0.1:0");
    socket.send_to(b"still here", port).unwrap();
    turn_until(&mut reactor, |_| seen.borrow().datagrams.len() == 1);
    assert!(reactor.contains(id));
    assert_eq!((seen.borrow().stopped, seen.borrow().refused), (0, 0));
}

#[test]
fn a_connected_port_reports_refusals_and_goes_on() {
    let mut reactor = Reactor::new().unwrap();
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (mut handler, seen) = recorder(false);
    handler.connect_to = Some(dead);
    let (id, _) = UdpPort::listen(
        &mut reactor,
        "127.0.0.1:0".parse().unwrap(),
        handler,
        &UdpOptions::default(),
    )
    .unwrap();
    turn_until(&mut reactor, |_| seen.borrow().refused == 1);
    assert!(reactor.contains(id), "a refusal closed the port");
    // And again: the port still works.
    UdpPort::<Recorder>::with_handler(&mut reactor, id, |_, t| t.write(b"again?", None).unwrap());
    turn_until(&mut reactor, |_| seen.borrow().refused == 2);
    let counters =
        UdpPort::<Recorder>::with_handler(&mut reactor, id, |_, t| t.counters()).unwrap();
    assert_eq!(counters.send_errors, 2);
    assert!(UdpPort::<Recorder>::stop(&mut reactor, id));
    assert_eq!(seen.borrow().stopped, 1);
}

#[test]
fn a_flood_is_read_in_bounded_batches() {
    let mut reactor = Reactor::new().unwrap();
    let (handler, seen) = recorder(false);
    let port = listen(&mut reactor, "127.0.0.1:0", handler, &UdpOptions::default());
    reactor.iterate(Some(Duration::ZERO)).unwrap(); // registered
    let socket = peer("127.0.0.1:0");
    for i in 0..200u32 {
        socket.send_to(&i.to_be_bytes(), port).unwrap();
    }
    reactor.iterate(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(seen.borrow().datagrams.len(), MAX_DATAGRAMS_PER_TURN);
    turn_until(&mut reactor, |_| seen.borrow().datagrams.len() == 200);
    let order: Vec<u32> = seen
        .borrow()
        .datagrams
        .iter()
        .map(|(d, _)| u32::from_be_bytes(d[..4].try_into().unwrap()))
        .collect();
    assert_eq!(order, (0..200).collect::<Vec<_>>());
}

/// Starts `command` with `input` on its stdin and waits (bounded) for its output.
fn run_peer(mut command: Command, input: &[u8], mut reactor: Reactor) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    // Python importing Twisted can take tens of seconds on a loaded machine: a longer
    // watchdog than util's.
    let start = std::time::Instant::now();
    while !reader.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{command:?} ran for 180 s"
        );
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap()
}

#[test]
fn nc_gets_its_datagram_echoed() {
    let mut reactor = Reactor::new().unwrap();
    let (handler, seen) = recorder(true);
    let port = listen(&mut reactor, "127.0.0.1:0", handler, &UdpOptions::default());
    let mut nc = Command::new("nc");
    nc.args(["-u", "-w1", "127.0.0.1", &port.port().to_string()]);
    let out = run_peer(nc, b"hello from nc\n", reactor);
    assert_eq!(
        out, b"hello from nc\n",
        "nc -u must be installed (netcat-openbsd)"
    );
    assert_eq!(seen.borrow().datagrams.len(), 1);
}

#[test]
fn a_twisted_datagram_protocol_gets_its_datagrams_echoed() {
    // $TWISTED_PYTHON, else the workspace's .venv (which .ci/run creates).
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let python = match std::env::var_os("TWISTED_PYTHON") {
        Some(python) => std::path::PathBuf::from(python),
        None if std::path::Path::new(venv).exists() => venv.into(),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs Twisted: set TWISTED_PYTHON or run .ci/run"
            );
            println!("skipped: no Python with Twisted (set TWISTED_PYTHON)");
            return;
        }
    };
    let mut reactor = Reactor::new().unwrap();
    let (handler, seen) = recorder(true);
    let port = listen(&mut reactor, "127.0.0.1:0", handler, &UdpOptions::default());
    let script = r#"
import sys
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol

class Peer(DatagramProtocol):
    def startProtocol(self):
        self.transport.connect("127.0.0.1", int(sys.argv[1]))
        for word in (b"alpha", b"", b"gamma" * 2000):
            self.transport.write(word)
        self.got = []
    def datagramReceived(self, data, addr):
        self.got.append(len(data))
        if len(self.got) == 3:
            print(" ".join(map(str, self.got)))
            reactor.stop()

reactor.listenUDP(0, Peer(), interface="127.0.0.1", maxPacketSize=65535)
reactor.callLater(60, reactor.stop)
reactor.run()
"#;
    let mut twisted = Command::new(&python);
    twisted.args(["-c", script, &port.port().to_string()]);
    let out = run_peer(twisted, b"", reactor);
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        "5 0 10000",
        "a Python with Twisted is needed ($TWISTED_PYTHON or .venv/bin/python)"
    );
    assert_eq!(seen.borrow().datagrams.len(), 3);
}
