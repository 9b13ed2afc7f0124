//! The proxy's server side: [`ProxyProtocol`] and [`ProxyFactory`] (the tutorial's
//! `PoetryProxyProtocol` and `PoetryProxyFactory`), and [`serve`].

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use deferred::{maybe_deferred, Deferred};
use log::{info, warn};
use protocol::reactor::Reactor;
use protocol::{
    listen_tcp, Address, Context, DisconnectReason, EofAction, Factory, ListenError, ListeningPort,
    Protocol, Shared, TcpListenOptions,
};

use crate::service::ProxyService;
use crate::{default_get_options, GetOptions, Poem};

/// How the proxy serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Interface to listen on (default `127.0.0.1`).
    pub interface: String,
    /// Clients served at once; more are refused with a reset (a clean close would say
    /// "here is the whole poem, and it is empty").
    pub max_connections: usize,
    /// Once its poem is being sent, close a client that makes no progress for this
    /// long (`None`: never). Waiting for the upstream is not the client's idleness.
    pub idle_timeout: Option<Duration>,
    /// How the upstream download goes (the poem's size bound is the cache's).
    pub fetch: GetOptions,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            port: 0,
            interface: "127.0.0.1".to_owned(),
            max_connections: 4096,
            idle_timeout: Some(Duration::from_secs(120)),
            fetch: default_get_options(),
        }
    }
}

/// The factory: the service, the options, and the count of open connections (the
/// tutorial's `PoetryProxyFactory`).
#[derive(Debug)]
pub struct ProxyFactory {
    service: Rc<RefCell<ProxyService>>,
    options: ProxyOptions,
    open: usize,
    refused: u64,
}

impl ProxyFactory {
    /// A factory serving `service`'s poem as `options` say.
    pub fn new(service: Rc<RefCell<ProxyService>>, options: ProxyOptions) -> Self {
        ProxyFactory {
            service,
            options,
            open: 0,
            refused: 0,
        }
    }

    /// The service (cache, download, stats).
    pub fn service(&self) -> &Rc<RefCell<ProxyService>> {
        &self.service
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open
    }

    /// Connections refused because `max_connections` were open.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

impl Factory for ProxyFactory {
    type Protocol = ProxyProtocol;

    fn build_protocol(&mut self, peer: &Address) -> Option<ProxyProtocol> {
        if self.open >= self.options.max_connections {
            self.refused += 1;
            warn!("refusing {peer}: {} connections open", self.open);
            // Reset, not a clean close (which is what `None` does): to a poetry
            // client, a clean close after no bytes is a whole, empty poem.
            return Some(ProxyProtocol {
                refused: true,
                ..ProxyProtocol::default()
            });
        }
        Some(ProxyProtocol::default())
    }
}

/// One client: asks the service for the poem, sends it when its Deferred fires, then
/// closes; a failed download resets the client instead (the tutorial's
/// `PoetryProxyProtocol`, version 3.0).
#[derive(Debug, Default)]
pub struct ProxyProtocol {
    /// The poem to come, until it is sent.
    poem: Option<Deferred<Poem>>,
    /// Refused over the cap: reset as soon as it is made, never counted as open.
    refused: bool,
}

impl ProxyProtocol {
    /// Sends the poem (or resets) if its Deferred has fired: the one code path for a
    /// cached poem (fired at once) and a downloaded one (the service calls this when
    /// the download ends).
    pub fn poem_ready(&mut self, cx: &mut Context<'_, Self>) {
        let Some(result) = self.poem.as_mut().and_then(Deferred::take_result) else {
            return;
        };
        self.poem = None;
        match result {
            Ok(poem) => {
                let idle = cx.factory().options.idle_timeout;
                cx.set_timeout(idle);
                cx.write(&poem);
                cx.lose_connection();
            }
            Err(failure) => {
                // Never a clean close: that would say a whole poem was sent.
                warn!("resetting {}: {failure}", cx.get_peer());
                cx.abort_connection();
            }
        }
    }
}

impl Protocol for ProxyProtocol {
    type Factory = ProxyFactory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        if self.refused {
            cx.abort_connection();
            return;
        }
        let service = {
            let mut factory = cx.factory();
            factory.open += 1;
            factory.service.clone()
        };
        let client = Some(cx.id());
        let reactor = cx.reactor();
        // Part 14: cached or not, the answer is a Deferred.
        self.poem = Some(maybe_deferred(|| {
            ProxyService::get_poem(&service, reactor, client)
        }));
        self.poem_ready(cx);
    }

    fn data_received(&mut self, _cx: &mut Context<'_, Self>, _data: &[u8]) {
        // Clients send nothing; anything they send is ignored.
    }

    fn read_connection_lost(&mut self, _cx: &mut Context<'_, Self>) -> EofAction {
        // Clients send nothing, so their end of file cannot be told from their
        // leaving; while the poem is still awaited, it is taken as leaving (Part 19
        // cancels the download for it). Once the poem is on its way, it goes on.
        if self.poem.is_some() {
            EofAction::Close
        } else {
            EofAction::KeepWriting
        }
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        if self.refused {
            return;
        }
        if let Some(mut poem) = self.poem.take() {
            info!("{} left before its poem: {reason}", cx.get_peer());
            // Part 19: withdraw from the download (cancelled if we were the last).
            poem.cancel();
            let _ = poem.take_result();
        }
        let mut factory = cx.factory();
        debug_assert!(factory.open > 0, "a connection lost that was never made");
        factory.open -= 1;
    }
}

/// Starts proxying the poem at `host:port` on `reactor` as `options` say; returns
/// the listening port and the shared factory (its service holds the cache and stats).
///
/// # Errors
///
/// [`ListenError`] if the interface or port cannot be used.
pub fn serve(
    reactor: &mut Reactor,
    host: &str,
    port: u16,
    options: ProxyOptions,
) -> Result<(ListeningPort, Shared<ProxyFactory>), ListenError> {
    let service = Rc::new(RefCell::new(ProxyService::new(
        reactor,
        host,
        port,
        options.fetch,
    )));
    let listen = TcpListenOptions {
        interface: options.interface.clone(),
        ..TcpListenOptions::default()
    };
    let listen_port = options.port;
    let factory = Shared::new(ProxyFactory::new(service, options));
    let listening = listen_tcp(reactor, listen_port, &factory, &listen)?;
    Ok((listening, factory))
}
