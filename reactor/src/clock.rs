//! Where the reactor reads the time: a pluggable [`Clock`].
//!
//! Twisted's reactor reads `time.time()` (or `runtime.seconds`), and its tests swap in
//! `twisted.internet.task.Clock`. Here every reading goes through a [`Clock`], so a test
//! can hand the reactor a [`ManualClock`] and move time by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic source of time for the reactor.
///
/// `now` is the time elapsed since the clock's own epoch. It must never go backwards.
/// The reactor reads it once per turn of the loop and once per `call_later`.
pub trait Clock: fmt::Debug {
    /// The time since this clock's epoch.
    fn now(&self) -> Duration;

    /// Whether the clock only moves when told to (a [`ManualClock`]).
    ///
    /// The reactor never sleeps waiting for a timer of a manual clock: it would sleep
    /// forever, since real time does not move the clock.
    fn is_manual(&self) -> bool {
        false
    }
}

/// The real monotonic clock (`std::time::Instant`), with its epoch at its creation.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    epoch: Instant,
}

impl SystemClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        SystemClock {
            epoch: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}

/// A clock that moves only when [`advance`](ManualClock::advance) is called: Twisted's
/// `task.Clock`.
///
/// Clones share the same time, so a test keeps one clone and gives another to the
/// reactor.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reactor::{ManualClock, Reactor};
///
/// let clock = ManualClock::new();
/// let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
/// reactor.call_later(Duration::from_secs(5), |r| r.stop());
/// clock.advance(Duration::from_secs(4));
/// reactor.iterate(Some(Duration::ZERO)).unwrap();
/// assert_eq!(reactor.pending_calls(), 1);
/// clock.advance(Duration::from_secs(1));
/// reactor.iterate(Some(Duration::ZERO)).unwrap();
/// assert_eq!(reactor.pending_calls(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos
            .fetch_add(duration_to_nanos(by), Ordering::SeqCst);
    }

    /// Moves the clock forward to `to`, if `to` is later than the current time.
    pub fn advance_to(&self, to: Duration) {
        self.nanos
            .fetch_max(duration_to_nanos(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn is_manual(&self) -> bool {
        true
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let other = clock.clone();
        assert_eq!(clock.now(), Duration::ZERO);
        other.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Duration::from_millis(1500));
        clock.advance_to(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::from_millis(1500), "never backwards");
        clock.advance_to(Duration::from_secs(2));
        assert_eq!(other.now(), Duration::from_secs(2));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        assert!(!clock.is_manual());
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(duration_to_nanos(Duration::MAX), u64::MAX);
    }
}
