//! The poetry client of the Twisted Introduction: get-poetry 2.x (Part 5) made
//! reusable with Deferreds (client 4.0, Parts 6–9, 17–19).
//!
//! [`get_poetry`] downloads one poem and returns a `Deferred<Poem>`: other code asks
//! for a poem and learns, through the callbacks it attaches (or by `.await`ing it),
//! when it has arrived — whole, or why not ([`PoetryError`]). Cancelling the Deferred
//! aborts the download (Part 19). A poem whose connection broke is never handed on as
//! if whole, and one reset before its first byte is a refusal, never an empty poem.
//!
//! | here | Twisted Introduction |
//! |---|---|
//! | [`get_poetry`], [`get_poetry_with`] → `Deferred<Poem>` | client 4.0's `get_poetry(host, port)` |
//! | [`download`] (each read handed to a closure) | the protocol and factory under it |
//! | [`start`], [`PoetryClientFactory`], [`report`] | get-poetry 2.x's main loop, for the `poetry-client` program |
//!
//! The examples are the tutorial's clients, each the counterpart of its listing:
//! `get_poetry_simple` (2.1, a protocol and factory, no Deferred), `client_3_0` (a
//! plain callback), `client_3_1` (callback and errback), `client_4_0` (a Deferred),
//! `client_5_0` (a chain with a `cummingsify` that sometimes fails and an errback
//! that recovers), `client_8_0` (an `async fn` with `gather_results` and a timeout that
//! cancels a slow download); and `get_poetry_stack` (the call stack at
//! `data_received` and `connection_lost`, the tutorial's exercise 2).
//!
//! The binary `poetry-client` is a thin command line over [`start`] (one [`download`]
//! per address) and [`report`].
//!
//! # Example
//!
//! ```no_run
//! use deferred::{ensure_deferred, Failure};
//! use poetry_client::{get_poetry, parse_address};
//! use reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! let address = parse_address("10000")?;
//! let poem = get_poetry(&mut reactor, &address);
//! let local = reactor.local_handle();
//! let mut lines = ensure_deferred(&mut reactor, async move {
//!     let poem = poem.await?;
//!     let _ = local.call_soon(|r| r.stop());
//!     Ok::<_, Failure>(String::from_utf8_lossy(&poem).lines().count())
//! });
//! reactor.run()?;
//! println!("{:?} lines", lines.take_result().map(|r| r.ok()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod client;
mod get;
pub mod report;

pub use crate::address::{parse_address, AddressError, PoemAddress};
pub use crate::client::{
    download_all, start, Arrivals, ClientOptions, Notifier, Outcome, PoetryClientFactory, Task,
    DEFAULT_MAX_POEM_BYTES,
};
pub use crate::get::{
    download, get_poetry, get_poetry_with, Chunk, GetOptions, OnData, Poem, PoetryError,
};
