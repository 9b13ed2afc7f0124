//! [`PoetryProtocol`]: one connection's send, from the first byte to an honest end.
//!
//! The close marks the end of a poem, so a clean close must mean the whole poem was
//! sent. While the poem is incomplete the socket lingers {on, 0}: whatever closes it
//! (an abort, the reactor's shutdown, a crash or `SIGKILL` of the process) resets the
//! connection. Once the poem is whole in the kernel the writing half is shut down (FIN
//! after the last byte) and linger is switched off at once: from then on any close,
//! the reactor stopping or the process dying included, lets the kernel deliver the
//! rest of the poem and its end, as a clean close must. (Keeping {on, 0} until the
//! final close reset poems that were whole: a client whose last segment had filled its
//! window held every byte while the FIN waited for the window to open, and a stop in
//! that moment reached it as a reset after all the bytes.) The connection then
//! lingers, reading and discarding what the client sends, until the client has
//! acknowledged everything or closes: closing earlier, with the client's bytes unread,
//! would make the kernel reset the connection and throw away the poem's tail. A client
//! that takes nothing for the idle timeout is still reset.

use std::time::Duration;

use log::{info, warn};
use protocol::{Context, DisconnectReason, EofAction, Protocol};
use reactor::DelayedCall;

use crate::mapped::Window;
use crate::poem::FileState;
use crate::server::{PoetryFactory, Sizing, FAST_CHUNK, SENDFILE_CHUNK};
use crate::sockopt;

/// A slow-mode client whose unsent bytes pass this skips its ticks until they drain.
pub const SLOW_HIGH_WATER: usize = 64 * 1024;
/// First look at a lingering connection's send queue; each later one waits twice as
/// long, up to [`LINGER_POLL_MAX`].
const LINGER_POLL_FIRST: Duration = Duration::from_millis(5);
/// Longest wait between two looks at a lingering connection.
const LINGER_POLL_MAX: Duration = Duration::from_secs(1);
/// In fast mode, a streamed file is read ahead (`WILLNEED`) this far beyond what has
/// been sent, in steps of half of it.
pub(crate) const READ_AHEAD: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Over the cap: reset as soon as made.
    Refused,
    /// Sending the poem.
    Sending,
    /// The whole poem is handed to the transport; its end (the writing half's
    /// shutdown) follows once the transport has passed everything to the kernel.
    Ending,
    /// The poem and its end are in the kernel; waiting for the client to take them.
    Lingering,
}

/// How fast mode sends a poem streamed from its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `sendfile`: from the page cache to the socket, no copy.
    Sendfile,
    /// Written from a mapped window of the file: one copy, by the kernel
    /// (`--no-sendfile`, or a socket or file `sendfile` cannot serve).
    Mapped,
    /// Read into a buffer and written: two copies (a file that cannot be mapped).
    Buffered,
}

/// One connection: sends the poem, in `num_bytes` pieces every `delay` (slow), or as
/// fast as the client takes it (fast, `delay` zero, as a pull producer), then ends it
/// honestly (see the module's documentation).
#[derive(Debug)]
pub struct PoetryProtocol {
    phase: Phase,
    offset: u64,
    timer: Option<DelayedCall>,
    /// How a streamed file is sent in fast mode.
    route: Route,
    /// A streamed file as it was when the connection started.
    start: Option<FileState>,
    /// Holds one of the send budget's autotuned places.
    autotuned: bool,
    /// Fast mode: the end of the part of the file asked to be read ahead.
    advised: u64,
    /// Lingering: the wait before the next look, the acknowledged count at the last
    /// look and how long it has not moved.
    linger_poll: Duration,
    acked: u64,
    stalled: Duration,
}

impl PoetryProtocol {
    pub(crate) fn new() -> Self {
        PoetryProtocol {
            phase: Phase::Sending,
            offset: 0,
            timer: None,
            route: Route::Sendfile,
            start: None,
            autotuned: false,
            advised: 0,
            linger_poll: LINGER_POLL_FIRST,
            acked: 0,
            stalled: Duration::ZERO,
        }
    }

    pub(crate) fn refusal() -> Self {
        PoetryProtocol {
            phase: Phase::Refused,
            ..PoetryProtocol::new()
        }
    }

    /// Bytes of the poem sent so far.
    pub fn sent(&self) -> u64 {
        self.offset
    }

    /// Sends the next piece; `false` once there is nothing left (or it failed).
    fn send_next(&mut self, cx: &mut Context<'_, Self>, max: usize, whole_chars: bool) -> bool {
        let result = cx.factory().send_piece(cx, self.offset, max, whole_chars);
        match result {
            Ok(0) => false,
            Ok(n) => {
                self.offset += n as u64;
                true
            }
            Err(e) => {
                warn!("reading the poem for {}: {e}", cx.get_peer());
                cx.abort_connection();
                false
            }
        }
    }

    /// Fast mode for a file: the kernel copies it to the socket. `false` at the end.
    fn send_file(&mut self, cx: &mut Context<'_, Self>, file: &std::fs::File) -> bool {
        let len = cx.factory().poem.len();
        let want = (len.saturating_sub(self.offset)).min(SENDFILE_CHUNK as u64) as usize;
        if want == 0 {
            return false;
        }
        match cx.send_file(file, self.offset, want) {
            Ok(0) => false, // the file shrank under us: `end_poem` resets
            Ok(n) => {
                self.offset += n as u64;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                self.route = Route::Mapped;
                self.send_mapped(cx, file)
            }
            Err(e) => {
                // The transport ends the connection with this error.
                warn!("sending the poem to {}: {e}", cx.get_peer());
                false
            }
        }
    }

    /// Fast mode for a file, copying: writes from a window of it mapped for this
    /// write, so the kernel copies each byte once; a file that cannot be mapped is
    /// read into a buffer instead. `false` at the end.
    fn send_mapped(&mut self, cx: &mut Context<'_, Self>, file: &std::fs::File) -> bool {
        let (len, bounded_queue) = {
            let factory = cx.factory();
            (factory.poem.len(), factory.send_budget().bounded_queue())
        };
        if self.offset >= len {
            return false;
        }
        // No more than the socket can take at once: a bounded one's queue.
        let max = match bounded_queue {
            Some(queue) if !self.autotuned => queue,
            _ => crate::mapped::WINDOW,
        };
        let mapped = if cx.handle().is_some() {
            // SAFETY: the window's bytes go only to the kernel: `write_now` on a
            // socket never reads or keeps them.
            unsafe { Window::map(file, self.offset, len, max) }
        } else {
            // Not a socket: an in-memory transport would read the mapping in user
            // space, where a truncated file kills the process.
            Err(std::io::ErrorKind::Unsupported.into())
        };
        let window = match mapped {
            Ok(window) => window,
            Err(e) => {
                info!("cannot map the poem ({e}): reading it into a buffer instead");
                self.route = Route::Buffered;
                return self.send_next(cx, FAST_CHUNK, false);
            }
        };
        match cx.write_now(window.bytes_from(self.offset)) {
            Ok(n) => {
                self.offset += n as u64;
                n > 0
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(e) => {
                // The transport ends the connection with this error (a truncated
                // file's pages give `EFAULT`): the poem is reset.
                warn!("sending the poem to {}: {e}", cx.get_peer());
                false
            }
        }
    }

    /// Fast mode: keeps the file asked to be read ahead [`READ_AHEAD`] beyond what has
    /// been sent, half of it at a time, so that a cold file is read in large steps
    /// while the socket takes the pages already there.
    fn read_ahead(&mut self, cx: &mut Context<'_, Self>) {
        if self.offset + READ_AHEAD / 2 < self.advised {
            return;
        }
        let factory = cx.factory();
        let end = (self.offset + READ_AHEAD).min(factory.poem.len());
        if end > self.advised {
            factory.poem.read_ahead(self.advised, end - self.advised);
            self.advised = end;
        }
    }

    /// Slow mode: one piece now, the next after the delay. A client that does not take
    /// what it was sent skips ticks until it does.
    fn send_slowly(&mut self, cx: &mut Context<'_, Self>) {
        self.timer = None;
        let (num_bytes, delay) = {
            let factory = cx.factory();
            (factory.options.num_bytes, factory.options.delay)
        };
        let more = cx.buffered() > SLOW_HIGH_WATER || self.send_next(cx, num_bytes, true);
        if more && cx.is_open() {
            self.timer = Some(cx.call_later(delay, |p, cx| p.send_slowly(cx)));
        } else {
            self.end_poem(cx);
        }
    }

    /// Sets up the socket: its send buffer under the budget and the congestion
    /// control. (Reset on close until the poem is whole comes with the socket from the
    /// listener.) No `TCP_CORK`: measured, it saved nothing under reno and cost about
    /// 30% more server CPU per MB under BBR (docs/performance.md).
    fn set_up_socket(&mut self, cx: &mut Context<'_, Self>, fast: bool) {
        let (congestion, sizing) = {
            let mut factory = cx.factory();
            (
                factory.options.congestion_control.clone(),
                factory.size_send_buffer(fast),
            )
        };
        self.autotuned = sizing == Sizing::Autotuned;
        let Some(fd) = cx.handle() else {
            return;
        };
        let mut result = Ok(());
        if let Sizing::Bounded(bytes) = sizing {
            result = sockopt::set_send_buffer(fd, bytes);
        }
        if let (Some(name), Ok(())) = (&congestion, &result) {
            result = sockopt::set_congestion(fd, name);
        }
        if let Err(e) = result {
            warn!("setting up the socket of {}: {e}", cx.get_peer());
            cx.abort_connection();
        }
    }

    /// Nothing more to send: if the whole poem went, as it was when the connection
    /// started, end it cleanly (shut down the writing half and linger); otherwise reset.
    fn end_poem(&mut self, cx: &mut Context<'_, Self>) {
        if !cx.is_open() || self.phase != Phase::Sending {
            return;
        }
        let (len, now) = {
            let factory = cx.factory();
            (factory.poem.len(), factory.poem.file_state())
        };
        let unchanged = match (self.start, now) {
            (Some(start), Ok(Some(now))) => start.still_serves(&now, len),
            (None, Ok(None)) => true,
            _ => false,
        };
        if self.offset != len || !unchanged {
            warn!(
                "the poem changed while {} was served ({} of {len} bytes sent): reset",
                cx.get_peer(),
                self.offset
            );
            cx.abort_connection();
            return;
        }
        self.phase = Phase::Ending;
        cx.unregister_producer();
        cx.lose_write_connection();
    }

    /// Lingering: closes once the client has acknowledged every byte and the end of
    /// the poem; resets once it acknowledged nothing for the idle timeout.
    fn linger(&mut self, cx: &mut Context<'_, Self>) {
        self.timer = None;
        let acked = cx.bytes_acked();
        if acked == cx.bytes_sent() {
            cx.lose_connection();
            return;
        }
        if acked == self.acked {
            self.stalled += self.linger_poll;
        } else {
            self.acked = acked;
            self.stalled = Duration::ZERO;
        }
        let limit = cx.factory().options.idle_timeout;
        if limit.is_some_and(|limit| self.stalled >= limit) {
            cx.abort_timed_out();
            return;
        }
        self.linger_poll = (self.linger_poll * 2).min(LINGER_POLL_MAX);
        self.timer = Some(cx.call_later(self.linger_poll, |p, cx| p.linger(cx)));
    }
}

impl Protocol for PoetryProtocol {
    type Factory = PoetryFactory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        if self.phase == Phase::Refused {
            cx.abort_connection();
            return;
        }
        let (delay, idle_timeout, sendfile, len, state) = {
            let factory = cx.factory();
            (
                factory.options.delay,
                factory.options.idle_timeout,
                factory.options.sendfile,
                factory.poem.len(),
                factory.poem.file_state(),
            )
        };
        match state {
            Ok(state) => self.start = state,
            Err(e) => {
                warn!("reading the poem's state for {}: {e}", cx.get_peer());
                cx.abort_connection();
                return;
            }
        }
        let fast = delay.is_zero();
        if !sendfile {
            self.route = Route::Mapped;
        }
        self.set_up_socket(cx, fast);
        info!("sending {len} bytes of poetry to {}", cx.get_peer());
        // Our own pauses between pieces are not the client's idleness.
        cx.set_timeout(idle_timeout.map(|idle| idle.max(delay * 2)));
        if fast {
            cx.register_producer(false);
            // The socket is almost always writable now: send at once rather than a turn
            // later, while it takes everything (a short poem is sent and ended here,
            // without the connection ever waiting on the poller).
            for _ in 0..16 {
                if self.phase != Phase::Sending || cx.write_blocked() || !cx.is_open() {
                    break;
                }
                self.resume_producing(cx);
            }
        } else {
            self.send_slowly(cx);
        }
    }

    fn data_received(&mut self, _cx: &mut Context<'_, Self>, _data: &[u8]) {
        // Clients need send nothing; what they do send is read and discarded for the
        // whole connection, so that it never sits unread when the socket closes.
    }

    fn read_connection_lost(&mut self, _cx: &mut Context<'_, Self>) -> EofAction {
        // Clients send nothing, so one that shuts down its writing half (`nc -N`)
        // still wants the poem: keep sending. A client that closed altogether is
        // found out by the next write.
        EofAction::KeepWriting
    }

    fn write_connection_lost(&mut self, cx: &mut Context<'_, Self>) {
        // The poem and its end are all in the kernel now: a close from here on, however
        // it comes, must let the kernel finish (see the module's documentation).
        if let Some(fd) = cx.handle() {
            if let Err(e) = sockopt::reset_on_close(fd, false) {
                warn!("ending the poem to {}: {e}", cx.get_peer());
            }
        }
        self.phase = Phase::Lingering;
        cx.factory().lingering += 1;
        // A first look now: a client that has already acknowledged everything (a fast
        // reader on a short path) is closed in this turn, with no wait and no wake.
        if cx.bytes_acked() == cx.bytes_sent() {
            cx.lose_connection();
            return;
        }
        self.timer = Some(cx.call_later(self.linger_poll, |p, cx| p.linger(cx)));
    }

    fn resume_producing(&mut self, cx: &mut Context<'_, Self>) {
        if self.phase != Phase::Sending {
            return;
        }
        self.read_ahead(cx);
        let file = cx.factory().poem.file();
        let more = match (file, self.route) {
            (Some(file), Route::Sendfile) => self.send_file(cx, &file),
            (Some(file), Route::Mapped) => self.send_mapped(cx, &file),
            (None, _) | (Some(_), Route::Buffered) => self.send_next(cx, FAST_CHUNK, false),
        };
        if !more {
            self.end_poem(cx);
        }
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        if let Some(timer) = self.timer.take() {
            let _ = timer.cancel(cx.reactor());
        }
        if self.phase == Phase::Refused {
            return;
        }
        // Lingering, the poem and its end are in the kernel and linger is off: a clean
        // close, or the reactor's stop, lets the kernel deliver them. Only an abort (the
        // client stalled past the idle timeout) or the client's own reset cuts them.
        let whole = match self.phase {
            Phase::Ending => reason.is_clean(),
            Phase::Lingering => {
                cx.factory().lingering -= 1;
                matches!(reason, DisconnectReason::Done | DisconnectReason::Shutdown)
            }
            Phase::Sending | Phase::Refused => false,
        };
        if whole && self.phase == Phase::Ending {
            // The graceful close: the socket is closed right after this returns. (A
            // lingering connection switched linger off when its writing half was shut.)
            if let Some(fd) = cx.handle() {
                if let Err(e) = sockopt::reset_on_close(fd, false) {
                    warn!("ending the poem to {}: {e}", cx.get_peer());
                }
            }
        }
        let mut factory = cx.factory();
        factory.release();
        if std::mem::take(&mut self.autotuned) {
            factory.release_autotuned();
        }
        if whole {
            factory.stats.completed += 1;
            info!(
                "sent the whole poem ({} bytes) to {}",
                self.offset,
                cx.get_peer()
            );
        } else {
            factory.stats.interrupted += 1;
            info!(
                "send to {} cut short after {} of {} bytes: {reason}",
                cx.get_peer(),
                self.offset,
                factory.poem.len()
            );
        }
    }
}
