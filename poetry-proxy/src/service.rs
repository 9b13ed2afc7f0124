//! [`ProxyService`]: the cache and the shared upstream download (the tutorial's
//! `ProxyService`, versions 2.0 and 3.0).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::rc::{Rc, Weak};

use deferred::{succeed, Deferred, Failure, Resolver};
use log::warn;
use protocol::reactor::{DescriptorId, LocalHandle, Reactor};
use protocol::with_protocol;

use poetry_client::{get_poetry_with, PoemAddress};

use crate::server::ProxyProtocol;
use crate::{GetOptions, Poem};

/// What the service tells its owner (the binary prints each, in the tutorial's
/// words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyEvent {
    /// A client is served from the cache.
    UsingCache,
    /// A download from upstream starts (concurrent clients then share it).
    Fetching,
    /// Every client waiting for the download has gone: it is cancelled.
    Cancelling,
}

impl fmt::Display for ProxyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyEvent::UsingCache => "Using cached poem.",
            ProxyEvent::Fetching => "Fetching poem from server.",
            ProxyEvent::Cancelling => "Canceling poem download.",
        })
    }
}

/// Why a waiting client gets no poem: the shared download failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError(pub String);

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the upstream download failed: {}", self.0)
    }
}

impl Error for UpstreamError {}

/// What the service has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Clients served from the cache.
    pub from_cache: u64,
    /// Downloads started.
    pub downloads: u64,
    /// Downloads that ended with a whole poem (cached).
    pub fetched: u64,
    /// Downloads that failed (nothing cached; their clients reset).
    pub failed: u64,
    /// Downloads cancelled because every client waiting for them left.
    pub cancelled: u64,
}

/// One client waiting for the download.
#[derive(Debug)]
struct Waiter {
    key: u64,
    client: Option<DescriptorId>,
    resolver: Resolver<Poem>,
}

/// The download in progress, shared by every client that asked during it.
#[derive(Debug)]
struct Download {
    /// The upstream Deferred (its chain ends in [`ProxyService::deliver`]); cancelling
    /// it aborts the upstream connection.
    upstream: Deferred<()>,
    waiters: Vec<Waiter>,
}

/// The cache and the download of one upstream poem (the tutorial's `ProxyService`).
///
/// Better than the original: concurrent first requests share one download; a failed
/// or cut download is never cached (its clients get a reset); the poem is bounded by
/// [`GetOptions::max_poem_bytes`]; and the download is cancelled only when the
/// *last* client waiting for it has gone (Part 19, for shared downloads).
pub struct ProxyService {
    host: String,
    port: u16,
    options: GetOptions,
    cache: Option<Poem>,
    download: Option<Download>,
    next_key: u64,
    stats: ProxyStats,
    handle: LocalHandle,
    on_event: Box<dyn FnMut(ProxyEvent)>,
}

impl fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyService")
            .field("upstream", &(&self.host, self.port))
            .field("cached", &self.cache.as_ref().map(|p| p.len()))
            .field("download", &self.download)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl ProxyService {
    /// A service for the poem at `host:port`, downloaded as `options` say, on
    /// `reactor`'s thread.
    pub fn new(reactor: &Reactor, host: &str, port: u16, options: GetOptions) -> Self {
        ProxyService {
            host: host.to_owned(),
            port,
            options,
            cache: None,
            download: None,
            next_key: 0,
            stats: ProxyStats::default(),
            handle: reactor.local_handle(),
            on_event: Box::new(|_| {}),
        }
    }

    /// Calls `hook` for each [`ProxyEvent`] (the binary prints them).
    pub fn set_event_hook(&mut self, hook: impl FnMut(ProxyEvent) + 'static) {
        self.on_event = Box::new(hook);
    }

    /// What it has done so far.
    pub fn stats(&self) -> ProxyStats {
        self.stats
    }

    /// The cached poem, if any.
    pub fn cached(&self) -> Option<&Poem> {
        self.cache.as_ref()
    }

    /// Clients waiting for the download now.
    pub fn waiting(&self) -> usize {
        self.download.as_ref().map_or(0, |d| d.waiters.len())
    }

    fn event(&mut self, event: ProxyEvent) {
        (self.on_event)(event);
    }

    /// The poem (the tutorial's `get_poem`): an already-fired Deferred from the
    /// cache, or one that fires when the shared download ends. `client`, if given, is
    /// the connection told (through [`ProxyProtocol`]) when that Deferred fires.
    /// Cancelling the returned Deferred withdraws this client; the download is
    /// cancelled when no one is left waiting for it.
    ///
    /// # Panics
    ///
    /// If called from inside one of the service's own callbacks (the service is
    /// borrowed then).
    pub fn get_poem(
        service: &Rc<RefCell<ProxyService>>,
        reactor: &mut Reactor,
        client: Option<DescriptorId>,
    ) -> Deferred<Poem> {
        let mut this = service.borrow_mut();
        if let Some(poem) = this.cache.clone() {
            this.stats.from_cache += 1;
            this.event(ProxyEvent::UsingCache);
            return succeed(poem);
        }
        if this.download.is_none() {
            this.event(ProxyEvent::Fetching);
            this.stats.downloads += 1;
            let address = PoemAddress {
                host: this.host.clone(),
                port: this.port,
            };
            let fetch = get_poetry_with(reactor, &address, this.options)
                .add_callback(|poem: Vec<u8>| Ok::<Poem, Failure>(Poem::from(poem)));
            let weak = Rc::downgrade(service);
            let upstream = fetch.add_both(move |result: Result<Poem, Failure>| {
                if let Some(service) = weak.upgrade() {
                    ProxyService::deliver(&service, result);
                }
                Ok::<(), Failure>(())
            });
            this.download = Some(Download {
                upstream,
                waiters: Vec::new(),
            });
        }
        let key = this.next_key;
        this.next_key += 1;
        let weak: Weak<RefCell<ProxyService>> = Rc::downgrade(service);
        let (poem, resolver) = Deferred::with_canceller(move |_: &Resolver<Poem>| {
            if let Some(service) = weak.upgrade() {
                ProxyService::leave(&service, key);
            }
        });
        let download = this
            .download
            .as_mut()
            .expect("a download was started above");
        download.waiters.push(Waiter {
            key,
            client,
            resolver,
        });
        poem
    }

    /// A waiting client went away: withdraw it, and cancel the download if it was the
    /// last (the tutorial's canceller, for a shared download).
    fn leave(service: &Rc<RefCell<ProxyService>>, key: u64) {
        let upstream = {
            let mut this = service.borrow_mut();
            let Some(download) = this.download.as_mut() else {
                return;
            };
            download.waiters.retain(|w| w.key != key);
            if !download.waiters.is_empty() {
                return;
            }
            this.event(ProxyEvent::Cancelling);
            this.stats.cancelled += 1;
            this.download.take().map(|d| d.upstream)
        };
        // With the service released: the upstream chain runs `deliver` at once.
        if let Some(upstream) = upstream {
            upstream.cancel();
        }
    }

    /// The download ended: cache a whole poem, fire every waiter, and tell their
    /// connections (through the reactor's local call queue: a Deferred callback gets no
    /// reactor).
    fn deliver(service: &Rc<RefCell<ProxyService>>, result: Result<Poem, Failure>) {
        let (waiters, handle) = {
            let mut this = service.borrow_mut();
            let Some(download) = this.download.take() else {
                return; // cancelled: its clients are gone
            };
            match &result {
                Ok(poem) => {
                    this.cache = Some(poem.clone());
                    this.stats.fetched += 1;
                }
                Err(failure) => {
                    warn!("the download from upstream failed: {failure}");
                    this.stats.failed += 1;
                }
            }
            (download.waiters, this.handle.clone())
        };
        let mut clients = Vec::with_capacity(waiters.len());
        for waiter in waiters {
            let fired = match &result {
                Ok(poem) => waiter.resolver.callback(poem.clone()),
                Err(failure) => waiter.resolver.errback(UpstreamError(failure.to_string())),
            };
            debug_assert!(fired.is_ok(), "a waiter is fired once, by the download");
            clients.extend(waiter.client);
        }
        if clients.is_empty() {
            return;
        }
        let tell = move |reactor: &mut Reactor| {
            for id in clients {
                with_protocol::<ProxyProtocol, _>(reactor, id, |p, cx| p.poem_ready(cx));
            }
        };
        if let Err(e) = handle.call_soon(tell) {
            warn!("cannot tell the waiting clients: {e}");
        }
    }
}
