//! [`UdpEcho`]: the UDP floor, one socket and one hand-written mio loop that sends
//! every datagram straight back to where it came from.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;

use crate::server::{stop_signals, StopHandle};

const SOCKET: Token = Token(0);
const SIGNALS: Token = Token(1);
const WAKER: Token = Token(2);

/// The largest UDP payload: the receive buffer holds any datagram whole.
const MAX_DATAGRAM: usize = 65_535;

/// A UDP echo server: bind it, optionally [`stop_on_signals`](UdpEcho::stop_on_signals),
/// then [`run`](UdpEcho::run) it on the current thread.
///
/// Each readable event drains the socket (`recv_from` until `WouldBlock`), sending each
/// datagram back with `send_to`; a reply the socket has no room for is dropped, as the
/// network would.
pub struct UdpEcho {
    poll: Poll,
    socket: UdpSocket,
    waker: Arc<Waker>,
    signals: Option<Signals>,
}

impl std::fmt::Debug for UdpEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpEcho")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl UdpEcho {
    /// Binds `addr` (port 0: any free port).
    ///
    /// # Errors
    ///
    /// The error of creating the poll or binding.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpEcho> {
        let poll = Poll::new()?;
        let mut socket = UdpSocket::bind(addr)?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(UdpEcho {
            poll,
            socket,
            waker,
            signals: None,
        })
    }

    /// The address bound (with the real port).
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A handle that stops [`run`](UdpEcho::run) from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(Arc::clone(&self.waker))
    }

    /// Makes SIGTERM and SIGINT stop the loop cleanly (process-wide handlers).
    ///
    /// # Errors
    ///
    /// The error of installing the handlers or registering them with the poll.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        self.signals = Some(stop_signals(&self.poll, SIGNALS)?);
        Ok(())
    }

    /// Echoes until stopped by a signal or a [`StopHandle`].
    ///
    /// # Errors
    ///
    /// A failing `poll` (other than `EINTR`) or receive (other than `WouldBlock`, an
    /// interruption or an error that came back from an earlier send).
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    SOCKET => self.echo_all(&mut buf)?,
                    WAKER => return Ok(()),
                    SIGNALS => {
                        if let Some(signals) = &mut self.signals {
                            if signals.pending().next().is_some() {
                                return Ok(());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Receives and echoes until the socket is empty.
    fn echo_all(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    // A full send buffer drops the reply, as the network would.
                    let _ = self.socket.send_to(&buf[..n], from);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // An ICMP error for an earlier reply: the port goes on.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
    }
}
