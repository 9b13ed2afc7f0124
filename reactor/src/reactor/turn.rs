//! One turn of the loop: register what was inserted, poll, dispatch the events and
//! the readiness carried over, then run due timers, calls from other threads and
//! `call_soon` calls, compact the slot table if a crowd left, and (in debug builds)
//! check the invariants.

use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use log::{error, info};
use mio::Events;

use super::{panic_message, Reactor, RunState, SIGNAL_TOKEN, WAKER_TOKEN};
use crate::clock::duration_to_nanos;
use crate::descriptor::DescriptorId;
use crate::error::ReactorError;
use crate::handle::ThreadCall;
use crate::Callback;

impl Reactor {
    /// One turn: poll, dispatch I/O, serve remembered readiness, run due calls.
    pub(super) fn turn(&mut self, max_wait: Option<Duration>) -> Result<(), ReactorError> {
        self.dispatching = true;
        let result = self.turn_inner(max_wait);
        self.dispatching = false;
        result
    }

    pub(super) fn poll_timeout(&mut self, max_wait: Option<Duration>) -> Option<Duration> {
        if !self.soon.is_empty()
            || !self.ready_queue.is_empty()
            || self.local.has_calls()
            || self.state == RunState::Stopping
        {
            return Some(Duration::ZERO);
        }
        let until_timer = self.timers.next_deadline().and_then(|deadline| {
            let now = duration_to_nanos(self.clock.now());
            let wait = Duration::from_nanos(deadline.saturating_sub(now));
            // A manual clock moves only when told: never sleep waiting for it.
            (!self.clock.is_manual() || wait.is_zero()).then_some(wait)
        });
        match (until_timer, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn turn_inner(&mut self, max_wait: Option<Duration>) -> Result<(), ReactorError> {
        self.register_pending();
        let timeout = self.poll_timeout(max_wait);
        let mut events = mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = match self.poll.poll(&mut events, timeout) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            Err(e) => Err(ReactorError::Io(e)),
        };
        // Readiness remembered from earlier turns is served after this poll's events.
        // Whatever gets queued from here on (a descriptor answering `Ready`, an
        // `add_reader` finding remembered readiness) waits for the next turn, so a
        // descriptor is called at most once per direction per turn.
        let mut carried = Vec::new();
        if polled.is_ok() {
            carried = mem::take(&mut self.ready_queue);
            for event in events.iter() {
                match event.token() {
                    WAKER_TOKEN => {}
                    SIGNAL_TOKEN => self.read_signals(),
                    token => {
                        let id = DescriptorId::from_token(token, self.identity);
                        self.on_event(id, event);
                    }
                }
            }
        }
        self.events = events;
        polled?;
        self.serve_ready_queue(carried);
        self.run_due_calls();
        self.run_thread_calls();
        self.run_soon_calls();
        self.compact_if_emptied();
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(())
    }

    pub(super) fn read_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let received: Vec<i32> = signals.pending().collect();
        for signal in received {
            info!("reactor: received signal {signal}, stopping");
            self.stop();
        }
    }

    pub(super) fn run_callback(&mut self, f: Callback, what: &str) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(self))) {
            error!("{what} panicked: {}", panic_message(payload.as_ref()));
        }
    }

    pub(super) fn run_due_calls(&mut self) {
        if self.timers.len() == 0 {
            return;
        }
        let now = duration_to_nanos(self.clock.now());
        let limit = self.timers.next_seq();
        while let Some(f) = self.timers.pop_due(now, limit) {
            self.run_callback(f, "delayed call");
        }
        self.timers.end_step();
    }

    pub(super) fn run_thread_calls(&mut self) {
        // Only the calls queued by now, as Twisted does: one that queues another, or a
        // thread sending without pause, must not keep the loop in this turn. Later calls
        // run next turn; their senders have woken the poller.
        let calls: Vec<ThreadCall> = self.thread_calls.try_iter().collect();
        for f in calls {
            self.run_callback(f, "call from thread");
        }
    }

    pub(super) fn run_soon_calls(&mut self) {
        self.local.drain_into(&mut self.soon);
        for _ in 0..self.soon.len() {
            match self.soon.pop_front() {
                Some(f) => self.run_callback(f, "soon call"),
                None => break,
            }
        }
    }
}
