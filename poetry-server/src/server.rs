//! The poetry protocol and factory: send the poem, then close.

use std::time::Duration;

use log::{info, warn};
use protocol::{
    listen_tcp, Address, Context, DisconnectReason, EofAction, Factory, ListeningPort, Protocol,
    Shared, TcpListenOptions,
};
use reactor::{DelayedCall, Reactor};

use crate::error::ServerError;
use crate::poem::Poem;

/// Bytes per write in fast mode (`--delay 0`): the pull producer writes one such chunk
/// each time the transport's buffer drains.
pub const FAST_CHUNK: usize = 64 * 1024;
/// Bytes asked of one `sendfile` call in fast mode (the socket takes what it can).
pub const SENDFILE_CHUNK: usize = 4 * 1024 * 1024;

/// How the server serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Interface to listen on (default `127.0.0.1`).
    pub interface: String,
    /// Bytes per send in slow mode.
    pub num_bytes: usize,
    /// Pause between sends; zero is the fast server.
    pub delay: Duration,
    /// Connections served at once; more are refused with a clean close.
    pub max_connections: usize,
    /// Close connections that make no progress for this long (`None`: never). In slow
    /// mode it is never shorter than two delays, so the server's own pauses do not count.
    pub idle_timeout: Option<Duration>,
    /// In fast mode, send large poem files with `sendfile` (zero copy) rather than
    /// reading them into a buffer first.
    pub sendfile: bool,
    /// Listen with `SO_REUSEPORT`, so several reactors (one per thread) can share the
    /// port.
    pub reuse_port: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            port: 0,
            interface: "127.0.0.1".to_owned(),
            num_bytes: 10,
            delay: Duration::from_millis(700),
            max_connections: 4096,
            idle_timeout: Some(Duration::from_secs(120)),
            sendfile: true,
            reuse_port: false,
        }
    }
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted and given a protocol.
    pub accepted: u64,
    /// Connections refused because `max_connections` were open.
    pub refused: u64,
    /// Poems sent whole.
    pub completed: u64,
    /// Sends cut short: the client left, the connection broke or timed out, or the
    /// server stopped.
    pub interrupted: u64,
}

/// The factory: the poem, the pace, and the count of open connections.
#[derive(Debug)]
pub struct PoetryFactory {
    poem: Poem,
    options: ServerOptions,
    open: usize,
    stats: Stats,
    /// Read buffer for streamed files, shared by all connections.
    scratch: Vec<u8>,
}

impl PoetryFactory {
    /// A factory serving `poem` as `options` say.
    pub fn new(poem: Poem, options: ServerOptions) -> Self {
        PoetryFactory {
            poem,
            options,
            open: 0,
            stats: Stats::default(),
            scratch: Vec::new(),
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open
    }

    /// The poem.
    pub fn poem(&self) -> &Poem {
        &self.poem
    }

    /// Writes the piece of the poem at `offset` (at most `max` bytes) to `cx`; returns
    /// how many bytes that was (0 at the end).
    fn send_piece(
        &mut self,
        cx: &mut Context<'_, PoetryProtocol>,
        offset: u64,
        max: usize,
    ) -> std::io::Result<usize> {
        if let Some(chunk) = self.poem.memory_chunk(offset, max) {
            cx.write(chunk);
            return Ok(chunk.len());
        }
        if self.scratch.len() < max {
            self.scratch.resize(max, 0);
        }
        let n = self.poem.read_at(offset, &mut self.scratch[..max])?;
        cx.write(&self.scratch[..n]);
        Ok(n)
    }
}

impl Factory for PoetryFactory {
    type Protocol = PoetryProtocol;

    fn build_protocol(&mut self, peer: &Address) -> Option<PoetryProtocol> {
        if self.open >= self.options.max_connections {
            self.stats.refused += 1;
            warn!("refusing {peer}: {} connections open", self.open);
            return None;
        }
        self.open += 1;
        self.stats.accepted += 1;
        Some(PoetryProtocol {
            offset: 0,
            timer: None,
            no_sendfile: false,
            finished: false,
        })
    }
}

/// One connection: sends the poem, in `num_bytes` pieces every `delay` (slow), or as
/// fast as the client takes it (fast, `delay` zero, as a pull producer), then closes.
#[derive(Debug)]
pub struct PoetryProtocol {
    offset: u64,
    timer: Option<DelayedCall>,
    /// `sendfile` is not possible on this connection: read and write instead.
    no_sendfile: bool,
    /// The whole poem has been handed to the transport.
    finished: bool,
}

impl PoetryProtocol {
    /// Bytes of the poem sent so far.
    pub fn sent(&self) -> u64 {
        self.offset
    }

    /// Sends the next piece; `false` once there is nothing left (or it failed).
    fn send_next(&mut self, cx: &mut Context<'_, Self>, max: usize) -> bool {
        let result = cx.factory().send_piece(cx, self.offset, max);
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

    /// The poem's file, when fast mode may send it with `sendfile`.
    fn zero_copy_file(&self, cx: &mut Context<'_, Self>) -> Option<std::rc::Rc<std::fs::File>> {
        let factory = cx.factory();
        if self.no_sendfile || !factory.options.sendfile {
            return None;
        }
        factory.poem.file()
    }

    /// Fast mode for a file: the kernel copies it to the socket. `false` at the end.
    fn send_file(&mut self, cx: &mut Context<'_, Self>, file: &std::fs::File) -> bool {
        let len = cx.factory().poem.len();
        let want = (len.saturating_sub(self.offset)).min(SENDFILE_CHUNK as u64) as usize;
        if want == 0 {
            return false;
        }
        match cx.send_file(file, self.offset, want) {
            Ok(0) => false, // the file shrank under us: what is there has been sent
            Ok(n) => {
                self.offset += n as u64;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                self.no_sendfile = true;
                self.send_next(cx, FAST_CHUNK)
            }
            Err(e) => {
                warn!("sending the poem to {}: {e}", cx.get_peer());
                false
            }
        }
    }

    /// Slow mode: one piece now, the next after the delay.
    fn send_slowly(&mut self, cx: &mut Context<'_, Self>) {
        self.timer = None;
        let (num_bytes, delay) = {
            let factory = cx.factory();
            (factory.options.num_bytes, factory.options.delay)
        };
        if self.send_next(cx, num_bytes) && cx.is_open() {
            self.timer = Some(cx.call_later(delay, |p, cx| p.send_slowly(cx)));
        } else {
            cx.lose_connection();
        }
    }
}

impl Protocol for PoetryProtocol {
    type Factory = PoetryFactory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let (delay, idle_timeout, len) = {
            let factory = cx.factory();
            (
                factory.options.delay,
                factory.options.idle_timeout,
                factory.poem.len(),
            )
        };
        let fast = delay.is_zero();
        info!("sending {len} bytes of poetry to {}", cx.get_peer());
        // Our own pauses between pieces are not the client's idleness.
        cx.set_timeout(idle_timeout.map(|idle| idle.max(delay * 2)));
        if fast {
            cx.register_producer(false);
            // The socket is almost always writable now: send at once rather than a turn
            // later, while it takes everything (a short poem is sent and closed here,
            // without the connection ever waiting on the poller).
            for _ in 0..16 {
                if self.finished || cx.write_blocked() || !cx.is_open() {
                    break;
                }
                self.resume_producing(cx);
            }
        } else {
            self.send_slowly(cx);
        }
    }

    fn data_received(&mut self, _cx: &mut Context<'_, Self>, _data: &[u8]) {
        // Clients send nothing; anything they do send is ignored.
    }

    fn read_connection_lost(&mut self, _cx: &mut Context<'_, Self>) -> EofAction {
        // Clients send nothing, so one that shuts down its writing half (`nc -N`)
        // still wants the poem: keep sending. A client that closed altogether is
        // found out by the next write.
        EofAction::KeepWriting
    }

    fn resume_producing(&mut self, cx: &mut Context<'_, Self>) {
        let more = match self.zero_copy_file(cx) {
            Some(file) => self.send_file(cx, &file),
            None => self.send_next(cx, FAST_CHUNK),
        };
        if !more {
            self.finished = true;
            cx.unregister_producer();
            cx.lose_connection();
        }
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        if let Some(timer) = self.timer.take() {
            let _ = timer.cancel(cx.reactor());
        }
        let mut factory = cx.factory();
        factory.open -= 1;
        let whole = reason.is_clean() && self.offset == factory.poem.len();
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

/// Starts serving `poem` on `reactor` as `options` say; returns the listening port
/// (ask it for the real port) and the shared factory (read its stats).
///
/// # Errors
///
/// [`ServerError::Listen`] if the interface or port cannot be used.
pub fn serve(
    reactor: &mut Reactor,
    poem: Poem,
    options: ServerOptions,
) -> Result<(ListeningPort, Shared<PoetryFactory>), ServerError> {
    let listen = TcpListenOptions {
        interface: options.interface.clone(),
        reuse_port: options.reuse_port,
        ..TcpListenOptions::default()
    };
    let port = options.port;
    let factory = Shared::new(PoetryFactory::new(poem, options));
    let listening = listen_tcp(reactor, port, &factory, &listen)?;
    Ok((listening, factory))
}
