//! Building sockets with socket2: listening sockets with a chosen backlog and reuse
//! options, and non-blocking connects.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::address::Address;
use crate::error::TransportError;

/// How to create a listening socket.
///
/// # Examples
///
/// ```
/// use transport::ListenOptions;
///
/// let options = ListenOptions { backlog: 4096, reuse_port: true, ..ListenOptions::default() };
/// let listener = transport::bind_tcp("127.0.0.1:0".parse().unwrap(), &options).unwrap();
/// assert_ne!(listener.local_addr().unwrap().port(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// Length of the queue of connections not yet accepted (Twisted's `backlog`,
    /// default 50 there; 1024 here, since mio's own listener fixes 128).
    pub backlog: i32,
    /// `SO_REUSEADDR`: rebind at once after a restart (default on).
    pub reuse_address: bool,
    /// `SO_REUSEPORT`: let several sockets (one per reactor thread) share the port.
    pub reuse_port: bool,
    /// `SO_SNDBUF` of every accepted connection (`None`: the kernel's autotuning).
    /// Set once, on the listening socket: Linux gives each socket it accepts the
    /// listener's options, so a connection costs no system call for it.
    pub send_buffer: Option<usize>,
    /// `SO_LINGER {on, 0}` on every accepted connection: closing one resets it
    /// (whatever it had not delivered is dropped, and the peer sees a reset, never a
    /// clean end) until the protocol switches linger off through the connection's
    /// handle. Set once, on the listening socket, as `send_buffer`; it holds from the
    /// moment the kernel accepts the connection.
    pub reset_on_close: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            send_buffer: None,
            reset_on_close: false,
        }
    }
}

/// A non-blocking TCP listening socket on `address` (port 0: any free port; ask the
/// listener for the real one). The IPv6 wildcard `::` takes IPv4 clients too (dual
/// stack, `IPV6_V6ONLY` off); any other IPv6 address, `::1` included, is IPv6 only.
///
/// # Errors
///
/// [`TransportError::Bind`] if the address cannot be bound (in use, not local);
/// [`TransportError::Socket`] for other socket failures.
pub fn bind_tcp(
    address: SocketAddr,
    options: &ListenOptions,
) -> Result<TcpListener, TransportError> {
    let bind_error = |source| TransportError::Bind {
        address: Address::Tcp(address),
        source,
    };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(TransportError::Socket)?;
    socket
        .set_nonblocking(true)
        .map_err(TransportError::Socket)?;
    socket.set_cloexec(true).map_err(TransportError::Socket)?;
    if options.reuse_address {
        socket
            .set_reuse_address(true)
            .map_err(TransportError::Socket)?;
    }
    if options.reuse_port {
        socket
            .set_reuse_port(true)
            .map_err(TransportError::Socket)?;
    }
    if let Some(bytes) = options.send_buffer {
        socket
            .set_send_buffer_size(bytes)
            .map_err(TransportError::Socket)?;
    }
    if options.reset_on_close {
        socket
            .set_linger(Some(std::time::Duration::ZERO))
            .map_err(TransportError::Socket)?;
    }
    if address.is_ipv6() {
        // `::` is every interface, IPv4 ones included (dual stack, as Twisted's
        // `listenTCP(port, interface='::')` on Linux); any other IPv6 address is that
        // address only.
        socket
            .set_only_v6(!address.ip().is_unspecified())
            .map_err(TransportError::Socket)?;
    }
    socket.bind(&address.into()).map_err(bind_error)?;
    socket.listen(options.backlog).map_err(bind_error)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// A non-blocking Unix-domain listening socket at `path`.
///
/// A socket file already at `path` that no one accepts on (left by a listener that
/// did not stop cleanly) is removed first; one a live listener accepts on is left
/// alone and refused. (A [`Listener`](crate::Listener) removes its socket file when it
/// stops.) Which it is, is found by connecting to it: a live listener sees one
/// connection opened and closed at once, with no bytes.
///
/// # Errors
///
/// [`TransportError::Bind`] if the path cannot be bound: a live listener accepts on it
/// (`AddrInUse`, "a listener is already accepting on this path"), something other
/// than a socket is there, no permission.
pub fn bind_unix(path: &Path, backlog: i32) -> Result<UnixListener, TransportError> {
    let bind_error = |source| TransportError::Bind {
        address: Address::Unix(Some(path.to_path_buf())),
        source,
    };
    clear_stale_socket(path).map_err(bind_error)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(TransportError::Socket)?;
    socket
        .set_nonblocking(true)
        .map_err(TransportError::Socket)?;
    socket.set_cloexec(true).map_err(TransportError::Socket)?;
    let addr = SockAddr::unix(path).map_err(bind_error)?;
    socket.bind(&addr).map_err(bind_error)?;
    socket.listen(backlog).map_err(bind_error)?;
    let std_listener: std::os::unix::net::UnixListener = socket.into();
    Ok(UnixListener::from_std(std_listener))
}

/// Removes the socket file at `path` if no one accepts on it; refuses (`AddrInUse`) if
/// someone does. Anything else (nothing there, not a socket) is left to `bind`.
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        return Ok(());
    }
    // Non-blocking, so a live listener with a full backlog answers at once too.
    let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    probe.set_nonblocking(true)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Ok(()) => Err(in_use()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(in_use()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::debug!("removing stale socket file {}", path.display());
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        Err(_) => Ok(()),
    }
}

fn in_use() -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        "a listener is already accepting on this path",
    )
}

/// Starts a non-blocking TCP connect to `address`, optionally from `bind`; it
/// completes (or fails) when the socket becomes writable.
///
/// # Errors
///
/// An immediate failure (no route, bad bind address, refused at once).
pub fn start_connect_tcp(address: SocketAddr, bind: Option<SocketAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    if let Some(bind) = bind {
        socket.bind(&bind.into())?;
    }
    match socket.connect(&address.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Starts a non-blocking connect to the Unix-domain socket at `path`.
///
/// # Errors
///
/// An immediate failure (no such socket, refused).
pub fn start_connect_unix(path: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(path)
}
