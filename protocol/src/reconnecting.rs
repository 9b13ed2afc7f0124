//! [`ReconnectingClientFactory`]: Twisted's exponential back-off for reconnecting
//! clients.

use std::time::Duration;

use reactor::{DelayedCall, Reactor};

use crate::connector::Connector;
use crate::factory::ClientFactory;

/// The reconnection policy of Twisted's `ReconnectingClientFactory`, kept inside a
/// client factory of one's own.
///
/// Call [`connection_failed`](Self::connection_failed) from
/// `client_connection_failed` and [`connection_lost`](Self::connection_lost) from
/// `client_connection_lost`. Each failure multiplies the delay by `factor` (with
/// jitter), up to `max_delay`; after `max_retries` consecutive failures it gives up.
/// Unlike Twisted, where one must remember to call `resetDelay` in `buildProtocol`,
/// the delay resets by itself once a connection has been made: a loss after a
/// successful connection starts again from `initial_delay`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use protocol::{ClientFactory, ConnectError, Connector, Context, Factory, Protocol, ReconnectingClientFactory};
/// use reactor::Reactor;
/// use transport::{Address, DisconnectReason};
///
/// struct Client;
/// impl Protocol for Client {
///     type Factory = Reconnect;
///     fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
/// }
///
/// struct Reconnect { retry: ReconnectingClientFactory }
/// impl Factory for Reconnect {
///     type Protocol = Client;
///     fn build_protocol(&mut self, _: &Address) -> Option<Client> { Some(Client) }
/// }
/// impl ClientFactory for Reconnect {
///     fn client_connection_failed(&mut self, r: &mut Reactor, c: &Connector<Self>, _: &ConnectError) {
///         self.retry.connection_failed(r, c);
///     }
///     fn client_connection_lost(&mut self, r: &mut Reactor, c: &Connector<Self>, _: &DisconnectReason) {
///         self.retry.connection_lost(r, c);
///     }
/// }
///
/// let mut policy = ReconnectingClientFactory::default();
/// policy.max_retries = Some(5);
/// assert_eq!(policy.delay(), Duration::from_secs(1));
/// ```
#[derive(Debug)]
pub struct ReconnectingClientFactory {
    /// Delay before the first retry is computed from (Twisted's `initialDelay`, 1 s).
    pub initial_delay: Duration,
    /// Growth of the delay per failure (Twisted's `factor`, e).
    pub factor: f64,
    /// Longest delay (Twisted's `maxDelay`, one hour).
    pub max_delay: Duration,
    /// Relative standard deviation of the delay (Twisted's `jitter`, 0.1196...); 0
    /// makes the delays exact.
    pub jitter: f64,
    /// Consecutive failed attempts after which it gives up; `None` never does.
    pub max_retries: Option<u32>,
    delay: f64,
    retries: u32,
    continue_trying: bool,
    pending: Option<DelayedCall>,
    rng: u64,
}

impl Default for ReconnectingClientFactory {
    fn default() -> Self {
        ReconnectingClientFactory {
            initial_delay: Duration::from_secs(1),
            factor: std::f64::consts::E,
            max_delay: Duration::from_secs(3600),
            jitter: 0.119_626_564_722_777_8,
            max_retries: None,
            delay: 1.0,
            retries: 0,
            continue_trying: true,
            pending: None,
            rng: seed(),
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    nanos | 1
}

impl ReconnectingClientFactory {
    /// The delay the next retry will start from (before growth and jitter).
    pub fn delay(&self) -> Duration {
        if self.retries == 0 {
            self.initial_delay
        } else {
            Duration::from_secs_f64(self.delay)
        }
    }

    /// Consecutive failed attempts so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Whether a retry is scheduled.
    pub fn is_waiting(&self, reactor: &mut Reactor) -> bool {
        self.pending.is_some_and(|call| call.active(reactor))
    }

    /// Seeds the jitter's random numbers, for reproducible delays.
    pub fn seed_jitter(&mut self, seed: u64) {
        self.rng = seed | 1;
    }

    /// Back to the initial delay, and trying again (Twisted's `resetDelay`).
    #[doc(alias = "resetDelay")]
    pub fn reset_delay(&mut self) {
        self.delay = self.initial_delay.as_secs_f64();
        self.retries = 0;
        self.continue_trying = true;
    }

    /// Stops retrying: cancels the scheduled retry, and abandons an attempt in
    /// progress (Twisted's `stopTrying`).
    #[doc(alias = "stopTrying")]
    pub fn stop_trying<F: ClientFactory>(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<F>,
    ) {
        if let Some(call) = self.pending.take() {
            let _ = call.cancel(reactor);
        }
        self.continue_trying = false;
        connector.stop_connecting(reactor);
    }

    /// An attempt failed: schedule the next with a longer delay.
    pub fn connection_failed<F: ClientFactory>(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<F>,
    ) {
        self.retry(reactor, connector);
    }

    /// A connection that had been made was lost: start again from the initial delay.
    pub fn connection_lost<F: ClientFactory>(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<F>,
    ) {
        if self.continue_trying {
            self.reset_delay();
        }
        self.retry(reactor, connector);
    }

    /// Schedules `connector.connect()` after the next delay (Twisted's `retry`).
    /// Returns the delay, or `None` when it gave up or was told to stop.
    pub fn retry<F: ClientFactory>(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<F>,
    ) -> Option<Duration> {
        if !self.continue_trying {
            return None;
        }
        if self.retries == 0 {
            self.delay = self.initial_delay.as_secs_f64();
        }
        self.retries += 1;
        if self.max_retries.is_some_and(|max| self.retries > max) {
            return None;
        }
        self.delay = (self.delay * self.factor).min(self.max_delay.as_secs_f64());
        if self.jitter > 0.0 {
            let noisy = self.delay + self.delay * self.jitter * self.standard_normal();
            self.delay = noisy.max(0.0);
        }
        let delay = Duration::from_secs_f64(self.delay);
        let connector = connector.clone();
        self.pending = Some(reactor.call_later(delay, move |reactor| {
            connector.connect(reactor);
        }));
        Some(delay)
    }

    /// A standard normal deviate (Box-Muller over xorshift64*).
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
