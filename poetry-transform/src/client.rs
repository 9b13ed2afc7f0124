//! The client: [`transform`], one request to a transform server as a [`Deferred`]
//! (the Introduction's client 6.0 `TransformClientProtocol`, `TransformClientFactory`
//! and `TransformProxy.xform`).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use deferred::{Deferred, Resolver};
use log::debug;
use protocol::basic::{NetstringContext, NetstringError, NetstringProtocol, NetstringReceiver};
use protocol::reactor::{DelayedCall, DescriptorId, Reactor};
use protocol::{
    connect_tcp, with_protocol, Address, ClientFactory, ConnectError, ConnectOptions, Connector,
    DisconnectReason, Factory, Shared,
};

use crate::request::request_payload;

/// How a transform request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Give up (and fail with [`TransformClientError::TimedOut`]) if the reply has not
    /// come this long after connecting; `None` waits.
    pub timeout: Option<Duration>,
    /// Give up connecting after this long.
    pub connect_timeout: Option<Duration>,
    /// The longest reply accepted (a transformed poem may be longer than the poem).
    pub max_reply: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Some(Duration::from_secs(30)),
            connect_timeout: Some(Duration::from_secs(30)),
            max_reply: 16 << 20,
        }
    }
}

/// Why a transform request failed. The caller can fall back to the poem it had.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransformClientError {
    /// No connection could be made.
    Connect(String),
    /// The server closed without a reply: it refused the request (unknown transform,
    /// failed transform, ...), or the connection broke.
    NoReply(String),
    /// The reply was not a netstring (or a longer one than the limit).
    Malformed(NetstringError),
    /// No reply within the timeout.
    TimedOut(Duration),
}

impl fmt::Display for TransformClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformClientError::Connect(e) => write!(f, "cannot reach the transform server: {e}"),
            TransformClientError::NoReply(how) => {
                write!(f, "the transform server closed without a reply ({how})")
            }
            TransformClientError::Malformed(e) => {
                write!(f, "bad reply from the transform server: {e}")
            }
            TransformClientError::TimedOut(after) => {
                write!(f, "no reply from the transform server within {after:?}")
            }
        }
    }
}

impl Error for TransformClientError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TransformClientError::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

/// What the canceller and the connection share.
#[derive(Debug, Default)]
struct Link {
    cancelled: bool,
    connection: Option<DescriptorId>,
}

/// The factory of one request (the tutorial's `TransformClientFactory`).
#[derive(Debug)]
pub struct TransformClientFactory {
    request: Vec<u8>,
    resolver: Resolver<Vec<u8>>,
    link: Rc<RefCell<Link>>,
    options: ClientOptions,
}

impl TransformClientFactory {
    /// Fires the Deferred with `result`, unless it was fired (or cancelled) already.
    fn finish(&self, result: Result<Vec<u8>, TransformClientError>) {
        let fired = match result {
            Ok(poem) => self.resolver.callback(poem),
            Err(e) => self.resolver.errback(e),
        };
        if fired.is_err() {
            debug!("a transform request ended after its Deferred was fired or cancelled");
        }
    }
}

impl Factory for TransformClientFactory {
    type Protocol = NetstringReceiver<TransformClient>;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        if self.link.borrow().cancelled {
            return None;
        }
        Some(NetstringReceiver::new(TransformClient::default()))
    }
}

impl ClientFactory for TransformClientFactory {
    type Data = ();
    fn client_connection_failed(
        &mut self,
        _reactor: &mut Reactor,
        _connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        self.finish(Err(TransformClientError::Connect(reason.to_string())));
    }
}

/// One request's connection: sends it, takes the one reply (the tutorial's
/// `TransformClientProtocol`).
#[derive(Debug, Default)]
pub struct TransformClient {
    answered: bool,
    timer: Option<DelayedCall>,
    timed_out: Option<Duration>,
}

impl NetstringProtocol for TransformClient {
    type Factory = TransformClientFactory;

    fn connection_made(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        let (request, options) = {
            let factory = cx.factory();
            factory.link.borrow_mut().connection = Some(cx.id());
            (factory.request.clone(), factory.options)
        };
        cx.set_max_length(options.max_reply);
        cx.send_string(&request);
        if let Some(timeout) = options.timeout {
            self.timer = Some(cx.call_later(timeout, move |p, cx| {
                p.timer = None;
                p.timed_out = Some(timeout);
                cx.abort_connection();
            }));
        }
    }

    fn string_received(&mut self, cx: &mut NetstringContext<'_, '_, Self>, poem: &[u8]) {
        if self.answered {
            return; // one reply per request; the server closes after it
        }
        self.answered = true;
        cx.factory().finish(Ok(poem.to_vec()));
        cx.lose_connection();
    }

    fn connection_lost(
        &mut self,
        cx: &mut NetstringContext<'_, '_, Self>,
        reason: &DisconnectReason,
    ) {
        if let Some(timer) = self.timer.take() {
            let _ = timer.cancel(cx.reactor());
        }
        let error = cx.error().cloned();
        let factory = cx.factory();
        factory.link.borrow_mut().connection = None;
        if self.answered {
            return;
        }
        let failure = match (self.timed_out, error) {
            (Some(after), _) => TransformClientError::TimedOut(after),
            (None, Some(e)) => TransformClientError::Malformed(e),
            (None, None) => TransformClientError::NoReply(reason.to_string()),
        };
        factory.finish(Err(failure));
    }
}

/// Asks the transform server at `address` to apply `name` to `poem` (the tutorial's
/// `TransformProxy.xform`): the Deferred fires with the transformed poem, or fails with
/// a [`TransformClientError`] on any failure, so the caller can fall back to the
/// poem it had (client 6.0's `try_to_cummingsify`).
///
/// Cancelling the Deferred resets the connection (on the reactor's next turn: a
/// canceller gets no reactor, so it queues the reset with a `LocalHandle`).
///
/// # Examples
///
/// ```no_run
/// use poetry_transform::{transform, ClientOptions};
/// use protocol::reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let poem = b"HERE IS MY POEM".to_vec();
/// let d = transform(&mut reactor, ("127.0.0.1", 11000), "cummingsify", &poem, ClientOptions::default())
///     .add_errback(move |failure| {
///         eprintln!("Cummingsify failed! ({failure})");
///         Ok(poem)
///     })
///     .add_callback(|poem| {
///         println!("{}", String::from_utf8_lossy(&poem));
///         Ok::<(), deferred::Failure>(())
///     });
/// # let _ = d;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "xform")]
pub fn transform(
    reactor: &mut Reactor,
    address: (&str, u16),
    name: &str,
    poem: &[u8],
    options: ClientOptions,
) -> Deferred<Vec<u8>> {
    let link = Rc::new(RefCell::new(Link::default()));
    let local = reactor.local_handle();
    let shared = link.clone();
    let (reply, resolver) = Deferred::with_canceller(move |_: &Resolver<Vec<u8>>| {
        let mut link = shared.borrow_mut();
        link.cancelled = true;
        if let Some(id) = link.connection {
            let abort = move |reactor: &mut Reactor| {
                with_protocol::<NetstringReceiver<TransformClient>, _>(reactor, id, |_, cx| {
                    cx.abort_connection();
                });
            };
            if let Err(e) = local.call_soon(abort) {
                debug!("cannot reset a cancelled transform request: {e}");
            }
        }
    });
    let factory = Shared::new(TransformClientFactory {
        request: request_payload(name, poem),
        resolver,
        link,
        options,
    });
    let connect = ConnectOptions {
        timeout: options.connect_timeout,
        bind_address: None,
    };
    connect_tcp(reactor, address.0, address.1, &factory, &connect);
    reply
}
