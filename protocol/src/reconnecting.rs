//! Reconnecting: [`ReconnectingClientFactory`] wraps any client factory so that the
//! connectors made with it try again, with exponential back-off, after an attempt
//! fails or a connection is lost; [`ReconnectPolicy`] says how long to wait.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use log::debug;
use reactor::{DelayedCall, Reactor};

use crate::connector::{Connector, WeakConnector};
use crate::factory::ClientFactory;
use crate::shared::Shared;

/// How long a reconnecting connector waits before each retry: Twisted's
/// `ReconnectingClientFactory` back-off (its `initialDelay`, `factor`, `maxDelay`,
/// `jitter` and `maxRetries`), as a value of its own. [`backoff`](Self::backoff)
/// turns it into the delays themselves.
///
/// Each failure multiplies the delay by `factor`, up to `max_delay`, then spreads it
/// by `jitter` (a normal deviate of relative standard deviation `jitter`, as
/// Twisted's `random.normalvariate(delay, delay * jitter)`; never below zero). After
/// `max_retries` consecutive failures it gives up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use protocol::ReconnectPolicy;
///
/// let policy = ReconnectPolicy {
///     initial_delay: Duration::from_secs(1),
///     factor: 2.0,
///     max_delay: Duration::from_secs(5),
///     jitter: 0.0,
///     max_retries: Some(4),
///     ..ReconnectPolicy::default()
/// };
/// let delays: Vec<Duration> = policy.backoff().collect();
/// assert_eq!(delays, [2, 4, 5, 5].map(Duration::from_secs));
/// ```
#[doc(alias = "ReconnectingClientFactory")]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// The delay the first retry grows from (Twisted's `initialDelay`, 1 s).
    #[doc(alias = "initialDelay")]
    pub initial_delay: Duration,
    /// Growth of the delay per failure (Twisted's `factor`, e).
    pub factor: f64,
    /// Longest delay before jitter (Twisted's `maxDelay`, one hour).
    #[doc(alias = "maxDelay")]
    pub max_delay: Duration,
    /// Relative standard deviation of each delay (Twisted's `jitter`, 0.1196...); 0
    /// makes the delays exact.
    pub jitter: f64,
    /// Consecutive failed attempts after which it gives up (Twisted's
    /// `maxRetries`); `None` never does.
    #[doc(alias = "maxRetries")]
    pub max_retries: Option<u32>,
    /// Seeds the jitter's random numbers, for reproducible delays; `None` (the
    /// default) seeds from the time.
    pub jitter_seed: Option<u64>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            factor: std::f64::consts::E,
            max_delay: Duration::from_secs(3600),
            jitter: 0.119_626_564_722_777_8,
            max_retries: None,
            jitter_seed: None,
        }
    }
}

fn time_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    nanos | 1
}

impl ReconnectPolicy {
    /// The delays this policy waits, one per consecutive failure, from the first.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            delay: self.initial_delay.as_secs_f64(),
            retries: 0,
            rng: self.jitter_seed.unwrap_or_else(time_seed) | 1,
        }
    }
}

/// The running back-off of a [`ReconnectPolicy`]: each [`next`](Iterator::next)
/// counts one failed attempt and gives the delay before the next attempt, or `None`
/// once `max_retries` is exceeded (the delay part of Twisted's `retry`);
/// [`reset`](Self::reset) starts again after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    /// Seconds the next delay grows from.
    delay: f64,
    retries: u32,
    rng: u64,
}

impl Backoff {
    /// Consecutive failed attempts counted since the start or the last reset.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Back to the initial delay and no failures counted (Twisted's `resetDelay`).
    #[doc(alias = "resetDelay")]
    pub fn reset(&mut self) {
        self.delay = self.policy.initial_delay.as_secs_f64();
        self.retries = 0;
    }

    /// A standard normal deviate (Box-Muller over xorshift64*): below 8.6 in size,
    /// since the uniforms have 53 bits.
    fn standard_normal(&mut self) -> f64 {
        let mut uniform = || {
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let bits = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
            (bits as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u1, u2) = (uniform(), uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let policy = self.policy;
        self.retries = self.retries.saturating_add(1);
        if policy.max_retries.is_some_and(|max| self.retries > max) {
            return None;
        }
        self.delay = (self.delay * policy.factor).min(policy.max_delay.as_secs_f64());
        if policy.jitter > 0.0 {
            let noisy = self.delay + self.delay * policy.jitter * self.standard_normal();
            self.delay = noisy.max(0.0);
        }
        // A factor or jitter that is not a number leaves NaN: wait no time at all.
        Some(Duration::try_from_secs_f64(self.delay).unwrap_or(Duration::ZERO))
    }
}

/// A reconnecting connector's own state, kept in the connector.
#[derive(Debug)]
pub(crate) struct Retry {
    backoff: Backoff,
    stopped: bool,
    /// The retry waiting on the reactor's clock, and its delay.
    pending: Option<(DelayedCall, Duration)>,
}

impl Retry {
    /// A connection was made: the next loss starts again from the initial delay.
    pub(crate) fn connected(&mut self) {
        self.backoff.reset();
    }
}

/// After the factory heard of a failure or a loss: schedule the connector's next
/// attempt on the reactor's clock, unless it is not reconnecting, was told to stop,
/// gave up, or is connecting again already.
pub(crate) fn retry_later<F: ClientFactory>(reactor: &mut Reactor, connector: &Connector<F>) {
    if connector.is_connected() || connector.is_connecting() {
        return;
    }
    let delay = {
        let mut state = connector.state.borrow_mut();
        let Some(retry) = state.retry.as_mut() else {
            return;
        };
        if retry.stopped || retry.pending.is_some() {
            return;
        }
        match retry.backoff.next() {
            Some(delay) => delay,
            None => {
                debug!("giving up after {} retries", retry.backoff.retries() - 1);
                return;
            }
        }
    };
    let waiting = connector.clone();
    let call = reactor.call_later(delay, move |reactor| {
        if let Some(retry) = waiting.state.borrow_mut().retry.as_mut() {
            retry.pending = None;
        }
        waiting.connect(reactor);
    });
    if let Some(retry) = connector.state.borrow_mut().retry.as_mut() {
        retry.pending = Some((call, delay));
    }
}

impl<F: ClientFactory> Connector<F> {
    /// Stops reconnecting this connector: cancels the retry waiting, abandons an
    /// attempt in progress (its factory hears [`ConnectError::Cancelled`] on the next
    /// turn) and leaves an open connection open, never to be retried when it ends
    /// (Twisted's `stopTrying`, for one connector). Safe from any callback, including
    /// the protocol's `connection_made`. Returns whether it was reconnecting.
    ///
    /// [`ConnectError::Cancelled`]: crate::ConnectError::Cancelled
    #[doc(alias = "stopTrying")]
    pub fn stop_trying(&self, reactor: &mut Reactor) -> bool {
        let pending = {
            let mut state = self.state.borrow_mut();
            let Some(retry) = state.retry.as_mut() else {
                return false;
            };
            let was = !retry.stopped;
            retry.stopped = true;
            (was, retry.pending.take())
        };
        if let (_, Some((call, _))) = pending {
            // Err: it is running now (this is its connect) or already ran.
            if call.cancel(reactor).is_err() {
                debug!("the retry had already run");
            }
        }
        self.stop_connecting(reactor);
        pending.0
    }

    /// The delay of the retry waiting on the reactor's clock now, if one is.
    pub fn retry_delay(&self) -> Option<Duration> {
        let state = self.state.borrow();
        state.retry.as_ref()?.pending.as_ref().map(|p| p.1)
    }
}

pub(crate) mod sealed {
    use super::*;

    /// What a [`ConnectWith`](super::ConnectWith) does for the connector: kept out of
    /// reach of other crates.
    pub trait Sealed<F: ClientFactory> {
        /// The factory the connector reports to.
        fn shared(&self) -> &Shared<F>;
        /// The connector is made (not started): a reconnecting factory arms it.
        fn adopt(&self, connector: &Connector<F>);
    }
}

/// What [`connect_tcp`](crate::connect_tcp) and [`connect_unix`](crate::connect_unix)
/// connect with: a [`Shared`] client factory, whose connectors try once, or a
/// [`ReconnectingClientFactory`] around one, whose connectors try again. Sealed: no
/// other type can be one.
pub trait ConnectWith: sealed::Sealed<Self::Factory> {
    /// The client factory the connectors report to.
    type Factory: ClientFactory;
}

impl<F: ClientFactory> sealed::Sealed<F> for Shared<F> {
    fn shared(&self) -> &Shared<F> {
        self
    }

    fn adopt(&self, _connector: &Connector<F>) {}
}

impl<F: ClientFactory> ConnectWith for Shared<F> {
    type Factory = F;
}

/// Wraps a client factory so that every connector made with it reconnects, with
/// exponential back-off on the reactor's clock (Twisted's
/// `ReconnectingClientFactory`).
///
/// Pass it to [`connect_tcp`](crate::connect_tcp) (or
/// [`connect_tcp_with`](crate::connect_tcp_with), `connect_unix`) where the factory
/// would go. The wrapped factory is told everything as without the wrapper
/// (`build_client_protocol`, `started_connecting`, `client_connection_failed`,
/// `client_connection_lost`, `do_start` / `do_stop`); after each
/// `client_connection_failed` and `client_connection_lost` the connector waits the
/// policy's next delay and connects again. A connection made resets the delay, so a
/// loss after a success retries after the first delay again (in Twisted one must
/// call `resetDelay` in `buildProtocol` for that). [`stop_trying`](Self::stop_trying)
/// stops every connector it made; [`Connector::stop_trying`] one of them. As in
/// Twisted, [`Connector::disconnect`] alone closes the connection and the connector
/// then reconnects: stop trying first to end for good.
///
/// Its protocols' `cx.factory()` is the wrapped factory: nothing changes for them.
///
/// Cheap to clone: clones share the wrapper.
///
/// # Examples
///
/// ```no_run
/// use protocol::prelude::*;
/// use protocol::{ReconnectPolicy, ReconnectingClientFactory};
///
/// #[derive(Default)]
/// struct Printer;
/// impl Protocol for Printer {
///     type Factory = SimpleFactory<Self>;
///     fn data_received(&mut self, _: &mut Context<'_, Self>, data: &[u8]) {
///         print!("{}", String::from_utf8_lossy(data));
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let policy = ReconnectPolicy { max_retries: Some(10), ..ReconnectPolicy::default() };
/// let reconnecting = ReconnectingClientFactory::with_policy(&for_protocol::<Printer>(), policy);
/// connect_tcp(&mut reactor, "127.0.0.1", 10000, &reconnecting, &ConnectOptions::default());
/// reactor.run()?;
/// # Ok::<(), protocol::reactor::ReactorError>(())
/// ```
pub struct ReconnectingClientFactory<F: ClientFactory> {
    factory: Shared<F>,
    inner: Rc<RefCell<Trying<F>>>,
}

struct Trying<F: ClientFactory> {
    policy: ReconnectPolicy,
    /// Cleared by `stop_trying`: connectors made after it do not retry either.
    trying: bool,
    connectors: Vec<WeakConnector<F>>,
    /// Connectors made so far.
    made: u64,
}

impl<F: ClientFactory> Clone for ReconnectingClientFactory<F> {
    fn clone(&self) -> Self {
        ReconnectingClientFactory {
            factory: self.factory.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<F: ClientFactory> fmt::Debug for ReconnectingClientFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("ReconnectingClientFactory")
            .field("policy", &inner.policy)
            .field("trying", &inner.trying)
            .finish_non_exhaustive()
    }
}

impl<F: ClientFactory> ReconnectingClientFactory<F> {
    /// Wraps `factory` with Twisted's default back-off ([`ReconnectPolicy::default`]).
    pub fn new(factory: &Shared<F>) -> Self {
        Self::with_policy(factory, ReconnectPolicy::default())
    }

    /// Wraps `factory`; each connector made with it waits as `policy` says (its own
    /// [`backoff`](ReconnectPolicy::backoff)).
    pub fn with_policy(factory: &Shared<F>, policy: ReconnectPolicy) -> Self {
        ReconnectingClientFactory {
            factory: factory.clone(),
            inner: Rc::new(RefCell::new(Trying {
                policy,
                trying: true,
                connectors: Vec::new(),
                made: 0,
            })),
        }
    }

    /// The wrapped factory.
    pub fn factory(&self) -> &Shared<F> {
        &self.factory
    }

    /// Whether its connectors still retry (until [`stop_trying`](Self::stop_trying)).
    pub fn is_trying(&self) -> bool {
        self.inner.borrow().trying
    }

    /// Stops reconnecting (Twisted's `stopTrying`): every connector it made stops as
    /// [`Connector::stop_trying`] says, and connectors made with it later try once.
    #[doc(alias = "stopTrying")]
    pub fn stop_trying(&self, reactor: &mut Reactor) {
        let connectors: Vec<Connector<F>> = {
            let mut inner = self.inner.borrow_mut();
            inner.trying = false;
            let weak = std::mem::take(&mut inner.connectors);
            weak.iter()
                .filter_map(|c| c.upgrade(&self.factory))
                .collect()
        };
        for connector in connectors {
            connector.stop_trying(reactor);
        }
    }
}

impl<F: ClientFactory> sealed::Sealed<F> for ReconnectingClientFactory<F> {
    fn shared(&self) -> &Shared<F> {
        &self.factory
    }

    fn adopt(&self, connector: &Connector<F>) {
        let mut inner = self.inner.borrow_mut();
        inner.made += 1;
        let mut backoff = inner.policy.backoff();
        // Each connector its own jitter, so connectors that fail together spread out.
        backoff.rng ^= inner.made.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        backoff.rng |= 1;
        connector.state.borrow_mut().retry = Some(Retry {
            backoff,
            stopped: !inner.trying,
            pending: None,
        });
        // Forget the connectors that are gone, so the list stays as long as the live ones.
        let factory = &self.factory;
        inner.connectors.retain(|c| c.upgrade(factory).is_some());
        inner.connectors.push(connector.downgrade());
    }
}

impl<F: ClientFactory> ConnectWith for ReconnectingClientFactory<F> {
    type Factory = F;
}
