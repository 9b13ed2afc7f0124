//! The layered stack's side of two benchmarks of `cargo xtask bench`: the smallest
//! programs that put a protocol on the transports of issue 15, written only with the
//! protocol crate's public API (and its re-exports of the lower layers), as a user
//! would write them.
//!
//! | here | Twisted | measured against |
//! |---|---|---|
//! | [`UdpEcho`] (`udp-echo-server`) | a `DatagramProtocol` whose `datagramReceived` calls `transport.write(data, addr)`, on `listenUDP` | raw-mio-server `udp-echo`, tokio-server `udp-echo` |
//! | [`Pass`] (`stdio-pass`) | a `Protocol` on `StandardIO` whose `dataReceived` writes what it read, as its transport's streaming producer | `cat` |
//!
//! Both binaries follow the bench servers' contract (bench/README.md): `udp-echo-server
//! --port 0` binds 127.0.0.1, prints `Serving UDP echo on port N.` and exits 0 on
//! SIGTERM; `stdio-pass` copies standard input to standard output and exits 0 at the
//! input's end once everything is written (1, with one line, if the streams broke).
//!
//! # Example
//!
//! ```
//! use std::net::SocketAddr;
//! use layered_bench::UdpEcho;
//! use protocol::UdpListenOptions;
//!
//! let mut reactor = protocol::reactor::Reactor::new()?;
//! let port = protocol::listen_udp(&mut reactor, 0, UdpEcho, &UdpListenOptions::default())?;
//! let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! peer.send_to(b"ping", port.get_host())?;
//! reactor.iterate(Some(std::time::Duration::from_secs(5)))?;
//! let mut buf = [0; 16];
//! let (n, _): (usize, SocketAddr) = peer.recv_from(&mut buf)?;
//! assert_eq!(&buf[..n], b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use protocol::transport::DatagramTransport;
use protocol::{Context, DatagramProtocol, DisconnectReason, EofAction, Protocol, SimpleFactory};

/// Sends every datagram back to its sender.
#[derive(Debug, Default, Clone, Copy)]
pub struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(
        &mut self,
        port: &mut DatagramTransport<'_>,
        data: &[u8],
        from: SocketAddr,
    ) {
        // A reply the socket has no room for is dropped and counted by the port; any
        // other error (the sender's ICMP refusal) loses this one reply only.
        let _ = port.write(data, Some(from));
    }
}

/// Writes whatever it reads; reads no faster than its output takes it (it is its own
/// transport's streaming producer: paused at the write buffer's high-water mark,
/// resumed when it drains). Ends at the input's end once everything is written, and
/// stops the reactor.
#[derive(Debug, Default)]
pub struct Pass {
    /// How the connection ended, once it has (`Err` with the reason when not
    /// cleanly): shared with whoever started it, who reads it after the reactor stops.
    pub ended: Rc<RefCell<Option<Result<(), String>>>>,
}

impl Protocol for Pass {
    type Factory = SimpleFactory<Self>;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.register_producer(true);
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        cx.write(data);
    }

    fn read_connection_lost(&mut self, cx: &mut Context<'_, Self>) -> EofAction {
        // Nothing more to pass on: stop being the producer, or the close would wait
        // for it for ever.
        cx.unregister_producer();
        EofAction::Close
    }

    fn pause_producing(&mut self, cx: &mut Context<'_, Self>) {
        cx.pause_reading();
    }

    fn resume_producing(&mut self, cx: &mut Context<'_, Self>) {
        cx.resume_reading();
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        let outcome = if reason.is_clean() {
            Ok(())
        } else {
            Err(reason.to_string())
        };
        *self.ended.borrow_mut() = Some(outcome);
        cx.reactor().stop();
    }
}
