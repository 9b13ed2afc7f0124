//! The idle timeout's queues on a manual clock, with many connections on one reactor.

use std::io::Write;
use std::time::Duration;

use reactor::{DescriptorId, ManualClock, Reactor};
use transport::{Address, Connection, MemoryStream, Stream};

use crate::handler::ProtocolHandler;
use crate::{Context, Factory, Protocol, Shared};

const SECOND: Duration = Duration::from_secs(1);
const PERIOD: Duration = Duration::from_secs(5);

/// Records every timeout: which connection, and when.
#[derive(Default)]
struct Log {
    timed_out: Vec<(usize, Duration)>,
    /// Connections whose timeouts the first connection to time out turns off.
    turn_off_on_timeout: Vec<DescriptorId>,
}

impl Factory for Log {
    type Protocol = Idler;
    fn build_protocol(&mut self, _: &Address) -> Option<Idler> {
        None
    }
}

struct Idler {
    tag: usize,
    period: Option<Duration>,
    /// Aborts when timed out (Twisted's default); else stays open.
    abort: bool,
}

impl Protocol for Idler {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.set_timeout(self.period);
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}

    fn timeout_connection(&mut self, cx: &mut Context<'_, Self>) {
        let now = cx.reactor().now();
        cx.factory().timed_out.push((self.tag, now));
        let others = std::mem::take(&mut cx.factory().turn_off_on_timeout);
        for id in others {
            crate::with_protocol::<Idler, _>(cx.reactor(), id, |_, other| {
                other.set_timeout(None);
            });
        }
        if self.abort {
            cx.abort_timed_out();
        }
    }
}

/// Many connections of one factory on one reactor, each with its peer's end.
struct Crowd {
    reactor: Reactor,
    clock: ManualClock,
    factory: Shared<Log>,
    conns: Vec<(DescriptorId, MemoryStream)>,
}

impl Crowd {
    fn new() -> Crowd {
        let clock = ManualClock::new();
        Crowd {
            reactor: Reactor::with_clock(clock.clone()).unwrap(),
            clock,
            factory: Shared::new(Log::default()),
            conns: Vec::new(),
        }
    }

    /// Connects a protocol with `period`; returns its tag.
    fn connect(&mut self, period: Option<Duration>, abort: bool) -> usize {
        let tag = self.conns.len();
        let (ours, theirs) = MemoryStream::pair(1024);
        let peer = ours.peer_address().unwrap();
        let protocol = Idler { tag, period, abort };
        let handler = ProtocolHandler::new(protocol, self.factory.clone());
        let id = Connection::start(&mut self.reactor, Box::new(ours), peer, handler).unwrap();
        self.conns.push((id, theirs));
        tag
    }

    /// Runs what is ready and due, a few turns.
    fn pump(&mut self) {
        for _ in 0..4 {
            for (id, _) in &self.conns {
                let _ = self.reactor.set_ready(*id, true, true);
            }
            self.reactor.iterate(Some(Duration::ZERO)).unwrap();
        }
    }

    fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        self.pump();
    }

    /// Connection `tag`'s peer sends a byte (progress), if the connection is open.
    fn send(&mut self, tag: usize) -> bool {
        let sent = self.conns[tag].1.write_all(b"x").is_ok();
        self.pump();
        sent
    }

    fn with<R>(&mut self, tag: usize, f: impl FnOnce(&mut Context<'_, Idler>) -> R) -> R {
        let id = self.conns[tag].0;
        crate::with_protocol::<Idler, _>(&mut self.reactor, id, |_, cx| f(cx)).unwrap()
    }

    fn timed_out(&self) -> Vec<(usize, Duration)> {
        self.factory.borrow().timed_out.clone()
    }

    fn queued(&self) -> usize {
        self.factory.idle_queues().count()
    }
}

#[test]
fn connections_sharing_a_period_share_one_reactor_timer() {
    let mut crowd = Crowd::new();
    for _ in 0..100 {
        crowd.connect(Some(PERIOD), true);
        crowd.advance(Duration::from_millis(10));
    }
    assert_eq!(crowd.reactor.pending_calls(), 1);
    crowd.connect(Some(PERIOD * 2), true);
    assert_eq!(crowd.reactor.pending_calls(), 2);
    assert_eq!(crowd.queued(), 2);
}

#[test]
fn each_connection_times_out_between_one_and_two_periods_after_its_last_progress() {
    let mut crowd = Crowd::new();
    let step = Duration::from_millis(100);
    let mut last = Vec::new();
    let mut sent = 0;
    // 30 connections, one every 100 ms; connection n sends a byte 1 to 3.1 s after it
    // connected, and the even ones another 4.5 s after: each while it is open.
    for tick in 0..300 {
        if tick < 30 {
            crowd.connect(Some(PERIOD), true);
            last.push(crowd.reactor.now());
        }
        for (tag, at) in last.iter_mut().enumerate() {
            let first = tag + 10 + (tag % 4) * 7;
            if tick == first || (tag % 2 == 0 && tick == tag + 45) {
                assert!(crowd.send(tag), "connection {tag} is open at tick {tick}");
                *at = crowd.reactor.now();
                sent += 1;
            }
        }
        crowd.advance(step);
    }
    assert_eq!(sent, 45);
    let timed_out = crowd.timed_out();
    assert_eq!(
        timed_out.len(),
        30,
        "every connection timed out: {timed_out:?}"
    );
    for (tag, when) in timed_out {
        let idle = when - last[tag];
        assert!(
            idle >= PERIOD && idle <= PERIOD * 2,
            "connection {tag} timed out {idle:?} after its last progress"
        );
    }
    assert_eq!(crowd.queued(), 0, "the queue went with its last connection");
    assert_eq!(crowd.reactor.pending_calls(), 0);
}

#[test]
fn reset_and_a_second_set_restart_the_period() {
    let mut crowd = Crowd::new();
    let a = crowd.connect(Some(PERIOD), true);
    let b = crowd.connect(Some(PERIOD), true);
    crowd.advance(SECOND * 4);
    crowd.with(a, |cx| cx.reset_timeout());
    crowd.with(b, |cx| cx.set_timeout(Some(PERIOD)));
    let restarted = crowd.reactor.now();
    for _ in 0..20 {
        crowd.advance(SECOND / 2);
    }
    let timed_out = crowd.timed_out();
    assert_eq!(timed_out.len(), 2);
    for (_, when) in timed_out {
        assert!(when - restarted >= PERIOD && when - restarted <= PERIOD * 2);
    }
}

#[test]
fn an_expired_timeout_is_off_until_set_again_as_in_twisted() {
    let mut crowd = Crowd::new();
    let a = crowd.connect(Some(PERIOD), false);
    crowd.advance(PERIOD);
    assert_eq!(crowd.timed_out(), [(a, PERIOD)]);
    // Twisted's resetTimeout does nothing once the timeout has fired.
    crowd.with(a, |cx| cx.reset_timeout());
    crowd.advance(PERIOD * 4);
    assert_eq!(crowd.timed_out().len(), 1);
    assert_eq!(crowd.reactor.pending_calls(), 0);
    crowd.with(a, |cx| cx.set_timeout(Some(PERIOD)));
    crowd.advance(PERIOD);
    assert_eq!(crowd.timed_out(), [(a, PERIOD), (a, PERIOD * 6)]);
}

#[test]
fn turning_off_and_changing_the_period_leave_no_timer_behind() {
    let mut crowd = Crowd::new();
    let a = crowd.connect(Some(PERIOD), true);
    let b = crowd.connect(Some(PERIOD), true);
    crowd.with(b, |cx| cx.set_timeout(None));
    // Back and forth between two periods, many times, in one instant.
    for _ in 0..1000 {
        crowd.with(a, |cx| cx.set_timeout(Some(SECOND)));
        crowd.with(a, |cx| cx.set_timeout(Some(PERIOD)));
        crowd.pump();
    }
    let len = |crowd: &Crowd| {
        let mut queues = crowd.factory.idle_queues();
        let index = queues.find_or_add(&crowd.reactor, PERIOD).unwrap();
        queues.get_mut(index).map_or(0, |q| q.len())
    };
    assert!(len(&crowd) <= 2 * 64 + 2, "{} entries", len(&crowd));
    crowd.with(a, |cx| cx.set_timeout(Some(SECOND)));
    crowd.advance(SECOND);
    assert_eq!(crowd.timed_out(), [(a, SECOND)]);
    crowd.advance(PERIOD * 3);
    assert_eq!(crowd.timed_out().len(), 1, "b's timeout is off");
    assert_eq!(crowd.reactor.pending_calls(), 0);
    assert_eq!(crowd.queued(), 0);
}

#[test]
fn a_crowd_that_leaves_gives_its_queue_back() {
    let mut crowd = Crowd::new();
    for _ in 0..1000 {
        crowd.connect(Some(PERIOD), true);
    }
    let len = |crowd: &Crowd| {
        let mut queues = crowd.factory.idle_queues();
        let index = queues.find_or_add(&crowd.reactor, PERIOD).unwrap();
        queues.get_mut(index).map_or(0, |q| q.len())
    };
    assert_eq!(len(&crowd), 1000);
    // Three quarters leave: the queue is rebuilt without them.
    let ids: Vec<_> = crowd.conns.iter().map(|(id, _)| *id).collect();
    for &id in &ids[..750] {
        crate::with_protocol::<Idler, _>(&mut crowd.reactor, id, |_, cx| cx.abort_connection());
    }
    crowd.pump();
    assert!(
        len(&crowd) <= 2 * 250,
        "{} entries for 250 connections",
        len(&crowd)
    );
    // The rest leave: the queue and its timer are gone.
    for &id in &ids[750..] {
        crate::with_protocol::<Idler, _>(&mut crowd.reactor, id, |_, cx| cx.abort_connection());
    }
    crowd.pump();
    assert_eq!(crowd.queued(), 0);
    assert_eq!(crowd.reactor.pending_calls(), 0);
    assert!(crowd.timed_out().is_empty());
}

#[test]
fn connections_that_leave_while_their_queue_fires_are_counted_for_a_rebuild() {
    let mut crowd = Crowd::new();
    let first = crowd.connect(Some(PERIOD), false);
    crowd.advance(SECOND);
    for _ in 0..800 {
        crowd.connect(Some(PERIOD), false);
    }
    crowd.pump();
    let len = |crowd: &Crowd| {
        let mut queues = crowd.factory.idle_queues();
        let index = queues.find_or_add(&crowd.reactor, PERIOD).unwrap();
        queues.get_mut(index).map_or(0, |q| q.len())
    };
    assert_eq!(len(&crowd), 801);
    // The first to time out turns off 700 of the others' timeouts while the queue
    // fires (its timer is out then), so their entries go stale inside the firing.
    let ids: Vec<_> = crowd.conns[1..=700].iter().map(|(id, _)| *id).collect();
    crowd.factory.borrow_mut().turn_off_on_timeout = ids;
    // Only the first is due (at 5 s; the others at 6 s).
    crowd.advance(PERIOD - SECOND);
    assert_eq!(crowd.timed_out().len(), 1);
    assert_eq!(crowd.timed_out()[0].0, first);
    assert!(
        len(&crowd) <= 2 * 101,
        "{} entries for 101 connections",
        len(&crowd)
    );
}
