//! The server: [`TransformProtocol`] (Twisted's `TransformProtocol`, a
//! `NetstringReceiver`) and [`TransformFactory`] (`TransformFactory`), with the
//! bounds the original lacks.

use std::collections::VecDeque;
use std::time::Duration;

use log::{info, warn};
use protocol::basic::{NetstringContext, NetstringProtocol, NetstringReceiver};
use protocol::reactor::{DelayedCall, Reactor};
use protocol::{
    listen_tcp, Address, DisconnectReason, EofAction, Factory, ListenError, ListeningPort, Shared,
    TcpListenOptions,
};

use crate::request::{parse_request, printable, RequestError};
use crate::transforms::Transforms;

/// The longest request accepted by default, in bytes (Twisted's
/// `NetstringReceiver.MAX_LENGTH`): a poem of about 100 KB.
pub const DEFAULT_MAX_REQUEST: usize = protocol::basic::DEFAULT_MAX_STRING_LENGTH;

/// How the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Interface to listen on (default `127.0.0.1`).
    pub interface: String,
    /// Connections served at once; more are refused with a clean close.
    pub max_connections: usize,
    /// Close a connection that makes no progress for this long (`None`: never). A
    /// connection waiting for a slow transform's answer is not idle.
    pub idle_timeout: Option<Duration>,
    /// The longest request (netstring payload) accepted; a longer one is refused as
    /// soon as its length shows it, before any of it is buffered.
    pub max_request: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            port: 0,
            interface: "127.0.0.1".to_owned(),
            max_connections: 4096,
            idle_timeout: Some(Duration::from_secs(120)),
            max_request: DEFAULT_MAX_REQUEST,
        }
    }
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused because `max_connections` were open.
    pub refused: u64,
    /// Requests answered with a transformed poem.
    pub answered: u64,
    /// Connections closed without a reply to their request (unknown transform, no
    /// `.`, failed transform, malformed or over-long netstring, incomplete request).
    pub refused_requests: u64,
}

/// The factory: the transforms, the options, and the count of open connections
/// (Twisted's `TransformFactory`).
#[derive(Debug)]
pub struct TransformFactory {
    transforms: Transforms,
    options: ServerOptions,
    open: usize,
    stats: Stats,
}

impl TransformFactory {
    /// A factory offering `transforms` as `options` say.
    pub fn new(transforms: Transforms, options: ServerOptions) -> Self {
        TransformFactory {
            transforms,
            options,
            open: 0,
            stats: Stats::default(),
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open
    }

    /// The transforms offered.
    pub fn transforms(&self) -> &Transforms {
        &self.transforms
    }

    /// Answers one request payload: the transformed poem and how long it takes, or
    /// why there is no answer (the tutorial's `transform`, which returns `None` for
    /// each failure alike).
    ///
    /// # Errors
    ///
    /// [`RequestError`] saying why the request gets no reply.
    #[doc(alias = "transform")]
    pub fn answer(&mut self, payload: &[u8]) -> Result<(Vec<u8>, Duration), RequestError> {
        let request = parse_request(payload)?;
        let transform = self
            .transforms
            .get_mut(request.transform)
            .ok_or_else(|| RequestError::unknown(request.transform))?;
        let delay = transform.delay();
        let poem = transform
            .apply(request.poem)
            .map_err(|error| RequestError::Failed {
                name: printable(request.transform),
                error,
            })?;
        Ok((poem, delay))
    }
}

impl Factory for TransformFactory {
    type Protocol = NetstringReceiver<TransformProtocol>;

    fn build_protocol(&mut self, peer: &Address) -> Option<Self::Protocol> {
        if self.open >= self.options.max_connections {
            self.stats.refused += 1;
            warn!("refusing {peer}: {} connections open", self.open);
            return None;
        }
        Some(NetstringReceiver::new(TransformProtocol::default()))
    }
}

/// One connection: reads requests, answers them, closes (Twisted's
/// `TransformProtocol`).
///
/// As in the original, every request that arrived in the same read as the first one
/// is answered, in order, before the close: requests in later reads are ignored, and
/// the replies go out once the slowest of them is ready. The first request that
/// cannot be answered ends the replies: the connection closes after those before it,
/// and the reason is logged.
#[derive(Debug, Default)]
pub struct TransformProtocol {
    /// The answers (or the refusal) for the requests read so far, in order.
    outbox: VecDeque<Result<Vec<u8>, RequestError>>,
    /// The longest delay among them: when the replies can go.
    ready_after: Duration,
    /// The call that sends the replies and closes, once scheduled.
    finish: Option<DelayedCall>,
    /// A request was refused: later ones are not looked at.
    refused: bool,
    /// The byte count received when the first request arrived: requests of the same
    /// read are answered, later ones are not. Reading goes on, so a client that
    /// leaves while a slow answer is prepared is noticed at once.
    first_read: Option<u64>,
}

impl TransformProtocol {
    /// Sends the answers in order, up to the first refusal, and closes.
    fn finish(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        self.finish = None;
        self.send_ready(cx);
        cx.lose_connection();
    }

    /// Sends the queued answers in order; a refusal is logged and ends them.
    fn send_ready(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        while let Some(outcome) = self.outbox.pop_front() {
            match outcome {
                Ok(poem) => {
                    cx.send_string(&poem);
                    cx.factory().stats.answered += 1;
                }
                Err(why) => {
                    refuse(cx, &why);
                    self.outbox.clear();
                }
            }
        }
    }
}

/// Logs why a request gets no reply and counts it.
fn refuse(cx: &mut NetstringContext<'_, '_, TransformProtocol>, why: &RequestError) {
    warn!("closing {} without a reply: {why}", cx.get_peer());
    cx.factory().stats.refused_requests += 1;
}

// ===== impl NetstringProtocol =====

impl NetstringProtocol for TransformProtocol {
    type Factory = TransformFactory;

    fn connection_made(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        let (max, idle) = {
            let mut factory = cx.factory();
            // Counted here rather than in `build_protocol`, so that a protocol started
            // without the factory's say (a test's in-memory connection) is counted too.
            factory.open += 1;
            factory.stats.accepted += 1;
            (factory.options.max_request, factory.options.idle_timeout)
        };
        cx.set_max_length(max);
        cx.set_timeout(idle);
    }

    #[doc(alias = "stringReceived")]
    fn string_received(&mut self, cx: &mut NetstringContext<'_, '_, Self>, request: &[u8]) {
        let received = cx.bytes_received();
        if self.refused || self.first_read.is_some_and(|mark| mark != received) {
            // After a refusal, or in a later read than the first request's: not
            // looked at (the original stops reading after its first answer).
            return;
        }
        self.first_read = Some(received);
        let outcome = cx.factory().answer(request);
        let before = self.ready_after;
        match &outcome {
            Ok((_, delay)) => self.ready_after = self.ready_after.max(*delay),
            Err(_) => self.refused = true,
        }
        self.outbox.push_back(outcome.map(|(poem, _)| poem));
        if self.ready_after.is_zero() {
            // Nothing slow ahead: what is ready goes out now, so it is sent even if
            // the netstring receiver closes the connection for garbage later in this
            // read (as the original's replies are).
            self.send_ready(cx);
        } else {
            // Waiting for our own answer is not the client's idleness.
            cx.set_timeout(None);
        }
        match self.finish.take() {
            None => {}
            Some(timer) if self.ready_after > before => {
                // A slower answer behind a quicker one: the replies wait for it.
                let _ = timer.cancel(cx.reactor());
            }
            Some(timer) => {
                self.finish = Some(timer);
                return;
            }
        }
        let delay = self.ready_after;
        self.finish = Some(cx.call_later(delay, |p, cx| p.finish(cx)));
    }

    fn read_connection_lost(&mut self, cx: &mut NetstringContext<'_, '_, Self>) -> EofAction {
        if self.finish.is_some() {
            // A client that shuts down its sending half after its request (`nc -N`)
            // still gets the answer.
            return EofAction::KeepWriting;
        }
        refuse(cx, &RequestError::Incomplete);
        EofAction::Close
    }

    fn connection_lost(
        &mut self,
        cx: &mut NetstringContext<'_, '_, Self>,
        reason: &DisconnectReason,
    ) {
        if let Some(timer) = self.finish.take() {
            let _ = timer.cancel(cx.reactor());
            info!("{} left before its answer: {reason}", cx.get_peer());
        }
        if let Some(error) = cx.error().cloned() {
            refuse(cx, &RequestError::Netstring(error));
        }
        let mut factory = cx.factory();
        debug_assert!(factory.open > 0, "a connection lost that was never made");
        factory.open -= 1;
    }
}

/// Starts serving `transforms` on `reactor` as `options` say; returns the listening
/// port (ask it for the real port) and the shared factory (read its stats).
///
/// # Errors
///
/// [`ListenError`] if the interface or port cannot be used.
pub fn serve(
    reactor: &mut Reactor,
    transforms: Transforms,
    options: ServerOptions,
) -> Result<(ListeningPort, Shared<TransformFactory>), ListenError> {
    let listen = TcpListenOptions {
        interface: options.interface.clone(),
        ..TcpListenOptions::default()
    };
    let port = options.port;
    let factory = Shared::new(TransformFactory::new(transforms, options));
    let listening = listen_tcp(reactor, port, &factory, &listen)?;
    Ok((listening, factory))
}
