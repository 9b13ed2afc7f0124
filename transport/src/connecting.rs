//! [`Connecting`]: a connect in progress, as a reactor write descriptor (the
//! connecting half of Twisted's `tcp.Client` / `BaseConnector`).

use std::io;
use std::time::Duration;

use log::trace;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use reactor::{DelayedCall, Descriptor, DescriptorId, IoStatus, LostReason, Reactor, Removed};

use crate::address::Address;
use crate::error::TransportError;
use crate::reason::DisconnectReason;
use crate::stream::Stream;

/// What a connect attempt reports, once: the connected stream, or why there is none.
pub type OnConnect = Box<dyn FnOnce(&mut Reactor, Result<Box<dyn Stream>, DisconnectReason>)>;

/// Stands in for the socket once it has been handed over.
#[derive(Debug)]
struct Detached;

impl Source for Detached {
    fn register(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }
    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }
    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}

/// A socket whose non-blocking connect has been started: when it becomes writable the
/// outcome is read with `SO_ERROR`, and the stream (or the reason it failed: refused,
/// timed out...) is handed to the callback, exactly once.
pub struct Connecting {
    stream: Option<Box<dyn Stream>>,
    detached: Detached,
    target: Address,
    on_done: Option<OnConnect>,
    timer: Option<DelayedCall>,
}

impl std::fmt::Debug for Connecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Connecting {
    /// Watches `stream`, whose connect to `target` has been started, and calls
    /// `on_done` when it completes, fails, or `timeout` passes
    /// ([`DisconnectReason::TimedOut`]).
    ///
    /// # Errors
    ///
    /// [`TransportError::Reactor`] if the socket cannot be registered; `on_done` is
    /// then never called.
    pub fn start(
        reactor: &mut Reactor,
        stream: Box<dyn Stream>,
        target: Address,
        timeout: Option<Duration>,
        on_done: OnConnect,
    ) -> Result<DescriptorId, TransportError> {
        let connecting = Connecting {
            stream: Some(stream),
            detached: Detached,
            target,
            on_done: Some(on_done),
            timer: None,
        };
        let id = reactor.insert(Box::new(connecting))?;
        reactor.add_writer(id)?;
        reactor.add_reader(id)?;
        if let Some(timeout) = timeout {
            let timer = reactor.call_later(timeout, move |reactor| {
                reactor.with_descriptor::<Connecting, _>(id, |c, reactor| {
                    c.timer = None;
                    c.fail(reactor, id, DisconnectReason::TimedOut);
                });
            });
            reactor.with_descriptor::<Connecting, _>(id, |c, _| c.timer = Some(timer));
        }
        Ok(id)
    }

    /// Abandons the attempt (Twisted's `stopConnecting`): the socket is closed and the
    /// callback told [`DisconnectReason::Aborted`]. Returns whether there was an
    /// attempt to abandon.
    pub fn cancel(reactor: &mut Reactor, id: DescriptorId) -> bool {
        reactor
            .with_descriptor::<Connecting, _>(id, |c, reactor| {
                c.fail(reactor, id, DisconnectReason::Aborted)
            })
            .is_some()
    }

    /// Where it is connecting to.
    pub fn target(&self) -> &Address {
        &self.target
    }

    fn fail(&mut self, reactor: &mut Reactor, id: DescriptorId, reason: DisconnectReason) {
        self.finish(reactor, id, Err(reason));
    }

    fn finish(
        &mut self,
        reactor: &mut Reactor,
        id: DescriptorId,
        outcome: Result<(), DisconnectReason>,
    ) {
        let Some(on_done) = self.on_done.take() else {
            return;
        };
        if let Some(timer) = self.timer.take() {
            // Pending: the timer clears `self.timer` before it acts.
            let cancelled = timer.cancel(reactor);
            debug_assert!(cancelled.is_ok(), "connect timer: {cancelled:?}");
        }
        if reactor.contains(id) {
            // Lifted (dispatched, or lent by the timer or `cancel`): dropped when the
            // current call returns. (From `connection_lost` the id is already stale.)
            let removed = reactor.remove_descriptor(id);
            debug_assert!(matches!(removed, Ok(Removed::WhileDispatched)));
        }
        let result = match outcome {
            // Handed over still registered with the poller: the reactor moves the
            // registration to the connection's id when it registers that.
            Ok(()) => Ok(self
                .stream
                .take()
                .expect("stream present until handed over")),
            Err(reason) => Err(reason),
        };
        trace!(
            "connect to {} finished: {:?}",
            self.target,
            result.as_ref().map(|_| ())
        );
        on_done(reactor, result);
    }

    /// Reads how the connect went; `None` while it is still in progress.
    fn outcome(&self) -> Option<Result<(), DisconnectReason>> {
        let stream = self.stream.as_ref()?;
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return Some(Err(DisconnectReason::from_io(e))),
            Ok(None) => {}
        }
        match stream.peer_address() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) => Some(Err(DisconnectReason::from_io(e))),
        }
    }

    fn check(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        if let Some(outcome) = self.outcome() {
            self.finish(reactor, id, outcome);
        }
        Ok(IoStatus::WouldBlock)
    }
}

impl Descriptor for Connecting {
    fn source(&mut self) -> &mut dyn Source {
        match self.stream.as_mut() {
            Some(stream) => stream.as_mut(),
            None => &mut self.detached,
        }
    }

    fn do_read(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        self.check(reactor, id)
    }

    fn do_write(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        self.check(reactor, id)
    }

    fn connection_lost(&mut self, reactor: &mut Reactor, id: DescriptorId, reason: LostReason) {
        self.fail(reactor, id, DisconnectReason::from(reason));
    }

    fn log_prefix(&self) -> &str {
        "connecting"
    }
}
