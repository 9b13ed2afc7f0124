//! ReconnectingClientFactory wrapping a client factory, on a reactor with a manual
//! clock: real refusals and connections on loopback, retry delays moved by hand; and
//! the back-off of ReconnectPolicy on its own.

mod util;

use std::time::Duration;

use protocol::testing::ProtocolTest;
use protocol::{
    connect_tcp, connect_tcp_with, for_protocol, listen_tcp, ClientFactory, ConnectError,
    ConnectOptions, Connector, Context, DisconnectReason, Factory, Protocol, ReconnectPolicy,
    ReconnectingClientFactory, Shared, SimpleFactory, TcpListenOptions,
};
use reactor::{ManualClock, Reactor};
use transport::Address;
use util::{turn_a_while, turn_until};

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

/// A plain client factory that knows nothing of reconnecting: it records what it is
/// told, with the value its connector carries.
#[derive(Debug, Default)]
struct Recorder {
    started: u32,
    built: u32,
    made: u32,
    /// Failures and losses, in order, each with the connector's value.
    ends: Vec<String>,
    do_start: u32,
    do_stop: u32,
}

struct Quiet;

impl Protocol for Quiet {
    type Factory = Recorder;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.factory().made += 1;
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
}

impl Factory for Recorder {
    type Protocol = Quiet;

    fn build_protocol(&mut self, _: &Address) -> Option<Quiet> {
        self.built += 1;
        Some(Quiet)
    }

    fn do_start(&mut self, _: &mut Reactor) {
        self.do_start += 1;
    }

    fn do_stop(&mut self, _: &mut Reactor) {
        self.do_stop += 1;
    }
}

impl ClientFactory for Recorder {
    type Data = &'static str;

    fn started_connecting(&mut self, _: &mut Reactor, _: &Connector<Self>) {
        self.started += 1;
    }

    fn client_connection_failed(
        &mut self,
        _: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        let reason = match reason {
            ConnectError::Failed(DisconnectReason::Refused) => "refused".to_owned(),
            ConnectError::Cancelled => "cancelled".to_owned(),
            other => other.to_string(),
        };
        self.ends.push(format!("{}: {reason}", connector.data()));
    }

    fn client_connection_lost(
        &mut self,
        _: &mut Reactor,
        connector: &Connector<Self>,
        _: &DisconnectReason,
    ) {
        self.ends.push(format!("{}: lost", connector.data()));
    }
}

/// Exact delays (no jitter): 2 s, 4 s, 8 s, then 10 s.
fn policy(max_retries: Option<u32>) -> ReconnectPolicy {
    ReconnectPolicy {
        initial_delay: SECOND,
        factor: 2.0,
        max_delay: SECOND * 10,
        jitter: 0.0,
        max_retries,
        ..ReconnectPolicy::default()
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

/// Connects to a closed loopback port through a wrapper with `policy`.
fn refused(
    reactor: &mut Reactor,
    policy: ReconnectPolicy,
) -> (
    Shared<Recorder>,
    ReconnectingClientFactory<Recorder>,
    Connector<Recorder>,
) {
    let recorder = Shared::new(Recorder::default());
    let reconnecting = ReconnectingClientFactory::with_policy(&recorder, policy);
    let connector = connect_tcp_with(
        reactor,
        "127.0.0.1",
        closed_port(),
        &reconnecting,
        "refused",
        &ConnectOptions::default(),
    );
    (recorder, reconnecting, connector)
}

/// Waits for the next attempt to end, checks the connector then waits `delay`, and
/// that the retry starts at that delay and not a millisecond before.
#[track_caller]
fn expect_retry_after(
    reactor: &mut Reactor,
    clock: &ManualClock,
    recorder: &Shared<Recorder>,
    connector: &Connector<Recorder>,
    delay: Duration,
) {
    let ends = recorder.borrow().ends.len();
    turn_until(reactor, "the attempt to end", || {
        recorder.borrow().ends.len() > ends
    });
    assert_eq!(connector.retry_delay(), Some(delay));
    let started = recorder.borrow().started;
    clock.advance(delay - MILLI);
    turn_a_while(reactor, 2);
    assert_eq!(
        recorder.borrow().started,
        started,
        "retried before {delay:?}"
    );
    clock.advance(MILLI);
    turn_until(reactor, "the retry to start", || {
        recorder.borrow().started > started
    });
    assert_eq!(connector.retry_delay(), None);
}

#[test]
fn refused_attempts_retry_with_growing_delays_until_max_retries() {
    let (mut reactor, clock) = manual_reactor();
    let (recorder, _reconnecting, connector) = refused(&mut reactor, policy(Some(6)));
    for seconds in [2, 4, 8, 10, 10, 10] {
        expect_retry_after(
            &mut reactor,
            &clock,
            &recorder,
            &connector,
            SECOND * seconds,
        );
    }
    turn_until(&mut reactor, "the last attempt to end", || {
        recorder.borrow().ends.len() == 7
    });
    // Gave up: nothing waits, and nothing more happens however long one waits.
    assert_eq!(connector.retry_delay(), None);
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    let recorder = recorder.borrow();
    assert_eq!(recorder.started, 7);
    assert_eq!(recorder.ends, ["refused: refused"; 7]);
    // The wrapped factory's use count: started for each attempt, stopped after each.
    assert_eq!((recorder.do_start, recorder.do_stop), (7, 7));
}

#[test]
fn stop_trying_cancels_the_attempt_in_progress_and_the_retry_waiting() {
    // While an attempt is in progress (the retry has just started).
    let (mut reactor, clock) = manual_reactor();
    let (recorder, reconnecting, connector) = refused(&mut reactor, policy(None));
    expect_retry_after(&mut reactor, &clock, &recorder, &connector, SECOND * 2);
    assert!(connector.is_connecting());
    reconnecting.stop_trying(&mut reactor);
    assert!(!reconnecting.is_trying());
    turn_until(&mut reactor, "the cancellation", || {
        recorder.borrow().ends.len() == 2
    });
    assert_eq!(recorder.borrow().ends[1], "refused: cancelled");
    assert_eq!(connector.retry_delay(), None);
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    assert_eq!(recorder.borrow().started, 2);

    // While a retry waits: through the connector this time.
    let (recorder, _reconnecting, connector) = refused(&mut reactor, policy(None));
    turn_until(&mut reactor, "the first attempt to end", || {
        !recorder.borrow().ends.is_empty()
    });
    assert_eq!(connector.retry_delay(), Some(SECOND * 2));
    assert!(connector.stop_trying(&mut reactor));
    assert!(!connector.stop_trying(&mut reactor), "stopped already");
    assert_eq!(connector.retry_delay(), None);
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    assert_eq!(recorder.borrow().started, 1);
    assert_eq!(recorder.borrow().ends, ["refused: refused"]);
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
fn a_lost_connection_retries_from_the_first_delay_again() {
    let (mut reactor, clock) = manual_reactor();
    let server = for_protocol::<Closer>();
    let port = listen_tcp(&mut reactor, 0, &server, &TcpListenOptions::default()).unwrap();
    let port_number = port.get_host().port().unwrap();
    // The server is there now and hangs up at once: each connection is made, then
    // lost; the delay after each loss is the first one, never a grown one.
    let recorder = Shared::new(Recorder::default());
    let reconnecting = ReconnectingClientFactory::with_policy(&recorder, policy(None));
    let connector = connect_tcp_with(
        &mut reactor,
        "127.0.0.1",
        port_number,
        &reconnecting,
        "closer",
        &ConnectOptions::default(),
    );
    for _ in 0..3 {
        expect_retry_after(&mut reactor, &clock, &recorder, &connector, SECOND * 2);
    }
    turn_until(&mut reactor, "the fourth connection to end", || {
        recorder.borrow().ends.len() == 4
    });
    // Then the server goes away: the failures after the last success grow again.
    port.stop_listening(&mut reactor);
    assert_eq!(connector.retry_delay(), Some(SECOND * 2));
    clock.advance(SECOND * 2);
    expect_retry_after(&mut reactor, &clock, &recorder, &connector, SECOND * 4);
    connector.stop_trying(&mut reactor);
    turn_until(&mut reactor, "the cancellation", || {
        recorder.borrow().ends.len() == 6
    });
    let recorder = recorder.borrow();
    assert_eq!(
        recorder.ends,
        [
            "closer: lost",
            "closer: lost",
            "closer: lost",
            "closer: lost",
            "closer: refused",
            "closer: cancelled"
        ]
    );
    // Every protocol came from the wrapped factory (build_client_protocol's default).
    assert_eq!((recorder.built, recorder.made), (4, 4));
}

#[test]
fn each_connector_of_a_wrapper_jitters_on_its_own_and_stops_with_it() {
    let (mut reactor, _clock) = manual_reactor();
    let recorder = Shared::new(Recorder::default());
    let jittery = ReconnectPolicy {
        jitter: 0.1,
        jitter_seed: Some(5),
        ..policy(None)
    };
    let reconnecting = ReconnectingClientFactory::with_policy(&recorder, jittery);
    let connectors: Vec<Connector<Recorder>> = (0..4)
        .map(|_| {
            connect_tcp_with(
                &mut reactor,
                "127.0.0.1",
                closed_port(),
                &reconnecting,
                "jittery",
                &ConnectOptions::default(),
            )
        })
        .collect();
    turn_until(&mut reactor, "every first attempt to end", || {
        recorder.borrow().ends.len() == 4
    });
    let delays: Vec<f64> = connectors
        .iter()
        .map(|c| c.retry_delay().expect("a retry waits").as_secs_f64())
        .collect();
    // 2 s spread by 10 %: within 2 × (1 ± 8.6 × 0.1), and not all alike.
    assert!(
        delays.iter().all(|d| (0.28..=3.72).contains(d)),
        "{delays:?}"
    );
    assert!(delays.windows(2).any(|w| w[0] != w[1]), "{delays:?}");
    reconnecting.stop_trying(&mut reactor);
    assert!(connectors.iter().all(|c| c.retry_delay().is_none()));
}

#[test]
fn in_memory_a_lost_connection_retries_and_refusals_back_off() {
    // No socket at all: the test's connector connects once over an in-memory stream,
    // and every later attempt is refused, as by a server that went away.
    let recorder = Shared::new(Recorder::default());
    let reconnecting = ReconnectingClientFactory::with_policy(&recorder, policy(Some(3)));
    let mut test = ProtocolTest::from_client_factory(&reconnecting, "memory").unwrap();
    assert_eq!(recorder.borrow().made, 1);
    test.disconnect_peer(false);
    // After the loss the first delay again, then 4 s and 8 s after each refusal.
    for delay in [2, 4, 8] {
        let started = recorder.borrow().started;
        test.advance(SECOND * delay - MILLI);
        assert_eq!(
            recorder.borrow().started,
            started,
            "retried before {delay} s"
        );
        test.advance(MILLI);
        assert_eq!(
            recorder.borrow().started,
            started + 1,
            "no retry at {delay} s"
        );
    }
    // The third refusal was the last retry allowed.
    test.advance(SECOND * 3600);
    let recorder = recorder.borrow();
    assert_eq!(recorder.started, 4);
    assert_eq!(
        recorder.ends,
        [
            "memory: lost",
            "memory: refused",
            "memory: refused",
            "memory: refused"
        ]
    );
    assert_eq!((recorder.do_start, recorder.do_stop), (4, 4));
}

/// Keeps every connection open.
#[derive(Default)]
struct Holder;

impl Protocol for Holder {
    type Factory = SimpleFactory<Self>;

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
}

#[test]
fn disconnect_alone_reconnects_and_stop_trying_first_ends_for_good() {
    let (mut reactor, clock) = manual_reactor();
    let server = for_protocol::<Holder>();
    let port = listen_tcp(&mut reactor, 0, &server, &TcpListenOptions::default()).unwrap();
    let recorder = Shared::new(Recorder::default());
    let reconnecting = ReconnectingClientFactory::with_policy(&recorder, policy(None));
    let connector = connect_tcp_with(
        &mut reactor,
        "127.0.0.1",
        port.get_host().port().unwrap(),
        &reconnecting,
        "held",
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the connection", || connector.is_connected());
    connector.disconnect(&mut reactor);
    expect_retry_after(&mut reactor, &clock, &recorder, &connector, SECOND * 2);
    turn_until(&mut reactor, "the second connection", || {
        connector.is_connected()
    });
    assert!(connector.stop_trying(&mut reactor));
    connector.disconnect(&mut reactor);
    turn_until(&mut reactor, "the second loss", || {
        recorder.borrow().ends.len() == 2
    });
    assert_eq!(connector.retry_delay(), None);
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    assert_eq!(recorder.borrow().made, 2);
    assert_eq!(recorder.borrow().ends, ["held: lost", "held: lost"]);
    port.stop_listening(&mut reactor);
}

#[test]
fn connectors_made_after_stop_trying_try_once() {
    let (mut reactor, clock) = manual_reactor();
    let recorder = Shared::new(Recorder::default());
    let reconnecting = ReconnectingClientFactory::with_policy(&recorder, policy(None));
    reconnecting.stop_trying(&mut reactor);
    let connector = connect_tcp_with(
        &mut reactor,
        "127.0.0.1",
        closed_port(),
        &reconnecting,
        "late",
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the attempt to end", || {
        !recorder.borrow().ends.is_empty()
    });
    assert_eq!(connector.retry_delay(), None);
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    assert_eq!(recorder.borrow().started, 1);
}

#[test]
fn a_plain_factory_never_retries() {
    let (mut reactor, clock) = manual_reactor();
    let plain = for_protocol::<Closer>();
    let connector = connect_tcp(
        &mut reactor,
        "127.0.0.1",
        closed_port(),
        &plain,
        &ConnectOptions::default(),
    );
    turn_until(&mut reactor, "the attempt to end", || {
        !connector.is_connecting()
    });
    assert_eq!(connector.retry_delay(), None);
    assert!(
        !connector.stop_trying(&mut reactor),
        "it was never retrying"
    );
    clock.advance(SECOND * 3600);
    turn_a_while(&mut reactor, 5);
    assert!(!connector.is_connecting() && !connector.is_connected());
}

// ===== the policy alone =====

/// `count` successive delays from a policy seeded with `seed`.
fn jittered_delays(
    seed: u64,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
    count: usize,
) -> Vec<f64> {
    let policy = ReconnectPolicy {
        initial_delay: SECOND,
        factor,
        max_delay,
        jitter,
        max_retries: None,
        jitter_seed: Some(seed),
    };
    let delays: Vec<f64> = policy
        .backoff()
        .take(count)
        .map(|d| d.as_secs_f64())
        .collect();
    assert_eq!(delays.len(), count, "no retry limit");
    delays
}

#[test]
fn max_retries_counts_consecutive_failures_and_reset_starts_again() {
    let mut backoff = policy(Some(2)).backoff();
    assert_eq!(backoff.next(), Some(SECOND * 2));
    assert_eq!(backoff.next(), Some(SECOND * 4));
    assert_eq!(backoff.next(), None);
    assert_eq!(backoff.next(), None);
    backoff.reset();
    assert_eq!(backoff.retries(), 0);
    assert_eq!(backoff.next(), Some(SECOND * 2));
    // No retries at all.
    let never = ReconnectPolicy {
        max_retries: Some(0),
        ..ReconnectPolicy::default()
    };
    assert_eq!(never.backoff().next(), None);
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

#[test]
fn a_huge_jitter_never_waits_a_negative_time() {
    let delays = jittered_delays(3, 2.0, SECOND * 10, 5.0, 200);
    assert!(delays.iter().all(|d| d.is_finite() && *d >= 0.0));
    assert!(delays.contains(&0.0), "a jitter of 5 reaches 0");
}
