//! [`get_poetry`]: one poem, as a [`Deferred`] (the Introduction's client 4.0,
//! Parts 7–9), which cancelling aborts (Part 19). The reusable face of the client:
//! other code asks for a poem and learns when it has arrived.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use deferred::{Deferred, Failure, Resolver};
use protocol::{
    connect_tcp, with_protocol, Address, ClientFactory, ConnectError, ConnectOptions, Connector,
    Context, DisconnectReason, Factory, Protocol, Shared,
};
use reactor::{DescriptorId, LocalHandle, Reactor};

use crate::address::PoemAddress;
use crate::client::DEFAULT_MAX_POEM_BYTES;

/// A poem: the bytes the server sent, whole.
pub type Poem = Vec<u8>;

/// Why a download failed. A poem that did not arrive whole is never handed on as one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoetryError {
    /// No connection could be made.
    Connect(String),
    /// The server reset the connection before sending a byte: how a server at its
    /// connection cap refuses, never mistaken for an empty poem.
    Refused(String),
    /// The connection broke before the server closed it cleanly: the poem is cut.
    Incomplete {
        /// Bytes received before it broke.
        received: u64,
        /// How it broke.
        reason: String,
    },
    /// The server sent more than the limit; it was cut off.
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
}

impl fmt::Display for PoetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoetryError::Connect(reason) => write!(f, "cannot connect: {reason}"),
            PoetryError::Refused(reason) => write!(f, "refused: {reason}"),
            PoetryError::Incomplete { received, reason } => {
                write!(f, "incomplete: {received} bytes arrived before {reason}")
            }
            PoetryError::TooLarge { limit } => {
                write!(f, "the poem passed the {limit}-byte limit")
            }
        }
    }
}

impl Error for PoetryError {}

/// How [`get_poetry_with`] and [`download`] connect and how much they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetOptions {
    /// Give up connecting after this long.
    pub connect_timeout: Option<Duration>,
    /// Largest poem accepted, in bytes: a server that sends more is cut off and the
    /// download fails with [`PoetryError::TooLarge`].
    pub max_poem_bytes: u64,
}

impl Default for GetOptions {
    fn default() -> Self {
        GetOptions {
            connect_timeout: Some(Duration::from_secs(30)),
            max_poem_bytes: DEFAULT_MAX_POEM_BYTES,
        }
    }
}

/// One read of a [`download`]: when, what, and from whom.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// When it arrived, on the reactor's clock.
    pub at: Duration,
    /// The bytes.
    pub data: &'a [u8],
    /// The server.
    pub peer: &'a Address,
}

/// What a [`download`] does with each read.
pub type OnData = Box<dyn FnMut(Chunk<'_>)>;

/// Downloads one poem from `address` (the Introduction's client 4.0 `get_poetry`):
/// the Deferred fires with the whole poem when the server closes cleanly, and fails
/// with a [`PoetryError`] when no connection can be made, the server refuses, the
/// connection breaks (a cut poem is never delivered) or the poem is too long.
///
/// Cancelling the Deferred (Part 19) aborts the download: the connection is reset, or
/// the connecting attempt stopped, on the reactor's next turn (a canceller has no
/// reactor at hand: it asks through the reactor's [`LocalHandle`]), and the Deferred
/// fails with `deferred::DeferredError::Cancelled` at once.
///
/// # Examples
///
/// ```no_run
/// use deferred::Failure;
/// use poetry_client::{get_poetry, parse_address};
/// use reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let local = reactor.local_handle();
/// let done = get_poetry(&mut reactor, &parse_address("10000")?).add_both(move |poem| {
///     match poem {
///         Ok(poem) => print!("{}", String::from_utf8_lossy(&poem)),
///         Err(failure) => eprintln!("poem failed: {failure}"),
///     }
///     let _ = local.call_soon(|r| r.stop());
///     Ok::<_, Failure>(())
/// });
/// reactor.run()?;
/// # drop(done);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn get_poetry(reactor: &mut Reactor, address: &PoemAddress) -> Deferred<Poem> {
    get_poetry_with(reactor, address, GetOptions::default())
}

/// [`get_poetry`] with other options.
pub fn get_poetry_with(
    reactor: &mut Reactor,
    address: &PoemAddress,
    options: GetOptions,
) -> Deferred<Poem> {
    let poem: Rc<RefCell<Poem>> = Rc::default();
    let sink = poem.clone();
    let on_data: OnData = Box::new(move |chunk| sink.borrow_mut().extend_from_slice(chunk.data));
    download(reactor, address, options, on_data)
        .add_callback(move |_| Ok::<_, Failure>(std::mem::take(&mut *poem.borrow_mut())))
}

/// The download under [`get_poetry`], handing each read to `on_data` instead of
/// keeping the poem: the `poetry-client` program keeps its own copy, for progress and
/// for poems that arrive incomplete. Fires with the number of bytes received.
pub fn download(
    reactor: &mut Reactor,
    address: &PoemAddress,
    options: GetOptions,
    on_data: OnData,
) -> Deferred<u64> {
    let link: Rc<RefCell<Link>> = Rc::default();
    let canceller = Canceller {
        link: link.clone(),
        local: reactor.local_handle(),
    };
    let (d, resolver) = Deferred::with_canceller(move |_| canceller.cancel());
    let factory = Shared::new(DownloadFactory {
        resolver,
        on_data,
        link: link.clone(),
        max_poem_bytes: options.max_poem_bytes,
    });
    let connect = ConnectOptions {
        timeout: options.connect_timeout,
        bind_address: None,
    };
    let connector = connect_tcp(reactor, &address.host, address.port, &factory, &connect);
    link.borrow_mut().connector = Some(connector);
    d
}

/// What the canceller and the download share.
#[derive(Default)]
struct Link {
    cancelled: bool,
    connector: Option<Connector<DownloadFactory>>,
    connection: Option<DescriptorId>,
}

struct Canceller {
    link: Rc<RefCell<Link>>,
    local: LocalHandle,
}

impl Canceller {
    /// Part 19's "Canceling poem download": stop connecting, or reset the connection.
    fn cancel(self) {
        let (connector, connection) = {
            let mut link = self.link.borrow_mut();
            link.cancelled = true;
            (link.connector.clone(), link.connection)
        };
        let _ = self.local.call_soon(move |reactor| {
            if let Some(id) = connection {
                with_protocol::<DownloadProtocol, _>(reactor, id, |_, cx| cx.abort_connection());
            } else if let Some(connector) = connector {
                connector.stop_connecting(reactor);
            }
        });
    }
}

/// The factory of one download (the tutorial's `PoetryClientFactory`, client 4.0).
struct DownloadFactory {
    resolver: Resolver<u64>,
    on_data: OnData,
    link: Rc<RefCell<Link>>,
    max_poem_bytes: u64,
}

impl fmt::Debug for DownloadFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadFactory")
            .field("max_poem_bytes", &self.max_poem_bytes)
            .finish_non_exhaustive()
    }
}

impl Factory for DownloadFactory {
    type Protocol = DownloadProtocol;

    fn build_protocol(&mut self, _peer: &Address) -> Option<DownloadProtocol> {
        // Cancelled while connecting: the connection made now is closed at once.
        (!self.link.borrow().cancelled).then_some(DownloadProtocol {
            received: 0,
            too_large: false,
        })
    }
}

impl ClientFactory for DownloadFactory {
    type Data = ();
    fn client_connection_failed(
        &mut self,
        _reactor: &mut Reactor,
        _connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        // After a cancel the Deferred has failed already: nothing more to say.
        let _ = self
            .resolver
            .errback(PoetryError::Connect(reason.to_string()));
    }
}

/// One download's connection (the tutorial's `PoetryProtocol`): hands on the poem's
/// bytes until the server closes; a connection that breaks is a failure, never a poem.
#[derive(Debug)]
struct DownloadProtocol {
    received: u64,
    too_large: bool,
}

impl Protocol for DownloadProtocol {
    type Factory = DownloadFactory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().link.borrow_mut().connection = Some(cx.id());
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        let at = cx.reactor().now();
        let peer = cx.get_peer();
        let mut factory = cx.factory();
        if self.received + data.len() as u64 > factory.max_poem_bytes {
            drop(factory);
            self.too_large = true;
            cx.abort_connection();
            return;
        }
        self.received += data.len() as u64;
        (factory.on_data)(Chunk { at, data, peer });
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        let (resolver, limit) = {
            let factory = cx.factory();
            factory.link.borrow_mut().connection = None;
            (factory.resolver.clone(), factory.max_poem_bytes)
        };
        let result = if self.too_large {
            Err(PoetryError::TooLarge { limit })
        } else if reason.is_clean() {
            // A clean close is the protocol's end of poem, even after no byte at all.
            Ok(self.received)
        } else if self.received == 0
            && matches!(
                reason,
                DisconnectReason::Lost(_) | DisconnectReason::Refused
            )
        {
            Err(PoetryError::Refused(reason.to_string()))
        } else {
            Err(PoetryError::Incomplete {
                received: self.received,
                reason: reason.to_string(),
            })
        };
        // The Deferred's callbacks run now, outside every borrow of the factory. After
        // a cancel it has failed already, and this firing is refused.
        let _ = match result {
            Ok(received) => resolver.callback(received),
            Err(error) => resolver.errback(error),
        };
    }
}
