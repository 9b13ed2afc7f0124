//! The poetry client of the Twisted Introduction, Part 5 ("Twistier Poetry"):
//! get-poetry 2.0 and 2.1, written only against the protocol layer.
//!
//! One [`PoetryProtocol`] per connection collects a poem until the server closes; one
//! [`PoetryClientFactory`] holds every task and stops the reactor when the last one
//! ends. Unlike the tutorial, the reason a connection ended is not ignored: a poem
//! whose connection broke is reported incomplete, never printed as if whole, and one
//! reset before its first byte is a refusal ([`Outcome::Refused`]), never an empty poem.
//!
//! The examples: `get_poetry_simple` is the tutorial's client 2.1 on its own (poems
//! only, in the order they finish); `get_poetry_stack` prints the call stack at
//! `data_received` and `connection_lost` (the tutorial's exercise 2).
//!
//! The binary `poetry-client` is a thin command line over [`start`] and [`report`].
//!
//! # Example
//!
//! ```no_run
//! use poetry_client::{get_poetry, parse_address, ClientOptions};
//!
//! let addresses = ["10000", "localhost:10001"].map(|a| parse_address(a).unwrap());
//! for task in get_poetry(&addresses, ClientOptions::default())? {
//!     println!("{}", poetry_client::report::header(&task));
//! }
//! # Ok::<(), reactor::ReactorError>(())
//! ```

mod address;
mod client;
pub mod report;

pub use crate::address::{parse_address, AddressError, PoemAddress};
pub use crate::client::{
    get_poetry, start, Arrivals, ClientOptions, Notifier, Outcome, PoetryClientFactory,
    PoetryProtocol, Task, DEFAULT_MAX_POEM_BYTES,
};
