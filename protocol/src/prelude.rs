//! What a typical server or client needs, in one `use`.
//!
//! A protocol crate depends on `protocol` alone: `use protocol::prelude::*;` brings the
//! reactor, the protocol and factory traits, the calls that put them on the network and
//! the types their callbacks see. Anything else of the lower layers is reachable through
//! [`crate::reactor`] and [`crate::transport`], re-exported whole.
//!
//! # Example: an uppercase echo server and a client for it, on one reactor
//!
//! ```
//! use protocol::prelude::*;
//!
//! #[derive(Default)]
//! struct Upper;
//!
//! impl Protocol for Upper {
//!     type Factory = SimpleFactory<Upper>;
//!
//!     fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
//!         cx.write(&data.to_ascii_uppercase());
//!         cx.lose_connection();
//!     }
//! }
//!
//! struct Asker { answer: Vec<u8> }
//!
//! impl Protocol for Asker {
//!     type Factory = AskerFactory;
//!
//!     fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
//!         cx.write(b"hello");
//!     }
//!
//!     fn data_received(&mut self, _cx: &mut Context<'_, Self>, data: &[u8]) {
//!         self.answer.extend_from_slice(data);
//!     }
//!
//!     fn connection_lost(&mut self, cx: &mut Context<'_, Self>, _reason: &DisconnectReason) {
//!         cx.factory().answer = std::mem::take(&mut self.answer);
//!         cx.reactor().stop();
//!     }
//! }
//!
//! #[derive(Default)]
//! struct AskerFactory { answer: Vec<u8> }
//!
//! impl Factory for AskerFactory {
//!     type Protocol = Asker;
//!
//!     fn build_protocol(&mut self, _addr: &Address) -> Option<Asker> {
//!         Some(Asker { answer: Vec::new() })
//!     }
//! }
//!
//! impl ClientFactory for AskerFactory {
//!     type Data = ();
//!     fn client_connection_failed(&mut self, reactor: &mut Reactor, _connector: &Connector<Self>, _reason: &ConnectError) {
//!         reactor.stop();
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut reactor = Reactor::new()?;
//! let server = for_protocol::<Upper>();
//! let port = listen_tcp(&mut reactor, 0, &server, &TcpListenOptions::default())?;
//! let client = Shared::new(AskerFactory::default());
//! let port_number = port.get_host().port().expect("a TCP port has a number");
//! connect_tcp(&mut reactor, "127.0.0.1", port_number, &client, &ConnectOptions::default());
//! // A bound on the example, never reached when all goes well.
//! let _guard: DelayedCall = reactor.call_later(std::time::Duration::from_secs(10), |r| r.stop());
//! reactor.run()?;
//! assert_eq!(client.borrow().answer, b"HELLO");
//! # Ok(())
//! # }
//! ```

pub use crate::reactor::{DelayedCall, Reactor};
pub use crate::transport::{Address, DisconnectReason};
pub use crate::{
    connect_tcp, connect_tcp_with, for_protocol, listen_tcp, ClientFactory, ConnectError,
    ConnectOptions, Connector, Context, Factory, Protocol, Shared, SimpleFactory, TcpListenOptions,
};
