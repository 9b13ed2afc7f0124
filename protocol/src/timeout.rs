//! The idle timeout every protocol has (Twisted's `TimeoutMixin`): each connection's
//! part here, kept beside the protocol by its handler; the queues that time it, one
//! per factory, period and reactor, in `idle_queue.rs`.

use reactor::Reactor;
use transport::{Connection, Transport};

use crate::handler::ProtocolHandler;
use crate::idle_queue::{nanos, Entry};
use crate::protocol::{with_protocol, Protocol};
use crate::shared::Shared;

/// One connection's idle timeout: 16 bytes inline, nothing else per connection but its
/// entry in its period's queue. Progress (bytes received, bytes the peer acknowledged)
/// is read when the entry comes to the front, so neither reads nor writes pay anything
/// for it: a long download whose reader keeps reading does not time out, whatever the
/// kernel buffers, as long as the reader reopens its receive window within a period
/// (the sender sees a reader's progress only then: Linux reopens a closed window once
/// an MSS, or a sixteenth of the receive buffer, is free); a stalled one is timed out
/// between one and two periods after its last progress.
#[derive(Debug, Default)]
pub(crate) struct IdleTimer {
    /// Progress (bytes received plus bytes acknowledged) when last checked, or
    /// [`RESTARTED`].
    seen: u64,
    /// Matches the ticket of this connection's live entry; moves on whenever the
    /// connection leaves its queue, so the entry it leaves behind is stale.
    ticket: u32,
    /// Index + 1 of the queue holding this connection's live entry; 0 when the timeout
    /// is off (never set, turned off, or expired).
    queue: u32,
}

/// `seen` after `reset_timeout` (or a second `set_timeout` of the same period): the
/// next check puts the connection a whole period from then, whatever the counters say.
const RESTARTED: u64 = u64::MAX;

/// What a check of a due entry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The connection left the queue since: drop the entry.
    Stale,
    /// Progress, or a restart: back in the queue with this deadline.
    Requeue(u64),
    /// No progress for a whole period: timed out.
    Expired,
}

/// Progress the peer made: bytes it sent us and bytes it acknowledged. Bytes merely
/// handed to the kernel do not count, so megabytes of socket buffer can neither hide a
/// reader that keeps reading slowly nor keep alive one that never reads.
fn progress(transport: &Transport<'_>) -> u64 {
    transport.bytes_received() + transport.bytes_acked()
}

impl IdleTimer {
    /// Twisted's `setTimeout`: `Some(period)` (re)starts it, `None` turns it off.
    pub(crate) fn set<P: Protocol>(
        &mut self,
        transport: &mut Transport<'_>,
        factory: &Shared<P::Factory>,
        period: Option<std::time::Duration>,
    ) {
        let Some(period) = period else {
            self.leave::<P>(transport.reactor(), factory);
            return;
        };
        let found = factory
            .idle_queues()
            .find_or_add(transport.reactor(), period);
        let Some(index) = found else {
            log::error!(
                "connection {}: no room for another idle queue",
                transport.id()
            );
            return;
        };
        if self.queue == index + 1 {
            self.seen = RESTARTED;
            return;
        }
        self.leave::<P>(transport.reactor(), factory);
        self.queue = index + 1;
        self.seen = progress(transport);
        let now = nanos(transport.reactor().now());
        let entry = Entry {
            id: transport.id(),
            ticket: self.ticket,
            deadline: now.saturating_add(nanos(period)),
        };
        let mut queues = factory.idle_queues();
        if let Some(queue) = queues.get_mut(index) {
            queue.join(entry);
            if queue.timer.is_none() && queue.len() == 1 {
                queue.timer = Some(arm::<P>(
                    transport.reactor(),
                    factory,
                    index,
                    entry.deadline,
                ));
            }
        }
    }

    /// Twisted's `resetTimeout`: the period starts again now.
    pub(crate) fn reset(&mut self) {
        if self.queue != 0 {
            self.seen = RESTARTED;
        }
    }

    /// Leaves the queue, if in one: the timeout is off.
    pub(crate) fn leave<P: Protocol>(
        &mut self,
        reactor: &mut Reactor,
        factory: &Shared<P::Factory>,
    ) {
        let Some(index) = self.queue.checked_sub(1) else {
            return;
        };
        self.queue = 0;
        self.ticket = self.ticket.wrapping_add(1);
        let mut queues = factory.idle_queues();
        let Some(queue) = queues.get_mut(index) else {
            debug_assert!(false, "a connection's idle queue is gone");
            return;
        };
        queue.leave();
        if queue.is_dead() {
            if queue.timer.is_some() {
                // Not while its timer runs (it has no timer then): it removes the queue.
                let timer = queues.remove(index);
                drop(queues);
                if let Some(timer) = timer {
                    let _ = timer.cancel(reactor);
                }
            }
        } else if queue.mostly_stale() && !queue.compacting && queue.timer.is_some() {
            queue.compacting = true;
            let factory = factory.clone();
            reactor.call_soon(move |reactor| compact::<P>(reactor, &factory, index));
        }
    }

    /// Whether this connection's live entry is `entry` in queue `index`.
    fn holds(&self, index: u32, entry: &Entry) -> bool {
        self.queue == index + 1 && self.ticket == entry.ticket
    }

    /// A due entry of queue `index` came to the front at `now`.
    fn check(
        &mut self,
        transport: &Transport<'_>,
        index: u32,
        entry: &Entry,
        period: u64,
        now: u64,
    ) -> Verdict {
        if !self.holds(index, entry) {
            return Verdict::Stale;
        }
        let progress = progress(transport);
        if self.seen == RESTARTED {
            self.seen = progress;
            return Verdict::Requeue(now.saturating_add(period));
        }
        if progress != self.seen {
            // A period after the last check: so one to two periods after progress.
            self.seen = progress;
            return Verdict::Requeue(entry.deadline.saturating_add(period));
        }
        Verdict::Expired
    }
}

/// Arms queue `index`'s timer for `deadline`.
fn arm<P: Protocol>(
    reactor: &mut Reactor,
    factory: &Shared<P::Factory>,
    index: u32,
    deadline: u64,
) -> reactor::DelayedCall {
    let delay = deadline.saturating_sub(nanos(reactor.now()));
    let factory = factory.clone();
    reactor.call_later(std::time::Duration::from_nanos(delay), move |reactor| {
        fire::<P>(reactor, &factory, index);
    })
}

/// Queue `index`'s timer: checks every entry due now, in order, then arms the timer
/// for the new front (or removes the queue if no connection is left in it).
fn fire<P: Protocol>(reactor: &mut Reactor, factory: &Shared<P::Factory>, index: u32) {
    let now = nanos(reactor.now());
    let (period, mut budget) = match factory.idle_queues().get_mut(index) {
        Some(queue) => {
            queue.timer = None;
            (queue.period_nanos(), queue.len())
        }
        None => return,
    };
    // Each entry at most once per firing, even a requeued one already due again.
    while budget > 0 {
        budget -= 1;
        let Some(entry) = factory
            .idle_queues()
            .get_mut(index)
            .and_then(|q| q.pop_due(now))
        else {
            break;
        };
        let verdict = with_protocol::<P, _>(reactor, entry.id, |protocol, cx| {
            let verdict = cx.idle_check(index, &entry, period, now);
            if verdict == Verdict::Expired {
                protocol.timeout_connection(cx);
            }
            verdict
        });
        if let Some(Verdict::Requeue(deadline)) = verdict {
            if let Some(queue) = factory.idle_queues().get_mut(index) {
                queue.push(Entry { deadline, ..entry });
            }
        }
    }
    rearm::<P>(reactor, factory, index);
}

/// After a firing or a rebuild: removes queue `index` if no connection is left in it,
/// else makes sure its timer is armed for its front.
fn rearm<P: Protocol>(reactor: &mut Reactor, factory: &Shared<P::Factory>, index: u32) {
    let mut queues = factory.idle_queues();
    let Some(queue) = queues.get_mut(index) else {
        return;
    };
    if queue.is_dead() {
        let timer = queues.remove(index);
        drop(queues);
        if let Some(timer) = timer {
            let _ = timer.cancel(reactor);
        }
        return;
    }
    if queue.timer.is_none() {
        if let Some(front) = queue.front_deadline() {
            queue.timer = Some(arm::<P>(reactor, factory, index, front));
        }
    }
    // Connections that left while the queue fired (its timer was out then) were not
    // counted towards a rebuild by `leave`: count them now.
    if queue.mostly_stale() && !queue.compacting {
        queue.compacting = true;
        let factory = factory.clone();
        reactor.call_soon(move |reactor| compact::<P>(reactor, &factory, index));
    }
}

/// Rebuilds queue `index` without its stale entries (queued by [`IdleTimer::leave`]
/// once they outnumber the live ones), so their memory is given back.
fn compact<P: Protocol>(reactor: &mut Reactor, factory: &Shared<P::Factory>, index: u32) {
    let Some(mut entries) = factory.idle_queues().get_mut(index).map(|q| {
        q.compacting = false;
        q.take_entries()
    }) else {
        return;
    };
    entries.retain(|entry| {
        reactor
            .with_descriptor::<Connection<ProtocolHandler<P>>, _>(entry.id, |conn, _| {
                conn.handler().idle().holds(index, entry)
            })
            .unwrap_or(false)
    });
    if let Some(queue) = factory.idle_queues().get_mut(index) {
        queue.restore(entries);
    }
    rearm::<P>(reactor, factory, index);
}

impl<P: Protocol> crate::Context<'_, P> {
    /// Checks this connection's due entry of queue `index` (see [`IdleTimer::check`]);
    /// an expired timeout is off before `timeout_connection` runs, as in Twisted.
    fn idle_check(&mut self, index: u32, entry: &Entry, period: u64, now: u64) -> Verdict {
        let (transport, idle, factory) = self.idle_parts();
        let verdict = idle.check(transport, index, entry, period, now);
        if verdict == Verdict::Expired {
            idle.leave::<P>(transport.reactor(), factory);
        }
        verdict
    }
}

#[cfg(test)]
mod tests;
