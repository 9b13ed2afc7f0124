//! The connection's state below the handler, and what can be read off it.

use std::time::Duration;

use reactor::{DelayedCall, DescriptorId, Reactor, ReactorError};

use super::{DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};
use crate::address::Address;
use crate::reason::DisconnectReason;
use crate::stream::{HeldStream, Stream};
use crate::write_buffer::WriteBuffer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Open,
    /// `lose_connection` was called: flushing, then closing.
    Closing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteHalf {
    Open,
    /// `lose_write_connection` was called: flushing, then `shutdown(Write)`.
    ShutdownRequested,
    Shut,
}

/// The registered producer: the handler, in one of Twisted's two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Producer {
    /// `IPushProducer`: writes on its own, paused and resumed at the water marks.
    Push { paused: bool },
    /// `IPullProducer`: writes when asked, once per drained buffer.
    Pull,
}

/// The connection's state below the handler: the stream, its buffer and its flags.
pub(super) struct Core {
    pub(super) stream: HeldStream,
    /// Its id in the reactor, where it stays until `finish` (which marks it `Closed`
    /// first): while not `Closed`, the reactor holds it under this id.
    pub(super) id: DescriptorId,
    /// This end's address, read from the socket the first time it is asked for.
    pub(super) host: std::cell::OnceCell<Box<Address>>,
    pub(super) peer: Address,
    pub(super) out: WriteBuffer,
    /// Flow-control and close settings; `None` (the defaults) costs one pointer.
    pub(super) settings: Option<Box<Settings>>,
    pub(super) state: State,
    pub(super) write_half: WriteHalf,
    pub(super) read_closed: bool,
    pub(super) reading_paused: bool,
    /// Why the connection must end as soon as the current callback returns: an
    /// abort asked for, or a failure met inside a callback (a direct write that
    /// broke). Set through [`Core::end`]; boxed, as it is set at most once in a
    /// connection's life (a pointer inline, not 24 bytes).
    pub(super) ending: Option<Box<DisconnectReason>>,
    pub(super) producer: Option<Producer>,
    pub(super) bytes_received: u64,
    pub(super) bytes_sent: u64,
    /// A write (or `send_file`) met `WouldBlock` since the last write readiness.
    pub(super) write_blocked: bool,
}

/// What a connection rarely changes from the defaults, kept out of line.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) high_water: usize,
    pub(super) low_water: usize,
    pub(super) max_buffer: Option<usize>,
    pub(super) close_timeout: Option<Duration>,
    pub(super) close_timer: Option<DelayedCall>,
    /// Bytes of writes refused (see `Transport::write`).
    pub(super) bytes_refused: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            high_water: DEFAULT_HIGH_WATER,
            low_water: DEFAULT_LOW_WATER,
            max_buffer: None,
            close_timeout: None,
            close_timer: None,
            bytes_refused: 0,
        }
    }
}

impl Core {
    /// The state of a connection just made, as `id` in its reactor.
    pub(super) fn new(id: DescriptorId, stream: Box<dyn Stream>, peer: Address) -> Core {
        Core {
            stream: HeldStream::new(stream),
            id,
            host: std::cell::OnceCell::new(),
            peer,
            out: WriteBuffer::default(),
            settings: None,
            state: State::Open,
            write_half: WriteHalf::Open,
            read_closed: false,
            reading_paused: false,
            ending: None,
            producer: None,
            bytes_received: 0,
            bytes_sent: 0,
            write_blocked: false,
        }
    }

    /// Asks for the connection to end with `reason` once the current callback
    /// returns. The first reason stays, except that a timeout replaces a plain abort
    /// (a protocol that aborts and times out in one callback reports the timeout).
    /// Nothing once the connection is closed.
    pub(super) fn end(&mut self, reason: DisconnectReason) {
        if self.state == State::Closed {
            return;
        }
        let replaces = match self.ending.as_deref() {
            None => true,
            Some(DisconnectReason::Aborted) => matches!(reason, DisconnectReason::TimedOut),
            Some(_) => false,
        };
        if replaces {
            self.ending = Some(Box::new(reason));
        }
    }

    /// The invariants that hold whenever no callback is running (checked in debug
    /// builds after each callback has been acted on, and at the end).
    pub(super) fn check_invariants(&self) {
        if self.state == State::Closed {
            debug_assert!(self.out.is_empty(), "a closed connection buffers nothing");
            debug_assert!(
                self.producer.is_none(),
                "a closed connection has no producer"
            );
            debug_assert!(
                self.settings
                    .as_ref()
                    .is_none_or(|s| s.close_timer.is_none()),
                "a closed connection's close timer is cancelled"
            );
            return;
        }
        debug_assert!(self.ending.is_none(), "an ending asked for was acted on");
        if self.write_half == WriteHalf::Shut {
            debug_assert!(self.out.is_empty(), "a shut writing half buffers nothing");
            debug_assert!(
                self.producer.is_none(),
                "a shut writing half has no producer"
            );
        }
    }

    /// Whether writes are refused now: the connection is closed or failing, or its
    /// writing half is shut. A writing half that is only closing
    /// (`ShutdownRequested`) still takes writes: they go out before the shutdown, as
    /// after `lose_connection` (and in Twisted).
    pub(super) fn refuses_writes(&self) -> bool {
        self.state == State::Closed || self.write_half == WriteHalf::Shut || self.ending.is_some()
    }

    /// Readies the stream for the close that ends the connection with `reason`: an
    /// abortive end resets it (unsent data discarded, the peer sees a reset, never a
    /// clean end of a cut-short send); at reactor shutdown a stream that must not
    /// lose output writes it out; the rest of the buffer is dropped.
    pub(super) fn prepare_close(&mut self, reason: &DisconnectReason) {
        if matches!(
            reason,
            DisconnectReason::Aborted
                | DisconnectReason::TimedOut
                | DisconnectReason::BufferOverflow { .. }
                | DisconnectReason::Panicked(_)
        ) {
            if let Err(e) = self.stream.set_reset_on_close() {
                log::debug!("connection {}: cannot set a reset on close: {e}", self.id);
            }
        }
        if matches!(reason, DisconnectReason::Shutdown) {
            self.write_out_at_shutdown();
        }
        self.out.clear();
    }

    /// At reactor shutdown: hands what is still buffered to a stream that must not
    /// lose it (standard output); other streams refuse, and it is dropped.
    pub(super) fn write_out_at_shutdown(&mut self) {
        while !self.out.is_empty() {
            match self.stream.write_at_shutdown(self.out.as_slice()) {
                Ok(n) if n > 0 => {
                    self.out.consume(n);
                    self.bytes_sent += n as u64;
                }
                _ => break,
            }
        }
    }

    /// Counts a refused write of `len` bytes; the first one after our writing half
    /// was shut, while the connection is otherwise alive, is a protocol bug: warned.
    pub(super) fn refuse(&mut self, len: usize) {
        let bug = self.write_half == WriteHalf::Shut && self.state != State::Closed;
        let settings = self.settings_mut();
        let first = settings.bytes_refused == 0;
        settings.bytes_refused += len as u64;
        if bug && first {
            log::warn!(
                "connection {:?}: write of {len} bytes after its writing half was shut down; refused",
                self.id
            );
        }
    }

    /// Whether a close (or a half-close) must still wait for the producer: only a
    /// pull producer holds it, while its writes can still go out. It writes when
    /// asked and alone knows when it is done, so it says so by unregistering. A
    /// streaming producer writes on its own schedule and never holds a close: once
    /// the buffer drains, the close goes ahead and it is told `stop_producing`, as
    /// Twisted's `doWrite` does. (A paused one was resumed at the low-water mark,
    /// before the buffer could drain, so it had its chance to write.)
    pub(super) fn producer_holds_close(&self) -> bool {
        self.producer == Some(Producer::Pull) && self.write_half != WriteHalf::Shut
    }

    /// Changes the connection's interest with the reactor, unless it is closed. The
    /// reactor cannot refuse: a connection not `Closed` is in the reactor under its id
    /// (see `Core::id`).
    pub(super) fn interest(
        &self,
        reactor: &mut Reactor,
        change: fn(&mut Reactor, DescriptorId) -> Result<(), ReactorError>,
    ) {
        if self.state != State::Closed {
            let changed = change(reactor, self.id);
            debug_assert!(changed.is_ok(), "connection {}: {changed:?}", self.id);
        }
    }

    pub(super) fn settings_mut(&mut self) -> &mut Settings {
        self.settings.get_or_insert_with(Box::default)
    }

    pub(super) fn high_water(&self) -> usize {
        self.settings
            .as_ref()
            .map_or(DEFAULT_HIGH_WATER, |s| s.high_water)
    }

    pub(super) fn low_water(&self) -> usize {
        self.settings
            .as_ref()
            .map_or(DEFAULT_LOW_WATER, |s| s.low_water)
    }

    pub(super) fn max_buffer(&self) -> Option<usize> {
        self.settings.as_ref().and_then(|s| s.max_buffer)
    }

    /// This end's address; asked of the socket once, on first use.
    pub(super) fn host(&self) -> &Address {
        self.host
            .get_or_init(|| Box::new(self.stream.local_address().unwrap_or(Address::Unix(None))))
    }
}
