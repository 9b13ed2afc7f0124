//! The Rust community's default: idiomatic tokio poetry and echo servers, for the
//! benchmark to compare against.
//!
//! Written the way the tokio README and tutorial write servers: `tokio::net`, one
//! `tokio::spawn` per connection, `write_all` of the in-memory poem, a read/`write_all`
//! loop for echo. No tuning beyond what every peer in the benchmark shares: a listen
//! backlog of 1024 ([`listen`]) and `TCP_NODELAY` on echo connections (so that Nagle
//! does not hold back split replies).
//!
//! | here | Twisted (tutorial) |
//! |---|---|
//! | [`serve_poetry`] | `fastpoetry.py`: `transport.write(poem)` in `connectionMade`, then `loseConnection` |
//! | [`serve_echo`] | `Echo.dataReceived` → `transport.write(data)` |
//! | [`serve_udp_echo`] | `DatagramProtocol.datagramReceived` → `transport.write(data, addr)` |
//! | [`Flavor::Multi`], [`Flavor::Current`] | (one reactor thread, always) |
//!
//! # What it does not do
//!
//! No timeouts, no limits, no graceful drain: on a signal the runtime is dropped and
//! every connection with it.
//!
//! # Example
//!
//! Run it with `cargo run --release -p tokio-server -- --runtime current echo --port 0`,
//! then reach it with `nc 127.0.0.1 <port>`. In-process:
//!
//! ```
//! use std::io::{Read, Write};
//! use tokio_server::{listen, runtime, serve_echo, Flavor};
//!
//! let rt = runtime(Flavor::Current)?;
//! let listener = rt.block_on(async { listen("127.0.0.1:0".parse().unwrap()) })?;
//! let addr = listener.local_addr()?;
//! let _server = rt.spawn(serve_echo(listener));
//! // Drive the current-thread runtime on another thread while we act as the client.
//! std::thread::spawn(move || rt.block_on(std::future::pending::<()>()));
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"ping")?;
//! let mut reply = [0u8; 4];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"ping");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};

pub use bench_support::raise_fd_limit;

/// Which tokio runtime to serve on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `new_multi_thread`: a worker per CPU, work stealing.
    Multi,
    /// `new_current_thread`: everything on the thread that calls `block_on`.
    Current,
}

/// Builds the runtime (I/O and time drivers enabled).
///
/// # Errors
///
/// The error of creating the runtime's poll or threads.
pub fn runtime(flavor: Flavor) -> io::Result<tokio::runtime::Runtime> {
    match flavor {
        Flavor::Multi => tokio::runtime::Builder::new_multi_thread(),
        Flavor::Current => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
}

/// The listen backlog of every peer in the benchmark. (`TcpListener::bind` uses 128,
/// mio's value, which overflows when a load generator opens thousands of connections
/// at once; each overflow costs that client a 1 s SYN retry.)
pub const BACKLOG: u32 = 1024;

/// Binds `addr` with [`BACKLOG`], through tokio's `TcpSocket` (with `SO_REUSEADDR`, as
/// `TcpListener::bind` sets). Must be called inside the runtime.
///
/// # Errors
///
/// The error of creating, binding or listening on the socket.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts forever; each connection gets the whole poem, then is closed.
pub async fn serve_poetry(listener: TcpListener, poem: Arc<[u8]>) {
    loop {
        let Some(mut socket) = accept(&listener).await else {
            continue;
        };
        let poem = Arc::clone(&poem);
        tokio::spawn(async move {
            // A client that leaves early is not our problem; dropping closes.
            let _ = socket.write_all(&poem).await;
        });
    }
}

/// Accepts forever; each connection gets back whatever it sends.
pub async fn serve_echo(listener: TcpListener) {
    loop {
        let Some(mut socket) = accept(&listener).await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            // As in the tokio README.
            let mut buf = [0u8; 1024];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Receives forever on `socket` (`recv_from`, then `send_to` back to the sender), as
/// tokio's own UDP echo example does; errors (an ICMP refusal of an earlier reply)
/// are skipped.
pub async fn serve_udp_echo(socket: UdpSocket) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let _ = socket.send_to(&buf[..n], from).await;
    }
}

/// One accepted connection, or `None` after an accept error (and a short pause, so
/// that running out of descriptors does not spin; as mini-redis does).
async fn accept(listener: &TcpListener) -> Option<tokio::net::TcpStream> {
    match listener.accept().await {
        Ok((socket, _)) => Some(socket),
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(10)).await;
            None
        }
    }
}
