//! [`listen_udp`]: a [`DatagramProtocol`] on a UDP port (Twisted's
//! `reactor.listenUDP` and `protocol.DatagramProtocol`).

use reactor::{DescriptorId, Reactor};
use transport::{UdpOptions, UdpPort};

use crate::error::ListenError;
use crate::port::interface_address;

/// What a program writes to speak a datagram protocol (Twisted's `DatagramProtocol`):
/// the transport layer's [`DatagramHandler`](transport::DatagramHandler), under
/// Twisted's name.
pub use transport::DatagramHandler as DatagramProtocol;

/// How to open a UDP port: what [`TcpListenOptions`](crate::TcpListenOptions) is to
/// TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpListenOptions {
    /// The interface: an IP address or a name resolved at once (default `127.0.0.1`:
    /// loopback only; `0.0.0.0` or `::` for every interface).
    pub interface: String,
    /// Datagrams larger than this are refused (reported, never delivered cut).
    /// Default (and most) 65,535.
    pub max_datagram_size: usize,
}

impl Default for UdpListenOptions {
    fn default() -> Self {
        UdpListenOptions {
            interface: "127.0.0.1".to_owned(),
            max_datagram_size: UdpOptions::default().max_datagram_size,
        }
    }
}

/// A UDP port that is open (Twisted's `IListeningPort` for UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpListeningPort {
    id: DescriptorId,
    address: std::net::SocketAddr,
}

impl UdpListeningPort {
    /// The address bound, with the real port when port 0 was asked for (Twisted's
    /// `getHost`).
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Closes the port (Twisted's `stopListening`); returns whether it was open.
    #[doc(alias = "stopListening")]
    pub fn stop_listening<P: DatagramProtocol>(&self, reactor: &mut Reactor) -> bool {
        UdpPort::<P>::stop(reactor, self.id)
    }

    /// The port's id in the reactor (reach its protocol with `UdpPort::with_handler`).
    pub fn id(&self) -> DescriptorId {
        self.id
    }
}

/// Opens UDP `port` (0: any free port) on the options' interface with `protocol`
/// (Twisted's `listenUDP`).
///
/// # Errors
///
/// [`ListenError::Interface`] if the interface does not resolve;
/// [`ListenError::Transport`] if the port cannot be bound.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use protocol::{listen_udp, DatagramProtocol, UdpListenOptions};
/// use protocol::transport::DatagramTransport;
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, port: &mut DatagramTransport<'_>, data: &[u8], from: SocketAddr) {
///         let _ = port.write(data, Some(from));
///     }
/// }
///
/// let mut reactor = reactor::Reactor::new()?;
/// let port = listen_udp(&mut reactor, 0, Echo, &UdpListenOptions::default())?;
/// let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// peer.send_to(b"ping", port.get_host())?;
/// reactor.iterate(Some(std::time::Duration::from_secs(5)))?;
/// let mut buf = [0; 16];
/// let (n, _) = peer.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "listenUDP")]
pub fn listen_udp<P: DatagramProtocol>(
    reactor: &mut Reactor,
    port: u16,
    protocol: P,
    options: &UdpListenOptions,
) -> Result<UdpListeningPort, ListenError> {
    let address = interface_address(&options.interface, port)?;
    let udp = UdpOptions {
        max_datagram_size: options.max_datagram_size,
    };
    let (id, address) = UdpPort::listen(reactor, address, protocol, &udp)?;
    Ok(UdpListeningPort { id, address })
}
