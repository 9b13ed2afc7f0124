//! The queues behind every idle timeout ([`Context::set_timeout`]): the connections
//! of one factory that share a period wait in one first-in first-out queue per
//! reactor, and one reactor timer per queue wakes for its front.
//!
//! An entry joins at the back with a deadline one period from now, so each queue is
//! sorted by deadline without a heap: the reactor holds one timer per distinct period,
//! not one per connection, and progress in either direction costs nothing at all (it
//! is read from the transport's counters when the connection's entry comes to the
//! front). A connection that made progress goes to the back again, a period after its
//! old deadline; one without progress is timed out.
//!
//! A connection lost, or whose timeout is turned off or changed, leaves its entry
//! behind, *stale* (the entry's ticket no longer matches the connection's). Stale
//! entries are dropped when they reach the front; the queue is rebuilt without them
//! once they outnumber the live ones, and dropped whole, its timer cancelled, when no
//! live entry is left. So a crowd that leaves gives its memory back at once.
//!
//! [`Context::set_timeout`]: crate::Context::set_timeout

use std::collections::VecDeque;
use std::time::Duration;

use reactor::{DelayedCall, DescriptorId, LocalHandle, Reactor};

/// One connection waiting in a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: DescriptorId,
    /// The connection's ticket when it joined: the entry is live while they match.
    pub(crate) ticket: u32,
    /// When the connection is due for a check, in nanoseconds on the reactor's clock.
    pub(crate) deadline: u64,
}

/// The connections of one factory on one reactor that share one period.
#[derive(Debug)]
pub(crate) struct IdleQueue {
    pub(crate) period: Duration,
    /// The reactor this queue's timer and connections belong to.
    reactor: LocalHandle,
    /// Sorted by deadline, earliest first.
    entries: VecDeque<Entry>,
    /// Entries whose connection still holds them (the others are stale).
    live: usize,
    /// The timer armed for the front entry's deadline; `None` while it runs.
    pub(crate) timer: Option<DelayedCall>,
    /// A rebuild without stale entries is queued (`call_soon`).
    pub(crate) compacting: bool,
}

/// Rebuild a queue once its stale entries are more than this, and than its live ones.
const STALE_SLACK: usize = 64;

impl IdleQueue {
    fn new(period: Duration, reactor: LocalHandle) -> IdleQueue {
        IdleQueue {
            period,
            reactor,
            entries: VecDeque::new(),
            live: 0,
            timer: None,
            compacting: false,
        }
    }

    /// The period in nanoseconds.
    pub(crate) fn period_nanos(&self) -> u64 {
        nanos(self.period)
    }

    /// The earliest deadline, if any entry waits.
    pub(crate) fn front_deadline(&self) -> Option<u64> {
        self.entries.front().map(|e| e.deadline)
    }

    /// Adds a connection's entry at the back. The deadline is raised to the last
    /// entry's if it is earlier, so the queue stays sorted (it is only ever raised by
    /// less than a period: every deadline is at most one period from when it was set).
    pub(crate) fn push(&mut self, mut entry: Entry) {
        if let Some(last) = self.entries.back() {
            entry.deadline = entry.deadline.max(last.deadline);
        }
        self.entries.push_back(entry);
    }

    /// A connection joined with a new entry.
    pub(crate) fn join(&mut self, entry: Entry) {
        self.live += 1;
        self.push(entry);
    }

    /// A connection left (lost, turned off, moved to another period, timed out):
    /// its entry, if still queued, is stale now.
    pub(crate) fn leave(&mut self) {
        debug_assert!(self.live > 0, "a connection left a queue it was not in");
        self.live = self.live.saturating_sub(1);
    }

    /// Whether no connection holds an entry here any more.
    pub(crate) fn is_dead(&self) -> bool {
        self.live == 0
    }

    /// Whether stale entries are now so many the queue should be rebuilt.
    pub(crate) fn mostly_stale(&self) -> bool {
        let stale = self.entries.len().saturating_sub(self.live);
        stale > STALE_SLACK && stale > self.live
    }

    /// Removes the front entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Entry> {
        if self.entries.front()?.deadline <= now {
            self.entries.pop_front()
        } else {
            None
        }
    }

    /// How many entries wait, live or stale.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes the entries out, for a rebuild.
    pub(crate) fn take_entries(&mut self) -> VecDeque<Entry> {
        std::mem::take(&mut self.entries)
    }

    /// Puts back the live entries of a rebuild (still sorted), in front of any that
    /// joined meanwhile.
    pub(crate) fn restore(&mut self, mut kept: VecDeque<Entry>) {
        kept.shrink_to_fit();
        kept.append(&mut self.entries);
        self.entries = kept;
        debug_assert!(self
            .entries
            .iter()
            .zip(self.entries.iter().skip(1))
            .all(|(a, b)| a.deadline <= b.deadline));
    }
}

/// A factory's idle queues, one per period and reactor in use. A connection names its
/// queue by index; a queue is removed once no connection holds an entry in it, and its
/// index reused.
#[derive(Debug, Default)]
pub(crate) struct IdleQueues {
    queues: Vec<Option<IdleQueue>>,
}

impl IdleQueues {
    /// The index of the queue for `period` on `reactor`, made if there is none; `None`
    /// only past `u32::MAX - 1` queues (more than memory holds), as an index + 1 must
    /// fit in a `u32`.
    pub(crate) fn find_or_add(&mut self, reactor: &Reactor, period: Duration) -> Option<u32> {
        let handle = reactor.local_handle();
        let found = self.queues.iter().position(|q| {
            q.as_ref()
                .is_some_and(|q| q.period == period && q.reactor.same_reactor(&handle))
        });
        let index = found.unwrap_or_else(|| {
            let queue = Some(IdleQueue::new(period, handle));
            match self.queues.iter().position(Option::is_none) {
                Some(free) => {
                    self.queues[free] = queue;
                    free
                }
                None => {
                    self.queues.push(queue);
                    self.queues.len() - 1
                }
            }
        });
        u32::try_from(index).ok().filter(|i| *i < u32::MAX)
    }

    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut IdleQueue> {
        self.queues.get_mut(index as usize)?.as_mut()
    }

    /// Removes the queue at `index`, handing back its timer to cancel.
    pub(crate) fn remove(&mut self, index: u32) -> Option<DelayedCall> {
        let queue = self.queues.get_mut(index as usize)?.take()?;
        while self.queues.last().is_some_and(Option::is_none) {
            self.queues.pop();
        }
        queue.timer
    }

    /// How many queues exist (for tests).
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.queues.iter().flatten().count()
    }
}

/// A duration in nanoseconds, saturated (the reactor's timers count the same way).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor::ManualClock;

    fn id(reactor: &mut Reactor) -> DescriptorId {
        // Any id of this reactor will do: the queue never looks behind it.
        struct Quiet;
        impl transport::Handler for Quiet {
            fn data_received(&mut self, _: &mut transport::Transport<'_>, _: &[u8]) {}
            fn connection_lost(
                &mut self,
                _: &mut transport::Transport<'_>,
                _: &transport::DisconnectReason,
            ) {
            }
        }
        let (ours, _theirs) = transport::MemoryStream::pair(16);
        let peer = transport::Stream::peer_address(&ours).unwrap();
        transport::Connection::start(reactor, Box::new(ours), peer, Quiet).unwrap()
    }

    #[test]
    fn entries_stay_sorted_and_pop_when_due() {
        let mut reactor = Reactor::with_clock(ManualClock::new()).unwrap();
        let mut queues = IdleQueues::default();
        let index = queues
            .find_or_add(&reactor, Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            queues
                .find_or_add(&reactor, Duration::from_secs(5))
                .unwrap(),
            index
        );
        let other = queues
            .find_or_add(&reactor, Duration::from_secs(6))
            .unwrap();
        assert_ne!(other, index);
        let id = id(&mut reactor);
        let queue = queues.get_mut(index).unwrap();
        queue.join(Entry {
            id,
            ticket: 1,
            deadline: 10,
        });
        queue.join(Entry {
            id,
            ticket: 2,
            deadline: 7,
        });
        assert_eq!(queue.front_deadline(), Some(10));
        assert_eq!(queue.pop_due(9), None);
        assert_eq!(queue.pop_due(10).map(|e| e.ticket), Some(1));
        assert_eq!(
            queue.pop_due(10).map(|e| (e.ticket, e.deadline)),
            Some((2, 10))
        );
        assert_eq!(queue.pop_due(u64::MAX), None);
        assert!(!queue.is_dead());
        queue.leave();
        queue.leave();
        assert!(queue.is_dead());
        assert_eq!(queues.remove(index), None);
        assert_eq!(queues.count(), 1);
        assert_eq!(
            queues
                .find_or_add(&reactor, Duration::from_secs(7))
                .unwrap(),
            index
        );
    }

    #[test]
    fn a_queue_is_mostly_stale_once_stale_entries_outnumber_live_ones() {
        let mut reactor = Reactor::with_clock(ManualClock::new()).unwrap();
        let mut queues = IdleQueues::default();
        let index = queues
            .find_or_add(&reactor, Duration::from_secs(1))
            .unwrap();
        let id = id(&mut reactor);
        let queue = queues.get_mut(index).unwrap();
        for ticket in 0..200 {
            queue.join(Entry {
                id,
                ticket,
                deadline: u64::from(ticket),
            });
        }
        for _ in 0..100 {
            queue.leave();
        }
        assert!(!queue.mostly_stale(), "100 stale, 100 live");
        queue.leave();
        assert!(queue.mostly_stale(), "101 stale, 99 live");
        let mut kept = queue.take_entries();
        kept.retain(|e| e.ticket >= 101);
        queue.join(Entry {
            id,
            ticket: 999,
            deadline: 500,
        });
        queue.restore(kept);
        assert_eq!(queue.len(), 100);
        assert_eq!(queue.front_deadline(), Some(101));
    }

    #[test]
    fn queues_of_two_reactors_are_apart() {
        let a = Reactor::with_clock(ManualClock::new()).unwrap();
        let b = Reactor::with_clock(ManualClock::new()).unwrap();
        let mut queues = IdleQueues::default();
        let period = Duration::from_secs(1);
        assert_ne!(
            queues.find_or_add(&a, period).unwrap(),
            queues.find_or_add(&b, period).unwrap()
        );
    }
}
