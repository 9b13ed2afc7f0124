//! ReconnectingClientFactory on a reactor with a manual clock: real refusals and
//! connections on loopback, retry delays moved by hand.

mod util;

use std::time::Duration;

use protocol::{
    connect_tcp, for_protocol, listen_tcp, ClientFactory, ConnectError, ConnectOptions, Connector,
    Context, DisconnectReason, Factory, Protocol, ReconnectingClientFactory, Shared, SimpleFactory,
    TcpListenOptions,
};
use reactor::{ManualClock, Reactor};
use transport::Address;
use util::{turn_a_while, turn_until};

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

/// A client factory that retries with the policy and records what it scheduled.
#[derive(Debug)]
struct Retry {
    policy: ReconnectingClientFactory,
    /// After each failure or loss: the delay scheduled, or `None` for giving up.
    delays: Vec<Option<Duration>>,
    started: u32,
    made: u32,
    failures: Vec<String>,
}

impl Retry {
    fn new(max_retries: Option<u32>) -> Shared<Retry> {
        let mut policy = ReconnectingClientFactory::default();
        policy.initial_delay = SECOND;
        policy.factor = 2.0;
        policy.max_delay = SECOND * 10;
        policy.jitter = 0.0;
        policy.max_retries = max_retries;
        Shared::new(Retry {
            policy,
            delays: Vec::new(),
            started: 0,
            made: 0,
            failures: Vec::new(),
        })
    }

    fn record(&mut self, reactor: &mut Reactor) {
        let delay = self.policy.is_waiting(reactor).then(|| self.policy.delay());
        self.delays.push(delay);
    }
}

struct Quiet;

impl Protocol for Quiet {
    type Factory = Retry;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().made += 1;
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
}

impl Factory for Retry {
    type Protocol = Quiet;

    fn build_protocol(&mut self, _: &Address) -> Option<Quiet> {
        Some(Quiet)
    }
}

impl ClientFactory for Retry {
    fn started_connecting(&mut self, _: &mut Reactor, _: &Connector<Self>) {
        self.started += 1;
    }

    fn client_connection_failed(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        self.failures.push(match reason {
            ConnectError::Failed(DisconnectReason::Refused) => "refused".into(),
            ConnectError::Cancelled => "cancelled".into(),
            other => other.to_string(),
        });
        self.policy.connection_failed(reactor, connector);
        self.record(reactor);
    }

    fn client_connection_lost(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        _: &DisconnectReason,
    ) {
        self.policy.connection_lost(reactor, connector);
        self.record(reactor);
    }
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn manual_reactor() -> (Reactor, ManualClock) {
    let clock = ManualClock::new();
    (Reactor::with_clock(clock.clone()).unwrap(), clock)
}

/// Waits for the next attempt to end, checks it scheduled `delay`, and checks the
/// retry starts at that delay and not a millisecond before.
#[track_caller]
fn expect_retry_after(
    reactor: &mut Reactor,
    clock: &ManualClock,
    factory: &Shared<Retry>,
    delay: Duration,
) {
    let attempts = factory.borrow().delays.len();
    turn_until(reactor, "the attempt to end", || {
        factory.borrow().delays.len() > attempts
    });
    assert_eq!(factory.borrow().delays.last(), Some(&Some(delay)));
    let started = factory.borrow().started;
    clock.advance(delay - MILLI);
    turn_a_while(reactor, 2);
    assert_eq!(
        factory.borrow().started,
        started,
        "retried before {delay:?}"
    );
    clock.advance(MILLI);
    turn_until(reactor, "the retry to start", || {
        factory.borrow().started > started
    });
}

#[test]
fn delays_grow_by_the_factor_up_to_the_maximum_and_retries_end() {
    let (mut reactor, clock) = manual_reactor();
    let factory = Retry::new(Some(6));
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        closed_port(),
        &factory,
        &ConnectOptions::default(),
    );
    for seconds in [2, 4, 8, 10, 10, 10] {
        expect_retry_after(&mut reactor, &clock, &factory, SECOND * seconds);
    }
    turn_until(&mut reactor, "the last attempt to end", || {
        factory.borrow().delays.len() == 7
    });
    assert_eq!(factory.borrow().delays.last(), Some(&None));
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    let factory = factory.borrow();
    assert_eq!(factory.started, 7);
    assert_eq!(factory.failures, ["refused"; 7]);
}

#[test]
fn stop_trying_cancels_the_scheduled_retry_and_the_attempt_in_progress() {
    let (mut reactor, clock) = manual_reactor();
    let factory = Retry::new(None);
    let connector = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        closed_port(),
        &factory,
        &ConnectOptions::default(),
    );
    expect_retry_after(&mut reactor, &clock, &factory, SECOND * 2);
    // An attempt is in progress: stopping cancels it, and nothing is scheduled.
    factory
        .borrow_mut()
        .policy
        .stop_trying(&mut reactor, &connector);
    turn_until(&mut reactor, "the cancellation", || {
        factory.borrow().delays.len() == 2
    });
    assert_eq!(factory.borrow().failures.last().unwrap(), "cancelled");
    assert_eq!(factory.borrow().delays.last(), Some(&None));
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    assert_eq!(factory.borrow().started, 2);

    // Stopping while a retry waits cancels it.
    let factory = Retry::new(None);
    let connector = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        closed_port(),
        &factory,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the first attempt to end", || {
        !factory.borrow().delays.is_empty()
    });
    assert!(factory.borrow_mut().policy.is_waiting(&mut reactor));
    factory
        .borrow_mut()
        .policy
        .stop_trying(&mut reactor, &connector);
    assert!(!factory.borrow_mut().policy.is_waiting(&mut reactor));
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    assert_eq!(factory.borrow().started, 1);
}

/// Hangs up at once.
#[derive(Default)]
struct Closer;

impl Protocol for Closer {
    type Factory = SimpleFactory<Self>;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.lose_connection();
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
}

#[test]
fn the_delay_starts_again_after_a_successful_connection() {
    let (mut reactor, clock) = manual_reactor();
    let port = closed_port();
    let factory = Retry::new(None);
    let connector = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &factory,
        &ConnectOptions::default(),
    );
    expect_retry_after(&mut reactor, &clock, &factory, SECOND * 2);
    turn_until(&mut reactor, "the second attempt to end", || {
        factory.borrow().delays.len() == 2
    });
    assert_eq!(factory.borrow().delays.last(), Some(&Some(SECOND * 4)));
    // Now a server appears on the port: the next attempt connects, and the server
    // hangs up.
    let Ok(listening) = listen_tcp(
        &mut reactor,
        port,
        &for_protocol::<Closer>(),
        &TcpListenOptions::default(),
    ) else {
        eprintln!("port {port} was taken meanwhile; skipped");
        return;
    };
    clock.advance(SECOND * 4);
    turn_until(&mut reactor, "the connection to be made and lost", || {
        factory.borrow().delays.len() == 3
    });
    assert_eq!(factory.borrow().made, 1);
    // Back to the first delay, not 8 s.
    assert_eq!(factory.borrow().delays.last(), Some(&Some(SECOND * 2)));
    factory
        .borrow_mut()
        .policy
        .stop_trying(&mut reactor, &connector);
    listening.stop_listening(&mut reactor);
}

/// `count` successive delays from a policy seeded with `seed`, scheduled against a
/// connector whose attempts never run (the manual clock is never advanced).
fn jittered_delays(
    seed: u64,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
    count: usize,
) -> Vec<f64> {
    let (mut reactor, _clock) = manual_reactor();
    let factory = Retry::new(None);
    let connector = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        closed_port(),
        &factory,
        &ConnectOptions::default(),
    );
    let mut policy = ReconnectingClientFactory::default();
    policy.initial_delay = SECOND;
    policy.factor = factor;
    policy.max_delay = max_delay;
    policy.jitter = jitter;
    policy.seed_jitter(seed);
    let delays = (0..count)
        .map(|_| {
            policy
                .retry(&mut reactor, &connector)
                .expect("no retry limit")
                .as_secs_f64()
        })
        .collect();
    policy.stop_trying(&mut reactor, &connector);
    delays
}

#[test]
fn jitter_is_reproducible_from_its_seed() {
    let a = jittered_delays(7, 2.0, SECOND * 60, 0.12, 20);
    assert_eq!(a, jittered_delays(7, 2.0, SECOND * 60, 0.12, 20));
    assert_ne!(a, jittered_delays(8, 2.0, SECOND * 60, 0.12, 20));
    // Jitter 0 is exact: the same from any seed.
    let exact = jittered_delays(1, 2.0, SECOND * 60, 0.0, 8);
    assert_eq!(exact, [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
    assert_eq!(exact, jittered_delays(99, 2.0, SECOND * 60, 0.0, 8));
}

#[test]
fn jitter_spreads_each_step_by_its_relative_deviation() {
    // With factor 1 and no cap, each delay is the last one times (1 + jitter × Z), Z a
    // standard normal (Twisted's `random.normalvariate(delay, delay * jitter)`).
    const JITTER: f64 = 0.119_626_564_722_777_8; // Twisted's default
                                                 // Short walks from 80 seeds (a long one drifts towards 0: E[ln(1 + jZ)] < 0).
    let z: Vec<f64> = (0..80)
        .flat_map(|i| jittered_delays(2 * i + 1, 1.0, SECOND * 1000, JITTER, 51))
        .collect::<Vec<f64>>()
        .chunks(51)
        .flat_map(|walk| {
            walk.windows(2)
                .map(|w| (w[1] / w[0] - 1.0) / JITTER)
                .collect::<Vec<f64>>()
        })
        .collect();
    let n = z.len();
    let mean = z.iter().sum::<f64>() / n as f64;
    let sd = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let within_one = z.iter().filter(|v| v.abs() <= 1.0).count() as f64 / n as f64;
    assert!(mean.abs() < 0.06, "mean {mean}");
    assert!((0.93..1.07).contains(&sd), "standard deviation {sd}");
    assert!(
        (0.65..0.72).contains(&within_one),
        "within one sd: {within_one}"
    );
    // Both ways, and never wild: Box-Muller on 53-bit uniforms stays under 8.6.
    assert!(z.iter().any(|v| *v > 2.0) && z.iter().any(|v| *v < -2.0));
    assert!(z.iter().all(|v| v.abs() < 8.6), "{z:?}");
}

#[test]
fn jittered_delays_stay_around_the_cap_and_never_go_negative() {
    // Once at the cap, each delay is the cap spread by the jitter: 10 s ± 10 % here,
    // so within 10 × (1 ± 8.6 × 0.1), and in practice within ±5 standard deviations.
    let delays = jittered_delays(42, std::f64::consts::E, SECOND * 10, 0.1, 500);
    assert!(delays.iter().all(|d| *d >= 0.0));
    let capped = &delays[5..];
    assert!(
        capped.iter().all(|d| (5.0..=15.0).contains(d)),
        "{capped:?}"
    );
    let mean = capped.iter().sum::<f64>() / capped.len() as f64;
    assert!((9.5..10.5).contains(&mean), "mean {mean}");
    let spread = capped.iter().map(|d| (d - 10.0).abs()).fold(0.0, f64::max);
    assert!(
        spread > 1.0,
        "jitter 0.1 spread the capped delays by at most {spread}"
    );
}
