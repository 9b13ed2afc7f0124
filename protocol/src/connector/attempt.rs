//! One connection attempt, step by step: resolving, trying each address, the
//! connection made and later lost, a failure reported; each step checks it still
//! belongs to the current attempt.

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};

use log::{debug, error};
use reactor::{panic_message, DescriptorId, Reactor};
use transport::{
    start_connect_tcp, start_connect_unix, Address, Connecting, Connection, DisconnectReason,
    Stream,
};

use super::{Connector, Destination, Phase};
use crate::error::ConnectError;
use crate::factory::ClientFactory;
use crate::handler::ProtocolHandler;
use crate::resolver;

impl<F: ClientFactory> Connector<F> {
    pub(super) fn is_current(&self, attempt: u64) -> bool {
        self.state.borrow().attempt == attempt
    }

    pub(super) fn begin(&self, reactor: &mut Reactor, attempt: u64) {
        if !self.is_current(attempt) || self.state.borrow().phase != Phase::Starting {
            return;
        }
        // The attempt is armed before user code runs (as Twisted's `connect`), so a
        // panicking `started_connecting` cannot leave it half begun.
        self.start_attempt(reactor, attempt);
        let connector = self.clone();
        self.factory.call(reactor, move |factory, reactor| {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                factory.started_connecting(reactor, &connector)
            }));
            if let Err(payload) = outcome {
                error!(
                    "started_connecting panicked: {}; the attempt goes on",
                    panic_message(payload.as_ref())
                );
            }
        });
    }

    /// Begins resolving (TCP) or connecting (Unix). A failure found at once is
    /// reported on the next turn, after `started_connecting`.
    pub(super) fn start_attempt(&self, reactor: &mut Reactor, attempt: u64) {
        let destination = self.state.borrow().destination.clone();
        match destination {
            Destination::Tcp { host, port } => {
                let connector = self.clone();
                let name = host.clone();
                let lookup = resolver::resolve(reactor, &name, port, move |reactor, result| {
                    if !connector.is_current(attempt) {
                        return;
                    }
                    match result {
                        Ok(addresses) => connector.try_tcp(reactor, attempt, addresses, 0),
                        Err(source) => {
                            connector.fail(reactor, ConnectError::Lookup { host, source })
                        }
                    }
                });
                self.state.borrow_mut().phase = Phase::Resolving(lookup);
            }
            Destination::Unix(path) => match start_connect_unix(&path) {
                Ok(stream) => self.watch(
                    reactor,
                    attempt,
                    Box::new(stream),
                    Address::Unix(Some(path)),
                    Vec::new(),
                    0,
                ),
                Err(e) => {
                    let reason = ConnectError::Failed(DisconnectReason::from_io(e));
                    self.fail_soon(reactor, attempt, reason);
                }
            },
            Destination::Memory => {
                // Connects on the next turn, after `started_connecting`, as a socket
                // would; a second attempt has no peer left and is refused.
                let connector = self.clone();
                reactor.call_soon(move |reactor| {
                    if !connector.is_current(attempt) {
                        return;
                    }
                    let stream = {
                        let mut state = connector.state.borrow_mut();
                        state.memory.as_mut().and_then(|m| m.stream.take())
                    };
                    match stream {
                        Some(stream) => connector.connected(reactor, attempt, stream),
                        None => {
                            let reason = ConnectError::Failed(DisconnectReason::Refused);
                            connector.fail(reactor, reason);
                        }
                    }
                });
            }
        }
    }

    /// Fails the attempt on the next turn, if it is still current then.
    pub(super) fn fail_soon(&self, reactor: &mut Reactor, attempt: u64, reason: ConnectError) {
        let connector = self.clone();
        reactor.call_soon(move |reactor| {
            if connector.is_current(attempt) {
                connector.fail(reactor, reason);
            }
        });
    }

    /// Tries `addresses[index..]` in turn.
    pub(super) fn try_tcp(
        &self,
        reactor: &mut Reactor,
        attempt: u64,
        addresses: Vec<SocketAddr>,
        index: usize,
    ) {
        let bind = self.state.borrow().options.bind_address;
        let mut last = None;
        for (i, address) in addresses.iter().enumerate().skip(index) {
            match start_connect_tcp(*address, bind) {
                Ok(stream) => {
                    let target = Address::Tcp(*address);
                    return self.watch(
                        reactor,
                        attempt,
                        Box::new(stream),
                        target,
                        addresses,
                        i + 1,
                    );
                }
                Err(e) => {
                    debug!("connect to {address} failed at once: {e}");
                    last = Some(DisconnectReason::from_io(e));
                }
            }
        }
        let reason = last.unwrap_or(DisconnectReason::Refused);
        self.fail(reactor, ConnectError::Failed(reason));
    }

    pub(super) fn watch(
        &self,
        reactor: &mut Reactor,
        attempt: u64,
        stream: Box<dyn Stream>,
        target: Address,
        addresses: Vec<SocketAddr>,
        next: usize,
    ) {
        let connector = self.clone();
        let on_done = Box::new(
            move |reactor: &mut Reactor, result: Result<Box<dyn Stream>, DisconnectReason>| {
                if !connector.is_current(attempt) {
                    return;
                }
                match result {
                    Ok(stream) => connector.connected(reactor, attempt, stream),
                    Err(DisconnectReason::Aborted) => {
                        connector.fail(reactor, ConnectError::Cancelled)
                    }
                    Err(reason @ DisconnectReason::TimedOut) => {
                        connector.fail(reactor, ConnectError::Failed(reason))
                    }
                    Err(_) if next < addresses.len() => {
                        connector.try_tcp(reactor, attempt, addresses, next)
                    }
                    Err(reason) => connector.fail(reactor, ConnectError::Failed(reason)),
                }
            },
        );
        // No timeout of its own: the attempt's one timer covers every address.
        match Connecting::start(reactor, stream, target, None, on_done) {
            Ok(id) => self.state.borrow_mut().phase = Phase::Connecting(id),
            Err(e) => self.fail_soon(reactor, attempt, ConnectError::Setup(e)),
        }
    }

    pub(super) fn connected(&self, reactor: &mut Reactor, attempt: u64, stream: Box<dyn Stream>) {
        self.state.borrow_mut().phase = Phase::Made;
        let peer = stream.peer_address().unwrap_or(Address::Unix(None));
        // Nothing of user code is on the stack here (a connect completes from the
        // reactor's dispatch), so the factory is free.
        let built = panic::catch_unwind(AssertUnwindSafe(|| match self.factory.try_borrow_mut() {
            Some(mut factory) => factory.build_client_protocol(self, &peer),
            None => {
                debug_assert!(false, "the factory is borrowed across reactor turns");
                None
            }
        }));
        if !self.is_current(attempt) {
            return; // stopped from build_client_protocol: the stream closes as it drops
        }
        let protocol = match built {
            Ok(Some(protocol)) => protocol,
            Ok(None) => return self.fail(reactor, ConnectError::Refused),
            Err(payload) => {
                error!(
                    "build_protocol panicked for {peer}: {}",
                    panic_message(payload.as_ref())
                );
                return self.fail(reactor, ConnectError::Refused);
            }
        };
        // The connector counts as connected before `connection_made` runs (as
        // Twisted sets `state = "connected"` before `makeConnection`), so whatever the
        // protocol asks of it from there acts on the connection.
        let made = self.clone();
        let lost = self.clone();
        let handler = ProtocolHandler::new(protocol, self.factory.clone())
            .on_made(Box::new(move |reactor, id| made.made(reactor, attempt, id)))
            .on_lost(Box::new(move |reactor, reason| lost.lost(reactor, reason)));
        if let Err(e) = Connection::start(reactor, stream, peer, handler) {
            self.fail(reactor, ConnectError::Setup(e));
        }
    }

    /// The connection is made and has its id; its protocol has not heard yet.
    pub(super) fn made(&self, reactor: &mut Reactor, attempt: u64, id: DescriptorId) {
        {
            let mut state = self.state.borrow_mut();
            debug_assert_eq!(
                state.attempt, attempt,
                "nothing runs between build and made"
            );
            debug_assert_eq!(state.phase, Phase::Made);
            if state.attempt != attempt || state.phase != Phase::Made {
                return;
            }
            state.phase = Phase::Connected(id);
            if let Some(retry) = state.retry.as_mut() {
                retry.connected();
            }
            if let Some(memory) = state.memory.as_mut() {
                memory.id = Some(id);
            }
        }
        self.disarm_timeout(reactor);
    }

    pub(super) fn lost(&self, reactor: &mut Reactor, reason: &DisconnectReason) {
        {
            let mut state = self.state.borrow_mut();
            state.phase = Phase::Disconnected;
            if let Some(memory) = state.memory.as_ref() {
                *memory.lost.borrow_mut() = Some(crate::testing::clone_reason(reason));
            }
        }
        let connector = self.clone();
        let reason = crate::testing::clone_reason(reason);
        self.factory.call(reactor, move |factory, reactor| {
            factory.client_connection_lost(reactor, &connector, &reason);
            // After the factory heard, so a `stop_trying` there holds.
            crate::reconnecting::retry_later(reactor, &connector);
        });
        self.release_if_idle(reactor);
    }

    pub(super) fn fail(&self, reactor: &mut Reactor, reason: ConnectError) {
        self.state.borrow_mut().phase = Phase::Disconnected;
        self.disarm_timeout(reactor);
        self.report_failure(reactor, reason);
    }

    /// Tells the factory an attempt failed, and lets go of it unless it connected
    /// again.
    pub(super) fn report_failure(&self, reactor: &mut Reactor, reason: ConnectError) {
        debug!(
            "connect to {} failed: {reason}",
            self.state.borrow().destination
        );
        let connector = self.clone();
        self.factory.call(reactor, move |factory, reactor| {
            factory.client_connection_failed(reactor, &connector, &reason);
            crate::reconnecting::retry_later(reactor, &connector);
        });
        self.release_if_idle(reactor);
    }

    /// After a failure or loss: unless the factory connected again, it no longer uses
    /// the factory (Twisted calls `doStop` then).
    pub(super) fn release_if_idle(&self, reactor: &mut Reactor) {
        let release = {
            let mut state = self.state.borrow_mut();
            let release = state.phase == Phase::Disconnected && state.factory_started;
            if release {
                state.factory_started = false;
            }
            release
        };
        if release {
            self.factory.stop_use(reactor);
        }
    }
}
