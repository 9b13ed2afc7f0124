//! Stream transports on the reactor: Twisted's `ITransport` over TCP and Unix sockets.
//!
//! The second layer. A [`Connection`] *is* a reactor [`Descriptor`](reactor::Descriptor):
//! the `do_read` the reactor calls is the transport in disguise, which reads the socket
//! and hands the bytes up to its [`Handler`]. Writes are buffered, ordered and never
//! block; closes are graceful or abortive; the reason a connection ended is a typed
//! [`DisconnectReason`].
//!
//! | here | Twisted |
//! |---|---|
//! | [`Connection`] | `tcp.Connection`, `abstract.FileDescriptor` |
//! | [`Transport`]: `write`, `write_sequence`, `lose_connection`, `abort_connection`, `get_host`, `get_peer` | `ITransport`, `ITCPTransport` |
//! | [`Transport::lose_write_connection`], [`Handler::read_connection_lost`] | `IHalfCloseableDescriptor`, `IHalfCloseableProtocol` |
//! | [`Transport::register_producer`], [`Handler::pause_producing`], [`Handler::resume_producing`], [`Handler::stop_producing`] | `IConsumer`, `IPushProducer`, `IPullProducer`, `IProducer.stopProducing` |
//! | [`Handler`] | `IProtocol`, as the transport calls it |
//! | [`DisconnectReason`] | `ConnectionDone`, `ConnectionLost`, `ConnectionAborted`, `TimeoutError`, `ConnectionRefusedError` |
//! | [`Listener`], [`bind_tcp`], [`ListenOptions`] | the accepting half of `tcp.Port` |
//! | [`Connecting`], [`start_connect_tcp`] | the connecting half of `tcp.Client` |
//! | [`MemoryStream`] | what `StringTransport` fakes, done with the real transport |
//! | [`PipeStream`], [`start_stdio`], [`Address::Pipe`] | `stdio.StandardIO`, `process.ProcessReader` / `ProcessWriter`, `PipeAddress` |
//! | [`UdpPort`], [`DatagramHandler`], [`DatagramTransport`] | `udp.Port`, `DatagramProtocol`, `IUDPTransport` |
//! | [`spawn_process`], [`ProcessHandler`], [`ProcessTransport`], [`ProcessStatus`] | `spawnProcess`, `IProcessProtocol`, `IProcessTransport`, `ProcessDone` / `ProcessTerminated` |
//!
//! # Edge-triggered, level-served
//!
//! mio reports readiness edges; a connection reads until the socket would block, at
//! most [`MAX_READS_PER_TURN`] reads per turn so one busy peer cannot starve the
//! others, and the reactor remembers readiness left over (see
//! [`IoStatus`](reactor::IoStatus)), including readiness that arrives while reading is
//! paused.
//!
//! # One protocol over every stream
//!
//! Part 5 of the Twisted Introduction says a transport is any connection that sends
//! and receives bytes, and a protocol does not care which. Here every stream transport
//! is the same [`Connection`] over a different [`Stream`]: a TCP or Unix socket, a
//! [`MemoryStream`], or a [`PipeStream`] (this process's stdin and stdout, or a
//! child's pipes). So a handler, and the protocol crate's `Protocol` built on it, runs
//! unchanged over all of them, with the same buffering, flow control, half-close
//! (`read_connection_lost`) and reasons. `protocol/tests/stdio_child.rs`
//! (`one_protocol_over_every_stream`) runs one `LineReceiver` over TCP, a Unix socket,
//! its own stdio in a child process, a child's pipes and the in-memory stream, and
//! checks the peer reads the same bytes and every connection ends cleanly.
//!
//! A child process ([`spawn_process`]) is three such connections (one per pipe) plus
//! its pidfd; its handler is Twisted's `IProcessProtocol`, with one call per pipe.
//!
//! # What it does not do
//!
//! No factories, no protocols, no name resolution: the `protocol` crate builds those on
//! [`Handler`], [`Listener`] and [`Connecting`].
//!
//! # Example
//!
//! An echo over a socket pair, with a trivial handler and no protocol crate:
//!
//! ```
//! use std::io::{Read, Write};
//! use reactor::Reactor;
//! use transport::{Connection, DisconnectReason, Handler, Transport};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
//!         t.write(data);
//!         t.lose_connection();
//!     }
//!     fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &DisconnectReason) {
//!         assert!(reason.is_clean());
//!         t.reactor().stop();
//!     }
//! }
//!
//! let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
//! ours.set_nonblocking(true)?;
//! let mut reactor = Reactor::new()?;
//! let ours = mio::net::UnixStream::from_std(ours);
//! let peer = transport::Address::Unix(None); // a socket pair's peer has no name
//! Connection::start(&mut reactor, Box::new(ours), peer, Echo)?;
//! (&theirs).write_all(b"ping")?;
//! reactor.run()?;
//! let mut reply = Vec::new();
//! (&theirs).read_to_end(&mut reply)?;
//! assert_eq!(reply, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod connecting;
mod connection;
mod error;
mod handler;
mod listener;
mod memory;
mod process;
mod process_state;
mod read_buffer;
mod reason;
mod socket;
mod stdio;
mod stream;
mod udp;
mod write_buffer;

pub use crate::address::Address;
pub use crate::connecting::{Connecting, OnConnect};
pub use crate::connection::{
    Connection, Transport, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, MAX_READS_PER_TURN, READ_CHUNK,
};
pub use crate::error::TransportError;
pub use crate::handler::{EofAction, Handler};
pub use crate::listener::{
    Acceptor, Listener, OnAccept, OnClose, ACCEPT_BACKOFF, MAX_ACCEPTS_PER_TURN,
};
pub use crate::memory::MemoryStream;
pub use crate::process::{
    spawn_process, ChildFd, ProcessError, ProcessHandler, ProcessOptions, ProcessStatus,
    ProcessTransport,
};
pub use crate::reason::DisconnectReason;
pub use crate::socket::{
    bind_tcp, bind_unix, start_connect_tcp, start_connect_unix, ListenOptions,
};
pub use crate::stdio::{start_stdio, PipeStream};
pub use crate::stream::Stream;
pub use crate::udp::{
    DatagramHandler, DatagramTransport, UdpCounters, UdpOptions, UdpPort, MAX_BYTES_PER_TURN,
    MAX_DATAGRAM, MAX_DATAGRAMS_PER_TURN,
};
