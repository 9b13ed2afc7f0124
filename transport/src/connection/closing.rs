//! What happens after a handler callback returns: failures and aborts acted on,
//! producers paused or stopped, the close grace period, closes and half-closes that
//! are due, and `finish`, the one way a connection ends.

use log::{debug, error};
use reactor::{Reactor, Removed};

use super::core::{Producer, State, WriteHalf};
use super::Connection;
use crate::handler::{EofAction, Handler};
use crate::reason::DisconnectReason;

impl<H: Handler> Connection<H> {
    /// Acts on the state the last callback left: failures, aborts, producer
    /// notifications, interest, and closes that are now due.
    pub(super) fn settle(&mut self, reactor: &mut Reactor) {
        // Each producer notification may write again; a few rounds settle it.
        for _ in 0..4 {
            if let Some(reason) = self.core.ending.take() {
                return self.finish(reactor, *reason);
            }
            match self.core.producer {
                Some(Producer::Push { paused: false })
                    if self.core.out.len() > self.core.high_water() =>
                {
                    self.core.producer = Some(Producer::Push { paused: true });
                    if let Err(msg) = self.call(reactor, |h, t| h.pause_producing(t)) {
                        return self.finish(reactor, DisconnectReason::Panicked(msg));
                    }
                }
                _ => break,
            }
        }
        if !self.core.out.is_empty() {
            return self.arm_close_timer(reactor);
        }
        // The grace period covers a buffer waiting to drain, nothing else.
        self.cancel_close_timer(reactor);
        if self.core.write_half == WriteHalf::Shut && self.core.producer.is_some() {
            // Registered after the writing half was shut: nothing it writes can go.
            if let Err(msg) = self.stop_producer(reactor) {
                return self.finish(reactor, DisconnectReason::Panicked(msg));
            }
            // Act on what `stop_producing` asked for; no producer now, so once.
            return self.settle(reactor);
        }
        if self.core.producer_holds_close() {
            return;
        }
        if self.core.write_half == WriteHalf::ShutdownRequested {
            return self.shut_write_half(reactor);
        }
        if self.core.state == State::Closing {
            self.finish(reactor, DisconnectReason::Done);
        }
    }

    /// Shuts the writing half, the buffer being empty and no pull producer holding
    /// it: a streaming producer still registered is stopped first (what it writes
    /// could no longer go anywhere), then the handler hears `write_connection_lost`.
    fn shut_write_half(&mut self, reactor: &mut Reactor) {
        self.core.write_half = WriteHalf::Shut;
        if let Err(e) = self.core.stream.shutdown_write() {
            return self.finish(reactor, DisconnectReason::from_io(e));
        }
        if self.core.read_closed {
            return self.finish(reactor, DisconnectReason::Done);
        }
        if let Err(msg) = self.stop_producer(reactor) {
            return self.finish(reactor, DisconnectReason::Panicked(msg));
        }
        if let Err(msg) = self.call(reactor, |h, t| h.write_connection_lost(t)) {
            return self.finish(reactor, DisconnectReason::Panicked(msg));
        }
        // Act on what the callback asked for (an abort, a close); the half is
        // `Shut` now, so this does not come back here.
        self.settle(reactor)
    }

    /// Unregisters the producer, if one is registered, and tells it with
    /// `stop_producing` (Twisted's `stopProducing`): the transport will take nothing
    /// more from it. `Err` is the message of a panic in that callback.
    fn stop_producer(&mut self, reactor: &mut Reactor) -> Result<(), String> {
        if self.core.producer.take().is_none() {
            return Ok(());
        }
        self.call(reactor, |h, t| h.stop_producing(t))
    }

    fn cancel_close_timer(&mut self, reactor: &mut Reactor) {
        if let Some(timer) = self
            .core
            .settings
            .as_mut()
            .and_then(|s| s.close_timer.take())
        {
            // Pending: the timer clears this field before it acts.
            let cancelled = timer.cancel(reactor);
            debug_assert!(cancelled.is_ok(), "close timer: {cancelled:?}");
        }
    }

    fn arm_close_timer(&mut self, reactor: &mut Reactor) {
        let (Some(settings), id, State::Closing) =
            (self.core.settings.as_mut(), self.core.id, self.core.state)
        else {
            return;
        };
        let (Some(timeout), None) = (settings.close_timeout, settings.close_timer) else {
            return;
        };
        settings.close_timer = Some(reactor.call_later(timeout, move |reactor| {
            reactor.with_descriptor::<Self, _>(id, |conn, reactor| {
                conn.core.settings_mut().close_timer = None;
                debug!("connection {id}: close grace period expired, aborting");
                conn.finish(reactor, DisconnectReason::TimedOut);
            });
        }));
    }

    /// Ends the connection: leaves the reactor and tells the handler, exactly once.
    pub(super) fn finish(&mut self, reactor: &mut Reactor, reason: DisconnectReason) {
        if self.core.state == State::Closed {
            return;
        }
        self.core.state = State::Closed;
        self.core.ending = None;
        self.cancel_close_timer(reactor);
        self.core.prepare_close(&reason);
        let id = self.core.id;
        if reactor.contains(id) {
            // We are lifted (dispatch or with_descriptor): dropped, and so closed, as
            // soon as the current call returns. (From the reactor's own
            // connection_lost the id is already stale.)
            let removed = reactor.remove_descriptor(id);
            debug_assert!(matches!(removed, Ok(Removed::WhileDispatched)));
        }
        debug!(
            "connection {:?} to {} lost: {reason}",
            self.core.id, self.core.peer
        );
        // Twisted's `FileDescriptor.connectionLost`: the producer hears it first.
        if let Err(msg) = self.stop_producer(reactor) {
            error!("connection {id:?}: stop_producing panicked: {msg}");
        }
        if let Err(msg) = self.call(reactor, |h, t| h.connection_lost(t, &reason)) {
            error!(
                "connection {:?}: connection_lost panicked: {msg}",
                self.core.id
            );
        }
        self.core.check_invariants();
    }

    pub(super) fn on_eof(&mut self, reactor: &mut Reactor) {
        self.core.read_closed = true;
        self.core.interest(reactor, Reactor::remove_reader);
        if self.core.write_half == WriteHalf::Shut {
            return self.finish(reactor, DisconnectReason::Done);
        }
        if self.core.state != State::Open {
            return self.settle(reactor);
        }
        match self.invoke(reactor, |h, t| h.read_connection_lost(t)) {
            Some(EofAction::KeepWriting) | None => {}
            Some(EofAction::Close) => {
                if self.core.state == State::Open {
                    self.core.state = State::Closing;
                }
                self.settle(reactor);
            }
        }
    }
}
