//! [`Listener`]: a listening socket as a reactor read descriptor, handing each
//! accepted stream to a callback (the accepting half of Twisted's `tcp.Port`).

use std::io;
use std::time::Duration;

use log::{debug, warn};
use mio::net::{TcpListener, UnixListener};
use reactor::{Descriptor, DescriptorId, IoStatus, LostReason, Reactor, Removed};

use crate::address::Address;
use crate::error::TransportError;
use crate::stream::Stream;

/// Connections accepted per readiness event before yielding to other descriptors.
pub const MAX_ACCEPTS_PER_TURN: usize = 64;
/// How long a listener stops accepting after the process ran out of descriptors.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listening socket: TCP or Unix.
pub trait Acceptor: mio::event::Source + 'static {
    /// Accepts one pending connection.
    ///
    /// # Errors
    ///
    /// As `accept(2)`; `WouldBlock` when none is pending.
    fn accept_stream(&self) -> io::Result<(Box<dyn Stream>, Address)>;

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`.
    fn local_address(&self) -> io::Result<Address>;
}

impl Acceptor for TcpListener {
    fn accept_stream(&self) -> io::Result<(Box<dyn Stream>, Address)> {
        let (stream, peer) = self.accept()?;
        Ok((Box::new(stream), Address::Tcp(peer)))
    }

    fn local_address(&self) -> io::Result<Address> {
        self.local_addr().map(Address::Tcp)
    }
}

impl Acceptor for UnixListener {
    fn accept_stream(&self) -> io::Result<(Box<dyn Stream>, Address)> {
        let (stream, peer) = self.accept()?;
        Ok((Box::new(stream), Address::from(peer)))
    }

    fn local_address(&self) -> io::Result<Address> {
        self.local_addr().map(Address::from)
    }
}

/// What a listener does with each accepted stream.
pub type OnAccept = Box<dyn FnMut(&mut Reactor, Box<dyn Stream>, Address)>;

/// A listening socket registered as a reader: accepts until the socket would block
/// (at most [`MAX_ACCEPTS_PER_TURN`] per turn) and hands each stream to its callback.
///
/// When the process runs out of file descriptors (`EMFILE`, `ENFILE`) or memory, it
/// logs, stops accepting for [`ACCEPT_BACKOFF`] and tries again: the listener survives
/// and the loop does not spin.
pub struct Listener {
    acceptor: Box<dyn Acceptor>,
    on_accept: OnAccept,
    address: Address,
    backing_off: bool,
    on_close: Option<OnClose>,
    /// For a Unix listener: its socket file (device, inode), removed when it stops
    /// if it is still the same file.
    socket_file: Option<(u64, u64)>,
}

/// What a listener does when it stops listening, however that happens.
pub type OnClose = Box<dyn FnOnce(&mut Reactor)>;

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Registers `acceptor` with the reactor and starts accepting; returns the
    /// listener's id and the address it listens on.
    ///
    /// # Errors
    ///
    /// [`TransportError::Socket`] if the address cannot be read,
    /// [`TransportError::Reactor`] if it cannot be registered.
    pub fn start(
        reactor: &mut Reactor,
        acceptor: impl Acceptor,
        on_accept: OnAccept,
    ) -> Result<(DescriptorId, Address), TransportError> {
        let address = acceptor.local_address().map_err(TransportError::Socket)?;
        let listener = Listener {
            acceptor: Box::new(acceptor),
            on_accept,
            address: address.clone(),
            backing_off: false,
            on_close: None,
            socket_file: socket_file_of(&address),
        };
        let id = reactor.insert(Box::new(listener))?;
        reactor.add_reader(id)?;
        Ok((id, address))
    }

    /// Stops listening: the socket is closed and the close hook runs, exactly once;
    /// connections already accepted go on. Returns whether `id` was a listener of this
    /// reactor.
    ///
    /// It works from anywhere, including from inside the listener's own accept
    /// callback (a connection it just accepted stopping its port): the listener is out
    /// of the reactor at once, accepts nothing more, and its close hook runs as soon
    /// as the accept callback returns.
    #[doc(alias = "stopListening")]
    pub fn stop(reactor: &mut Reactor, id: DescriptorId) -> bool {
        let found = reactor.deliver::<Listener>(id, move |listener, reactor| {
            listener.close(reactor, id);
        });
        if found && reactor.contains(id) {
            // Being dispatched: the close is queued for when the accept callback
            // returns, but the listener leaves the reactor now, so the accept loop on
            // the stack stops and a later `set_on_close` is refused.
            let removed = reactor.remove_descriptor(id);
            debug_assert!(matches!(removed, Ok(Removed::WhileDispatched)));
        }
        found
    }

    /// Sets what to do when the listener stops: by [`stop`](Self::stop), an error, or
    /// the reactor shutting down (a port tells its factory it is no longer used). It
    /// replaces any earlier hook. Works from inside the accept callback too. Returns
    /// whether `id` is a listener still listening.
    pub fn set_on_close(reactor: &mut Reactor, id: DescriptorId, on_close: OnClose) -> bool {
        reactor.deliver::<Listener>(id, move |listener, _| listener.on_close = Some(on_close))
    }

    /// Removes a Unix listener's socket file, as Twisted's `unix.Port` does when it
    /// stops, unless another file has taken its place.
    fn remove_socket_file(&mut self) {
        let (Some(file), Address::Unix(Some(path))) = (self.socket_file.take(), &self.address)
        else {
            return;
        };
        if socket_file_of(&self.address) == Some(file) {
            if let Err(e) = std::fs::remove_file(path) {
                warn!(
                    "listener {}: cannot remove its socket file: {e}",
                    self.address
                );
            }
        }
    }

    /// Leaves the reactor (if still in it) and runs the close hook.
    fn close(&mut self, reactor: &mut Reactor, id: DescriptorId) {
        if reactor.contains(id) {
            // Lent to us by `deliver`: dropped when this returns.
            let removed = reactor.remove_descriptor(id);
            debug_assert!(matches!(removed, Ok(Removed::WhileDispatched)));
        }
        debug!("listener {} stopped", self.address);
        self.remove_socket_file();
        if let Some(on_close) = self.on_close.take() {
            on_close(reactor);
        }
    }

    /// The address it listens on.
    pub fn address(&self) -> &Address {
        &self.address
    }

    fn back_off(&mut self, reactor: &mut Reactor, id: DescriptorId, e: &io::Error) {
        if !self.backing_off {
            warn!(
                "listener {}: cannot accept ({e}); pausing accepts for {ACCEPT_BACKOFF:?}",
                self.address
            );
        }
        self.backing_off = true;
        // Being dispatched, so in the reactor: it cannot refuse.
        let paused = reactor.remove_reader(id);
        debug_assert!(paused.is_ok(), "listener {id}: {paused:?}");
        reactor.call_later(ACCEPT_BACKOFF, move |reactor| {
            reactor.with_descriptor::<Listener, _>(id, |listener, reactor| {
                listener.backing_off = false;
                // Lent by with_descriptor, so in the reactor: it cannot refuse.
                let resumed = reactor.add_reader(id);
                debug_assert!(resumed.is_ok(), "listener {id}: {resumed:?}");
            });
        });
    }
}

/// The (device, inode) of the socket file a Unix address names.
fn socket_file_of(address: &Address) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let Address::Unix(Some(path)) = address else {
        return None;
    };
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl Descriptor for Listener {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        self.acceptor.as_mut()
    }

    fn do_read(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        for _ in 0..MAX_ACCEPTS_PER_TURN {
            match self.acceptor.accept_stream() {
                Ok((stream, peer)) => {
                    (self.on_accept)(reactor, stream, peer);
                    if !reactor.is_reading(id) {
                        // Stopped, or paused, by the callback: accept nothing more
                        // now (Twisted's accept loop checks `disconnecting` the same
                        // way). Readiness is kept for a paused listener.
                        return Ok(IoStatus::Ready);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(IoStatus::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_resource_exhaustion(&e) => {
                    self.back_off(reactor, id, &e);
                    // Readiness is kept: accepts resume after the back-off.
                    return Ok(IoStatus::Ready);
                }
                Err(e) => debug!("listener {}: accept failed: {e}", self.address),
            }
        }
        Ok(IoStatus::Ready)
    }

    fn connection_lost(&mut self, reactor: &mut Reactor, _: DescriptorId, reason: LostReason) {
        debug!("listener {} closed: {reason}", self.address);
        self.remove_socket_file();
        if let Some(on_close) = self.on_close.take() {
            on_close(reactor);
        }
    }

    fn log_prefix(&self) -> &str {
        "listener"
    }
}
