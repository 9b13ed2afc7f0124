//! The poetry server of the Twisted Introduction, Part 5 ("Twistier Poetry"), slow
//! and fast, written only against the protocol layer.
//!
//! The wire protocol: the server sends the whole poem as soon as a client connects,
//! then closes; the close marks the end of the poem. Any TCP client (`nc`) will do.
//! A clean close means the whole poem was sent: anything that cuts a send short
//! (the client, an error, the idle timeout, the poem file changing, the server
//! stopping or dying, a refusal over the cap) resets the connection instead.
//!
//! | here | Twisted Introduction / Twisted |
//! |---|---|
//! | [`PoetryProtocol`] | `PoetryProtocol` (`fastpoetry.py`): `connectionMade` writes the poem, then `loseConnection` |
//! | [`PoetryFactory`] | `PoetryFactory`, a `ServerFactory` holding the poem |
//! | [`serve`] | `reactor.listenTCP(port, factory, interface=iface)` |
//! | [`Poem`] | the poem file read at start (`PoetryService.poem` in version 2.0) |
//! | slow mode (`delay`, `num_bytes`) | `slowpoetry.py`'s `--delay` / `--num-bytes` loop, here a `callLater` timer per client |
//! | fast mode's pull producer | `IPullProducer` and `registerProducer(producer, False)` |
//! | [`serve_on_threads`] | none: Twisted has one reactor thread |
//!
//! * Slow mode (`delay > 0`, the tutorial's `slowpoetry.py`): `num_bytes` every
//!   `delay`, from a timer on the reactor, so one thread serves thousands of clients,
//!   each at its own pace. A UTF-8 poem is cut on character boundaries (a piece is a
//!   few bytes shorter, or for a tiny `num_bytes` longer, than asked), as the
//!   tutorial's server, which counts characters, does; a client that does not read
//!   skips ticks until it does.
//! * Fast mode (`delay == 0`): the protocol is the transport's pull producer, writing
//!   one chunk each time the buffer drains, so a huge poem is streamed with bounded
//!   memory per client (files over [`poem::IN_MEMORY_LIMIT`] are read piece by piece
//!   with `pread` from one shared descriptor).
//!
//! The binary `poetry-server` is a thin command line over [`serve`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use poetry_server::{serve, Poem, ServerOptions};
//!
//! let mut reactor = reactor::Reactor::new()?;
//! let options = ServerOptions { delay: Duration::ZERO, ..ServerOptions::default() };
//! let (port, factory) = serve(&mut reactor, Poem::default_poem(), options)?;
//! println!("Serving {} on port {}.", factory.borrow().poem().name(), port.get_host().port().unwrap());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod limits;
mod mapped;
pub mod poem;
mod send;
mod server;
pub mod sockopt;
mod threads;

pub use crate::error::ServerError;
pub use crate::poem::Poem;
pub use crate::send::{PoetryProtocol, SLOW_HIGH_WATER};
pub use crate::server::{serve, PoetryFactory, ServerOptions, Stats, FAST_CHUNK, SENDFILE_CHUNK};
pub use crate::sockopt::SendBuffer;
pub use crate::threads::serve_on_threads;
