//! The idle timeout every protocol has (Twisted's `TimeoutMixin`), kept beside the
//! protocol by its handler.

use std::time::Duration;

use reactor::DelayedCall;
use transport::Transport;

use crate::protocol::{with_protocol, Protocol};

/// State of one connection's idle timeout. Progress (bytes received, bytes the peer
/// acknowledged) is read when the timer fires, so neither reads nor writes pay anything
/// for it: a long download whose reader keeps reading does not time out, whatever the
/// kernel buffers, as long as the reader reopens its receive window within a period
/// (the sender sees a reader's progress only then: Linux reopens a closed window once
/// an MSS, or a sixteenth of the receive buffer, is free); a stalled one is closed
/// between one and two periods after its last progress.
///
/// A connection that never sets a timeout holds one null pointer for it.
#[derive(Debug, Default)]
pub(crate) struct IdleTimer {
    state: Option<Box<IdleState>>,
}

#[derive(Debug, Default)]
struct IdleState {
    period: Option<Duration>,
    timer: Option<DelayedCall>,
    /// Progress (bytes received plus bytes acknowledged) when the timer was armed.
    seen: u64,
    /// When the armed timer is due, on the reactor's clock.
    deadline: Duration,
}

/// Progress the peer made: bytes it sent us and bytes it acknowledged. Bytes merely
/// handed to the kernel do not count, so megabytes of socket buffer can neither hide a
/// reader that keeps reading slowly nor keep alive one that never reads.
fn progress(transport: &Transport<'_>) -> u64 {
    transport.bytes_received() + transport.bytes_acked()
}

impl IdleTimer {
    pub(crate) fn set<P: Protocol>(
        &mut self,
        transport: &mut Transport<'_>,
        period: Option<Duration>,
    ) {
        if period.is_none() && self.state.is_none() {
            return;
        }
        let state = self.state.get_or_insert_with(Box::default);
        state.cancel(transport);
        state.period = period;
        state.arm::<P>(transport);
    }

    pub(crate) fn reset<P: Protocol>(&mut self, transport: &mut Transport<'_>) {
        if let Some(state) = self.state.as_mut().filter(|s| s.period.is_some()) {
            state.cancel(transport);
            state.arm::<P>(transport);
        }
    }

    pub(crate) fn cancel(&mut self, transport: &mut Transport<'_>) {
        if let Some(state) = self.state.as_mut() {
            state.cancel(transport);
        }
    }

    /// The timer fired: whether the connection really made no progress (if bytes
    /// moved, the timer is re-armed instead).
    pub(crate) fn expired<P: Protocol>(&mut self, transport: &mut Transport<'_>) -> bool {
        self.state
            .as_mut()
            .is_some_and(|state| state.expired::<P>(transport))
    }
}

impl IdleState {
    fn cancel(&mut self, transport: &mut Transport<'_>) {
        if let Some(timer) = self.timer.take() {
            let _ = timer.cancel(transport.reactor());
        }
    }

    /// Arms the timer one period from now.
    fn arm<P: Protocol>(&mut self, transport: &mut Transport<'_>) {
        let now = transport.reactor().now();
        self.arm_from::<P>(transport, now);
    }

    /// Arms the timer one period after `start`.
    fn arm_from<P: Protocol>(&mut self, transport: &mut Transport<'_>, start: Duration) {
        let Some(period) = self.period else {
            return;
        };
        let id = transport.id();
        self.seen = progress(transport);
        self.deadline = start + period;
        let delay = self.deadline.saturating_sub(transport.reactor().now());
        self.timer = Some(transport.reactor().call_later(delay, move |reactor| {
            with_protocol::<P, _>(reactor, id, |protocol, cx| {
                if cx.idle_expired() {
                    protocol.timeout_connection(cx);
                }
            });
        }));
    }

    /// The timer fired: if bytes moved meanwhile, re-arms it one period after its last
    /// deadline and answers `false`. So a connection is closed after between one and
    /// two periods without progress.
    fn expired<P: Protocol>(&mut self, transport: &mut Transport<'_>) -> bool {
        self.timer = None;
        if progress(transport) != self.seen {
            let last = self.deadline;
            self.arm_from::<P>(transport, last);
            return false;
        }
        true
    }
}

impl<P: Protocol> crate::Context<'_, P> {
    /// Called by the idle timer: whether the connection really made no progress.
    pub(crate) fn idle_expired(&mut self) -> bool {
        let (transport, idle) = self.parts();
        idle.expired::<P>(transport)
    }
}
