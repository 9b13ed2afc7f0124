//! The benchmark floor: one thread, one hand-written mio readiness loop, no layers.
//!
//! Everything the `reactor` → `transport` → `protocol` stack does with traits,
//! descriptors and factories, this crate does inline in one `match` over mio events.
//! It answers "how fast could it go with no design at all?", so the layered server can
//! be measured against it.
//!
//! | here | Twisted (tutorial) | what it serves |
//! |---|---|---|
//! | [`Mode::Poetry`] | `fastpoetry.py`'s `connectionMade`: write the poem, `loseConnection` | the in-memory poem, non-blocking `write` until done, then close |
//! | [`Mode::Sendfile`] | (none: Twisted has no zero-copy path) | the same bytes with `sendfile(2)` from one open file: the kernel limit |
//! | [`Mode::Echo`] | `Echo.dataReceived` → `transport.write` | whatever it reads, written straight back |
//! | [`serve_bare`] | (none) | the same bytes with no event loop at all, one client at a time, blocking: `sendfile` in 4 MiB asks with `TCP_CORK`, or `pread` into one 1 MiB buffer + `write` (the bulk scenario's bare references) |
//! | [`UdpEcho`] | `DatagramProtocol.datagramReceived` → `transport.write(data, addr)` | every UDP datagram, sent straight back to its sender |
//!
//! # Memory per connection
//!
//! A connection is one slot: the socket, a progress counter and an (unallocated) output
//! `Vec`. Echo reads into one 64 KiB buffer shared by all connections and keeps bytes
//! only for a peer that stops reading; so 10,000 idle connections cost their slots and
//! the kernel's socket memory, nothing more.
//!
//! # What it does not do
//!
//! No timers, no protocol objects, no buffering policy, no backpressure beyond "stop
//! reading this echo peer until its reply is flushed". It binds what it is told; the
//! binary binds 127.0.0.1 only.
//!
//! # Example
//!
//! Run it with `cargo run --release -p raw-mio-server -- echo --port 0`, then reach it
//! with `nc 127.0.0.1 <port>`. In-process, with a [`StopHandle`]:
//!
//! ```
//! use std::io::{Read, Write};
//! use raw_mio_server::{Mode, Server};
//!
//! let server = Server::bind("127.0.0.1:0".parse().unwrap(), Mode::Echo)?;
//! let addr = server.local_addr()?;
//! let stop = server.stop_handle();
//! let thread = std::thread::spawn(move || server.run());
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"ping")?;
//! let mut reply = [0u8; 4];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"ping");
//!
//! stop.stop()?;
//! thread.join().unwrap()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod bare;
mod server;
mod udp;

pub use crate::bare::{bind_bare, serve_bare, BareMode, PREAD_BUFFER, SENDFILE_ASK};
pub use crate::server::{Mode, Server, StopHandle};
pub use crate::udp::UdpEcho;
pub use bench_support::raise_fd_limit;
