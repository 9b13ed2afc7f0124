//! UDP: [`UdpPort`], a datagram socket as a reactor descriptor, the
//! [`DatagramHandler`] it calls and the [`DatagramTransport`] that handler gets
//! (Twisted's `udp.Port`, `IDatagramProtocol`, `IUDPTransport`).
//!
//! Unlike Twisted's UDP port:
//!
//! * nothing is cut silently: the receive buffer holds the largest datagram
//!   (65,535 bytes) by default, and a datagram larger than
//!   [`UdpOptions::max_datagram_size`] is detected (`MSG_TRUNC`), counted and reported
//!   to [`DatagramHandler::datagram_too_large`], never delivered cut;
//! * an error that comes back from an earlier send (an ICMP "port unreachable") never
//!   stops the port: on a connected port it is [`DatagramHandler::connection_refused`],
//!   on an unconnected one it is counted and logged (twisted #5377);
//! * each turn reads at most [`MAX_DATAGRAMS_PER_TURN`] datagrams or
//!   [`MAX_BYTES_PER_TURN`] bytes, so a flood cannot starve other descriptors.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};

use log::{debug, error, warn};
use mio::net::UdpSocket;
use reactor::{panic_message, Descriptor, DescriptorId, IoStatus, LostReason, Reactor};

use crate::error::TransportError;

/// Datagrams read per turn, at most.
pub const MAX_DATAGRAMS_PER_TURN: usize = 64;
/// Bytes read per turn, at most (Twisted's `maxThroughput`).
pub const MAX_BYTES_PER_TURN: usize = 256 * 1024;
/// The largest UDP payload; the default receive size.
pub const MAX_DATAGRAM: usize = 65_535;

/// How to open a UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpOptions {
    /// Datagrams larger than this are refused (reported, never delivered cut).
    /// Default (and most) 65,535.
    pub max_datagram_size: usize,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            max_datagram_size: MAX_DATAGRAM,
        }
    }
}

/// The callbacks a UDP port makes (Twisted's `DatagramProtocol`).
///
/// `start_protocol` first, then any number of the others, then `stop_protocol` once
/// when the port closes (or the reactor shuts down).
pub trait DatagramHandler: 'static {
    /// The port is open (Twisted's `startProtocol`).
    #[doc(alias = "startProtocol")]
    fn start_protocol(&mut self, port: &mut DatagramTransport<'_>) {
        let _ = port;
    }

    /// A datagram arrived from `from` (Twisted's `datagramReceived`). `data` may be
    /// empty: an empty datagram is a datagram.
    #[doc(alias = "datagramReceived")]
    fn datagram_received(
        &mut self,
        port: &mut DatagramTransport<'_>,
        data: &[u8],
        from: SocketAddr,
    );

    /// On a connected port: the peer refused a datagram we sent, as an ICMP error
    /// reports (Twisted's `connectionRefused`). The port goes on.
    #[doc(alias = "connectionRefused")]
    fn connection_refused(&mut self, port: &mut DatagramTransport<'_>) {
        let _ = port;
    }

    /// A datagram of `size` bytes from `from` was larger than the port accepts: it
    /// was dropped, not delivered cut. The default logs it.
    fn datagram_too_large(
        &mut self,
        port: &mut DatagramTransport<'_>,
        size: usize,
        from: SocketAddr,
    ) {
        let _ = port;
        warn!("udp: dropped a datagram of {size} bytes from {from}: larger than the port accepts");
    }

    /// The port is closed (Twisted's `stopProtocol`).
    #[doc(alias = "stopProtocol")]
    fn stop_protocol(&mut self, port: &mut DatagramTransport<'_>) {
        let _ = port;
    }
}

/// What a UDP port counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams delivered.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams dropped for being larger than the port accepts.
    pub too_large: u64,
    /// Errors from earlier sends (ICMP) met on receive.
    pub send_errors: u64,
    /// Datagrams not sent because the socket's buffer was full.
    pub dropped_sends: u64,
}

/// The port's state below the handler.
struct Core {
    socket: UdpSocket,
    id: Option<DescriptorId>,
    peer: Option<SocketAddr>,
    max_datagram_size: usize,
    counters: UdpCounters,
    stop_requested: bool,
}

/// A handler's view of its UDP port, lent for one callback (Twisted's
/// `IUDPTransport`).
pub struct DatagramTransport<'a> {
    core: &'a mut Core,
    reactor: &'a mut Reactor,
}

impl fmt::Debug for DatagramTransport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("host", &self.core.socket.local_addr().ok())
            .field("peer", &self.core.peer)
            .finish_non_exhaustive()
    }
}

impl DatagramTransport<'_> {
    /// Sends `data` as one datagram to `to`, or to the connected peer if `to` is
    /// `None` (Twisted's `write(datagram, addr)`). A datagram the socket's buffer has
    /// no room for is dropped and counted, as the network would.
    ///
    /// # Errors
    ///
    /// `InvalidInput` without an address on an unconnected port (or with one that is
    /// not the peer on a connected port); `ConnectionRefused` on a connected port when
    /// an earlier datagram was refused; the socket's error otherwise (`EMSGSIZE` for a
    /// datagram too large to send).
    pub fn write(&mut self, data: &[u8], to: Option<SocketAddr>) -> io::Result<()> {
        let core = &mut *self.core;
        let sent = match (to, core.peer) {
            (None, Some(_)) => core.socket.send(data),
            (Some(to), Some(peer)) if to == peer => core.socket.send(data),
            (Some(to), None) => core.socket.send_to(data, to),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "wrong address for this port",
                ))
            }
        };
        match sent {
            Ok(_) => {
                core.counters.sent += 1;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                core.counters.dropped_sends += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Connects the port to one peer (Twisted's `connect`): it then receives from that
    /// peer only, `write` needs no address, and refusals are reported.
    ///
    /// # Errors
    ///
    /// As `connect(2)`.
    pub fn connect(&mut self, peer: SocketAddr) -> io::Result<()> {
        self.core.socket.connect(peer)?;
        self.core.peer = Some(peer);
        Ok(())
    }

    /// The local address (Twisted's `getHost`).
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`.
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> io::Result<SocketAddr> {
        self.core.socket.local_addr()
    }

    /// The connected peer, if any.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.core.peer
    }

    /// Closes the port after this callback (Twisted's `stopListening`).
    #[doc(alias = "stopListening")]
    pub fn stop_listening(&mut self) {
        self.core.stop_requested = true;
    }

    /// What the port counted so far.
    pub fn counters(&self) -> UdpCounters {
        self.core.counters
    }

    /// The reactor: schedule calls, stop it.
    pub fn reactor(&mut self) -> &mut Reactor {
        self.reactor
    }
}

/// A UDP socket as a reactor descriptor, with its handler (Twisted's `udp.Port`).
pub struct UdpPort<H> {
    core: Core,
    handler: H,
}

impl<H> fmt::Debug for UdpPort<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpPort")
            .field("host", &self.core.socket.local_addr().ok())
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// One receive buffer per thread, lent to the port that is reading.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<H: DatagramHandler> UdpPort<H> {
    /// Binds `address` (port 0: any free port) and starts the port with `handler`;
    /// returns its id and the address bound.
    ///
    /// # Errors
    ///
    /// [`TransportError::Bind`] if the address cannot be bound;
    /// [`TransportError::Reactor`] if the reactor cannot take it.
    #[doc(alias = "listenUDP")]
    pub fn listen(
        reactor: &mut Reactor,
        address: SocketAddr,
        handler: H,
        options: &UdpOptions,
    ) -> Result<(DescriptorId, SocketAddr), TransportError> {
        let bind_error = |source| TransportError::Bind {
            address: crate::Address::Tcp(address),
            source,
        };
        let socket = UdpSocket::bind(address).map_err(bind_error)?;
        let local = socket.local_addr().map_err(TransportError::Socket)?;
        let port = UdpPort {
            core: Core {
                socket,
                id: None,
                peer: None,
                max_datagram_size: options.max_datagram_size.clamp(1, MAX_DATAGRAM),
                counters: UdpCounters::default(),
                stop_requested: false,
            },
            handler,
        };
        let id = reactor.insert(Box::new(port))?;
        reactor.add_reader(id)?;
        reactor.with_descriptor::<Self, _>(id, |port, reactor| {
            port.core.id = Some(id);
            port.invoke(reactor, |h, t| h.start_protocol(t));
        });
        Ok((id, local))
    }

    /// Calls `f` with the handler of port `id` (from a timer, say). `None` if the port
    /// is gone.
    pub fn with_handler<R>(
        reactor: &mut Reactor,
        id: DescriptorId,
        f: impl FnOnce(&mut H, &mut DatagramTransport<'_>) -> R,
    ) -> Option<R> {
        reactor
            .with_descriptor::<Self, _>(id, |port, reactor| port.invoke(reactor, f))
            .flatten()
    }

    /// Closes port `id` (Twisted's `stopListening`); returns whether it was open.
    pub fn stop(reactor: &mut Reactor, id: DescriptorId) -> bool {
        Self::with_handler(reactor, id, |_, t| t.stop_listening()).is_some()
    }

    fn invoke<R>(
        &mut self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut H, &mut DatagramTransport<'_>) -> R,
    ) -> Option<R> {
        let core = &mut self.core;
        let handler = &mut self.handler;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            f(handler, &mut DatagramTransport { core, reactor })
        }));
        let result = match outcome {
            Ok(value) => Some(value),
            Err(payload) => {
                // A datagram handler that panics loses that datagram only.
                error!("udp: handler panicked: {}", panic_message(payload.as_ref()));
                None
            }
        };
        if self.core.stop_requested {
            self.close(reactor);
        }
        result
    }

    fn close(&mut self, reactor: &mut Reactor) {
        let Some(id) = self.core.id.take() else {
            return;
        };
        if reactor.contains(id) {
            // Lifted (dispatched or lent): dropped when the current call returns.
            // (From `connection_lost` the id is already stale.)
            let removed = reactor.remove_descriptor(id);
            debug_assert!(removed.is_ok(), "udp port {id}: {removed:?}");
        }
        self.core.stop_requested = false;
        self.invoke(reactor, |h, t| h.stop_protocol(t));
    }

    /// Reads one datagram into `buf`: its real size and sender. `Ok(None)` for an
    /// error that came back from an earlier send, already handled.
    fn receive(
        &mut self,
        reactor: &mut Reactor,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        match recv_from_trunc(&self.core.socket, buf) {
            Ok(got) => Ok(Some(got)),
            Err(e) if is_send_error(&e) => {
                self.core.counters.send_errors += 1;
                if self.core.peer.is_some() {
                    self.invoke(reactor, |h, t| h.connection_refused(t));
                } else {
                    debug!("udp: an earlier datagram was refused ({e}); going on");
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Errors a socket reports for an earlier send (from ICMP): never fatal to a port.
fn is_send_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EPROTO
                | libc::EMSGSIZE
        )
    )
}

/// `recvfrom` with `MSG_TRUNC`: returns the datagram's real length, even when larger
/// than `buf`.
fn recv_from_trunc(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain old data.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` is valid for its length; `storage` and `len` are valid out
    // pointers sized for any address.
    let n = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = socket_addr(&storage).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    Ok((n as usize, from))
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

// ===== impl IReadDescriptor =====

impl<H: DatagramHandler> Descriptor for UdpPort<H> {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        &mut self.core.socket
    }

    fn do_read(&mut self, reactor: &mut Reactor, _: DescriptorId) -> io::Result<IoStatus> {
        let mut buf = SCRATCH.with(|s| mem::take(&mut *s.borrow_mut()));
        buf.resize(MAX_DATAGRAM, 0);
        let limit = self.core.max_datagram_size;
        let (mut datagrams, mut bytes) = (0, 0);
        let mut status = IoStatus::Ready;
        while datagrams < MAX_DATAGRAMS_PER_TURN
            && bytes < MAX_BYTES_PER_TURN
            && self.core.id.is_some()
        {
            let (size, from) = match self.receive(reactor, &mut buf) {
                Ok(Some(got)) => got,
                Ok(None) => {
                    datagrams += 1;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    status = IoStatus::WouldBlock;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("udp: receive failed: {e}; going on");
                    status = IoStatus::WouldBlock;
                    break;
                }
            };
            datagrams += 1;
            bytes += size.max(1);
            if size > limit {
                self.core.counters.too_large += 1;
                self.invoke(reactor, |h, t| h.datagram_too_large(t, size, from));
            } else {
                self.core.counters.received += 1;
                self.invoke(reactor, |h, t| h.datagram_received(t, &buf[..size], from));
            }
        }
        SCRATCH.with(|s| *s.borrow_mut() = buf);
        Ok(status)
    }

    fn connection_lost(&mut self, reactor: &mut Reactor, _: DescriptorId, reason: LostReason) {
        debug!("udp: port closed: {reason}");
        self.core.id = None;
        self.invoke(reactor, |h, t| h.stop_protocol(t));
    }

    fn log_prefix(&self) -> &str {
        "udp"
    }
}
