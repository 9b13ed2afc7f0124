//! [`get_poetry`]: one poem downloaded from a poetry server, as a [`Deferred`]
//! (the Introduction's client 4.0 `get_poetry`, and Part 19's canceller).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use deferred::{Deferred, Resolver};
use log::{debug, info};
use protocol::reactor::{DescriptorId, Reactor};
use protocol::{
    connect_tcp, with_protocol, Address, ClientFactory, ConnectError, ConnectOptions, Connector,
    Context, DisconnectReason, Factory, Protocol, Shared,
};

/// A poem, shared (by the cache and every client it is sent to) without copying.
pub type Poem = Rc<[u8]>;

/// The largest poem downloaded by default: 16 MiB.
pub const DEFAULT_MAX_POEM_BYTES: u64 = 16 << 20;

/// How a download goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Largest poem accepted: a server that sends more is cut off and the download
    /// fails with [`FetchError::TooLarge`].
    pub max_poem_bytes: u64,
    /// Give up connecting after this long.
    pub connect_timeout: Option<Duration>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_poem_bytes: DEFAULT_MAX_POEM_BYTES,
            connect_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Why a download failed. A poem that did not arrive whole is never handed on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// No connection could be made.
    Connect(String),
    /// The connection broke before the server closed it cleanly: the poem is cut.
    Incomplete {
        /// Bytes received before it broke.
        received: usize,
        /// How it broke.
        reason: String,
    },
    /// The server sent more than the limit.
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect(reason) => {
                write!(f, "cannot connect to the poetry server: {reason}")
            }
            FetchError::Incomplete { received, reason } => {
                write!(f, "the poem was cut after {received} bytes: {reason}")
            }
            FetchError::TooLarge { limit } => {
                write!(f, "the poem is longer than the {limit}-byte limit")
            }
        }
    }
}

impl Error for FetchError {}

/// What a download's canceller and its connection share.
#[derive(Debug, Default)]
struct FetchState {
    /// The Deferred was cancelled: a connection made now is refused.
    cancelled: bool,
    /// The connection, once made and until it is lost.
    connection: Option<DescriptorId>,
}

/// The factory of one download (the tutorial's `PoetryClientFactory`).
#[derive(Debug)]
pub struct FetchFactory {
    resolver: Resolver<Poem>,
    state: Rc<RefCell<FetchState>>,
    max_poem_bytes: u64,
}

impl Factory for FetchFactory {
    type Protocol = FetchProtocol;

    fn build_protocol(&mut self, _peer: &Address) -> Option<FetchProtocol> {
        if self.state.borrow().cancelled {
            debug!("the download was cancelled while connecting: closing at once");
            return None;
        }
        Some(FetchProtocol {
            poem: Vec::new(),
            too_large: false,
        })
    }
}

impl ClientFactory for FetchFactory {
    fn client_connection_failed(
        &mut self,
        _reactor: &mut Reactor,
        _connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        // After a cancel the Deferred is fired already: nothing more to say.
        let _ = self
            .resolver
            .errback(FetchError::Connect(reason.to_string()));
    }
}

/// One download's connection: collects the poem until the server closes (the
/// tutorial's `PoetryClientProtocol`, but a broken connection is a failure here,
/// never a poem).
#[derive(Debug)]
pub struct FetchProtocol {
    poem: Vec<u8>,
    too_large: bool,
}

impl Protocol for FetchProtocol {
    type Factory = FetchFactory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().state.borrow_mut().connection = cx.id();
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        let limit = cx.factory().max_poem_bytes;
        if self.poem.len() as u64 + data.len() as u64 > limit {
            self.too_large = true;
            cx.abort_connection();
            return;
        }
        self.poem.extend_from_slice(data);
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        let factory = cx.factory();
        factory.state.borrow_mut().connection = None;
        let result = if self.too_large {
            Err(FetchError::TooLarge {
                limit: factory.max_poem_bytes,
            })
        } else if reason.is_clean() {
            Ok(Poem::from(std::mem::take(&mut self.poem)))
        } else {
            Err(FetchError::Incomplete {
                received: self.poem.len(),
                reason: reason.to_string(),
            })
        };
        let resolver = factory.resolver.clone();
        drop(factory);
        // The Deferred's callbacks run now; after a cancel it is fired already.
        let fired = match result {
            Ok(poem) => resolver.callback(poem),
            Err(e) => resolver.errback(e),
        };
        if fired.is_err() {
            info!("a cancelled download ended: {reason}");
        }
    }
}

/// Downloads one poem from `host:port` (the Introduction's `get_poetry`, client
/// 4.0): the Deferred fires with the whole poem when the server closes cleanly, or
/// fails with a [`FetchError`] if it cannot connect, the connection breaks (a cut
/// poem is never delivered), or the poem passes the limit.
///
/// Cancelling the Deferred (Part 19) aborts the download: the connection is reset
/// on the reactor's next turn (a canceller gets no reactor, so it asks through the
/// reactor's local call queue, `LocalHandle`), or refused as soon as it is made if it was still
/// connecting; the Deferred fails with `deferred::DeferredError::Cancelled`.
pub fn get_poetry(
    reactor: &mut Reactor,
    host: &str,
    port: u16,
    options: FetchOptions,
) -> Deferred<Poem> {
    let state = Rc::new(RefCell::new(FetchState::default()));
    let local = reactor.local_handle();
    let shared = state.clone();
    let (poem, resolver) = Deferred::with_canceller(move |_resolver: &Resolver<Poem>| {
        let mut state = shared.borrow_mut();
        state.cancelled = true;
        if let Some(id) = state.connection {
            let abort = move |reactor: &mut Reactor| {
                with_protocol::<FetchProtocol, _>(reactor, id, |_, cx| cx.abort_connection());
            };
            if let Err(e) = local.call_soon(abort) {
                info!("cannot abort a cancelled download: {e}");
            }
        }
    });
    let factory = Shared::new(FetchFactory {
        resolver,
        state,
        max_poem_bytes: options.max_poem_bytes,
    });
    let connect = ConnectOptions {
        timeout: options.connect_timeout,
        bind_address: None,
    };
    connect_tcp(reactor, host, port, &factory, connect);
    poem
}
