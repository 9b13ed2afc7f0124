//! The poetry transformation service of the Twisted Introduction, Parts 10–13: a
//! server that transforms poems on request, written only against the public API of
//! the `protocol` crate: a worked example of a protocol crate built on the workspace.
//!
//! The wire protocol is the tutorial's `transformedpoetry.py`: the client sends one
//! netstring holding `<transform>.<poem>` (split at the first `.`); the server
//! answers with one netstring holding the transformed poem, then closes. Any
//! failure (unknown transform, no `.`, a transform that fails, a malformed or
//! over-long netstring) closes the connection with no reply, as the original does,
//! but here the server logs which it was.
//!
//! ```text
//! $ printf '27:cummingsify.HERE IS MY POEM,' | nc 127.0.0.1 11000
//! 15:here is my poem,
//! ```
//!
//! | here | Twisted Introduction / Twisted |
//! |---|---|
//! | [`TransformProtocol`] in a [`NetstringReceiver`](protocol::basic::NetstringReceiver) | `TransformProtocol(NetstringReceiver)` (`stringReceived`, `xformRequestReceived`) |
//! | [`TransformFactory`], [`TransformFactory::answer`] | `TransformFactory`, `TransformFactory.transform` |
//! | [`Transforms`], [`Transform`] | `TransformService`, the `xform_*` methods looked up with `getattr` |
//! | [`cummingsify`] | `TransformService.cummingsify` |
//! | [`FlakyCummingsify`] | client 5.0's `cummingsify` that sometimes raises `GibberishError` |
//! | [`serve`] | `reactor.listenTCP(port, TransformFactory(service))` |
//! | `poetry-transform-server` | `twisted-server-1/transformedpoetry.py` |
//! | [`transform`] (a `Deferred` of the transformed poem), [`TransformClient`], [`TransformClientFactory`] | client 6.0's `TransformProxy.xform`, `TransformClientProtocol`, `TransformClientFactory` |
//! | the `transformed_poetry` example | client 6.0/7.0's `get-poetry.py`: fetch, transform, fall back on failure |
//!
//! Beyond the original: the server is bounded like the poetry server (request size,
//! idle timeout, connection cap), a transform may take long without stalling anyone
//! else ([`Transform::delay`]), and a refusal is logged with its reason
//! ([`RequestError`]).
//!
//! # Example: serve, and ask over a plain socket
//!
//! ```
//! use std::io::{Read, Write};
//! use poetry_transform::{serve, ServerOptions, Transforms};
//! use protocol::reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! let (port, _factory) = serve(&mut reactor, Transforms::standard(), ServerOptions::default())?;
//! let port = port.get_host().port().expect("a TCP port");
//! let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
//!     let mut socket = std::net::TcpStream::connect(("127.0.0.1", port))?;
//!     socket.write_all(b"27:cummingsify.HERE IS MY POEM,")?;
//!     let mut reply = Vec::new();
//!     socket.read_to_end(&mut reply)?;
//!     Ok(reply)
//! });
//! // Serve until the client has its answer (bounded: a test must never hang).
//! for _ in 0..1000 {
//!     if client.is_finished() {
//!         break;
//!     }
//!     reactor.iterate(Some(std::time::Duration::from_millis(10)))?;
//! }
//! assert_eq!(client.join().unwrap()?, b"15:here is my poem,");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it does not do
//!
//! No framing of its own: the netstrings are `protocol::basic`'s. No sockets or event
//! loop of its own: it names neither the `reactor` nor the `transport` crate, and
//! reaches them only through `protocol`'s re-exports; its Deferreds are the `deferred`
//! crate's.

mod client;
mod request;
mod server;
mod transforms;

pub use crate::client::{
    transform, ClientOptions, TransformClient, TransformClientError, TransformClientFactory,
};
pub use crate::request::{parse_request, request_payload, Request, RequestError};
pub use crate::server::{
    serve, ServerOptions, Stats, TransformFactory, TransformProtocol, DEFAULT_MAX_REQUEST,
};
pub use crate::transforms::{
    cummingsify, Cummingsify, FlakyCummingsify, SlowCummingsify, Transform, TransformError,
    Transforms,
};
