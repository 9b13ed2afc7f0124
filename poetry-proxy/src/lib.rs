//! The caching poetry proxy of the Twisted Introduction, Parts 14 and 19: a server
//! that hands each client the poem of another poetry server, fetched once and then
//! served from its cache. Written only against the public APIs of `protocol`,
//! `deferred` and the reusable poetry client (`poetry_client::get_poetry`, which
//! downloads each poem from upstream): a worked example of a protocol crate built on
//! the workspace.
//!
//! Each client that connects gets the poem and a clean close, like from any poetry
//! server. The [`ProxyService`] answers with a [`Deferred`](deferred::Deferred): an
//! already-fired one from the cache (`Using cached poem.`), or one that fires when
//! the download from upstream ends (`Fetching poem from server.`); the protocol
//! takes it through `maybe_deferred` either way, so there is one code path (Part 14).
//! When every client waiting for a download has gone, the download is cancelled
//! through its Deferred's canceller and the upstream connection is reset
//! (`Canceling poem download.`, Part 19).
//!
//! | here | Twisted Introduction / Twisted |
//! |---|---|
//! | [`ProxyProtocol`], [`ProxyFactory`] | `PoetryProxyProtocol`, `PoetryProxyFactory` |
//! | [`ProxyService`], [`ProxyService::get_poem`] | `ProxyService`, `ProxyService.get_poem` |
//! | `poetry_client::get_poetry_with` | client 4.0's `get_poetry` (the upstream download) |
//! | `deferred::succeed`, `deferred::maybe_deferred` | `succeed`, `maybeDeferred` (Part 14) |
//! | `Deferred::with_canceller`, `cancel` | `Deferred(canceller)`, `cancel` (Part 19) |
//! | [`ProxyEvent`] | the tutorial's `print` lines |
//! | `poetry-proxy` | `twisted-server-2/poetry-proxy.py` (2.0), `twisted-server-4/poetry-proxy.py` (3.0) |
//!
//! Better than the original:
//!
//! * concurrent first requests share one download (the original starts one per
//!   client until the cache fills);
//! * a failed or cut download is never cached, and its clients get a reset, never a
//!   short poem with a clean close that looks whole (the original caches whatever
//!   arrived before the connection broke);
//! * the poem, hence the cache, is bounded ([`GetOptions::max_poem_bytes`]), as are
//!   the connections and their idle time;
//! * one client leaving does not cancel a download others still wait for.
//!
//! # Example: proxy a poetry server, fetch twice
//!
//! ```
//! use std::io::Read;
//! use std::time::Duration;
//! use poetry_proxy::{serve, ProxyOptions};
//! use protocol::prelude::*;
//!
//! // An upstream "poetry server": sends a poem and closes.
//! #[derive(Default)]
//! struct Poet;
//! impl Protocol for Poet {
//!     type Factory = SimpleFactory<Poet>;
//!     fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
//!         cx.write(b"Here is my poem.\n");
//!         cx.lose_connection();
//!     }
//!     fn data_received(&mut self, _cx: &mut Context<'_, Self>, _data: &[u8]) {}
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let poet = for_protocol::<Poet>();
//! let upstream = listen_tcp(&mut reactor, 0, &poet, &TcpListenOptions::default())?;
//! let upstream_port = upstream.get_host().port().expect("a TCP port");
//! let (proxy, factory) = serve(&mut reactor, "127.0.0.1", upstream_port, ProxyOptions::default())?;
//! let proxy_port = proxy.get_host().port().expect("a TCP port");
//! let client = std::thread::spawn(move || -> std::io::Result<Vec<Vec<u8>>> {
//!     let mut poems = Vec::new();
//!     for _ in 0..2 {
//!         let mut poem = Vec::new();
//!         std::net::TcpStream::connect(("127.0.0.1", proxy_port))?.read_to_end(&mut poem)?;
//!         poems.push(poem);
//!     }
//!     Ok(poems)
//! });
//! for _ in 0..1000 {
//!     if client.is_finished() {
//!         break;
//!     }
//!     reactor.iterate(Some(Duration::from_millis(10)))?;
//! }
//! assert_eq!(client.join().unwrap()?, [b"Here is my poem.\n", b"Here is my poem.\n"]);
//! let stats = factory.borrow().service().borrow().stats();
//! assert_eq!((stats.downloads, stats.from_cache), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it does not do
//!
//! The cache never expires (as in the tutorial): restart the proxy for a new poem.
//! No sockets or event loop of its own: it names neither the `reactor` nor the
//! `transport` crate, and reaches them only through `protocol`'s re-exports.

mod server;
mod service;

pub use poetry_client::GetOptions;

/// A poem, shared (by the cache and every client it is sent to) without copying.
pub type Poem = std::rc::Rc<[u8]>;

/// The largest poem the proxy downloads (and caches) by default: 16 MiB.
pub const DEFAULT_MAX_POEM_BYTES: u64 = 16 << 20;

/// How the proxy downloads from upstream by default: [`DEFAULT_MAX_POEM_BYTES`] and
/// the client's connect timeout.
pub fn default_get_options() -> GetOptions {
    GetOptions {
        max_poem_bytes: DEFAULT_MAX_POEM_BYTES,
        ..GetOptions::default()
    }
}
pub use crate::server::{serve, ProxyFactory, ProxyOptions, ProxyProtocol};
pub use crate::service::{ProxyEvent, ProxyService, ProxyStats, UpstreamError};
