//! The poetry factory and how it is started: options, statistics, the connection cap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::warn;
use protocol::{listen_tcp, Address, Context, Factory, ListeningPort, Shared, TcpListenOptions};
use reactor::Reactor;

use crate::error::ServerError;
use crate::poem::Poem;
use crate::send::PoetryProtocol;
use crate::sockopt::{SendBudget, SendBuffer};

/// Bytes per write in fast mode (`--delay 0`): the pull producer writes one such chunk
/// each time the transport's buffer drains.
pub const FAST_CHUNK: usize = 64 * 1024;
/// Bytes asked of one `sendfile` call in fast mode (the socket takes what it can:
/// about 146 KiB per call on loopback here, whatever the ask beyond its room).
/// Chosen by measurement (docs/performance.md): 256 MiB downloads, reno, server CPU
/// per MB, medians of two sets of 3 and 5 interleaved runs on the shared machine:
/// 256 KiB 523 / 698 µs, 1 MiB 478 / 673, 4 MiB 496 / 695, 16 MiB 516 / 690.
pub const SENDFILE_CHUNK: usize = 1024 * 1024;

/// How the server serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Interface to listen on (default `127.0.0.1`; `::` is every interface, IPv4 and
    /// IPv6).
    pub interface: String,
    /// Bytes per send in slow mode (rounded to whole UTF-8 characters when the poem is
    /// UTF-8).
    pub num_bytes: usize,
    /// Pause between sends; zero is the fast server.
    pub delay: Duration,
    /// Connections served at once, over every reactor; more are refused with a reset.
    /// Also the length of the listening socket's accept queue (bounded by the system's
    /// `net.core.somaxconn`), so that a crowd arriving at once waits rather than being
    /// dropped.
    pub max_connections: usize,
    /// Close connections that make no progress for this long (`None`: never). In slow
    /// mode it is never shorter than two delays, so the server's own pauses do not count.
    pub idle_timeout: Option<Duration>,
    /// In fast mode, send large poem files with `sendfile` (zero copy) rather than
    /// writing them from a mapping of the file (one copy, by the kernel; read into a
    /// buffer, two copies, when the file cannot be mapped).
    pub sendfile: bool,
    /// Listen with `SO_REUSEPORT`, so several reactors (one per thread) can share the
    /// port.
    pub reuse_port: bool,
    /// The kernel send buffer of each connection.
    pub send_buffer: SendBuffer,
    /// Congestion control set on every connection (`TCP_CONGESTION`); `None` keeps the
    /// system's default.
    pub congestion_control: Option<String>,
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
            send_buffer: SendBuffer::Budgeted,
            congestion_control: None,
        }
    }
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted and given a protocol.
    pub accepted: u64,
    /// Connections refused (reset) because `max_connections` were open.
    pub refused: u64,
    /// Poems sent whole: every byte and the end of the poem were handed to the kernel
    /// and the connection closed cleanly.
    pub completed: u64,
    /// Sends cut short: the client left, the connection broke or timed out, the poem
    /// file changed, or the server stopped. Each was reset.
    pub interrupted: u64,
}

/// The send buffer of a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sizing {
    /// As the listener set it (or no bound needed: the whole poem fits in its share).
    Inherited,
    /// One of the budget's autotuned places, given back when the connection ends.
    Autotuned,
    /// `SO_SNDBUF` of this many bytes.
    Bounded(usize),
}

/// The factory: the poem, the pace, and the count of open connections.
#[derive(Debug)]
pub struct PoetryFactory {
    pub(crate) poem: Poem,
    pub(crate) options: ServerOptions,
    /// The connections' send buffers, resolved from `options.send_buffer`.
    send_budget: SendBudget,
    open: usize,
    /// Connections open over every reactor sharing the cap (`--reactors N`).
    global_open: Option<Arc<AtomicUsize>>,
    /// Connections holding one of the budget's autotuned places, over every reactor.
    autotuned: Arc<AtomicUsize>,
    pub(crate) stats: Stats,
    /// Connections whose whole poem and its end are in the kernel, waiting for the
    /// client to take them (the lingering close).
    pub(crate) lingering: usize,
    /// Read buffer for streamed files, shared by all connections.
    scratch: Vec<u8>,
}

impl PoetryFactory {
    /// A factory serving `poem` as `options` say.
    pub fn new(poem: Poem, options: ServerOptions) -> Self {
        let send_budget = match options.send_buffer {
            SendBuffer::Budgeted => SendBudget::of_this_machine(options.max_connections),
            SendBuffer::Bytes(bytes) => SendBudget::fixed(bytes),
            SendBuffer::Kernel => SendBudget::KERNEL,
        };
        if send_budget.over_budget {
            warn!(
                "--max-connections {}: even the smallest send buffers for that many \
                 clients exceed half of the kernel's TCP pressure threshold (tcp_mem); \
                 clients that never read can pin more: lower --max-connections",
                options.max_connections
            );
        }
        PoetryFactory {
            poem,
            options,
            send_budget,
            open: 0,
            global_open: None,
            autotuned: Arc::new(AtomicUsize::new(0)),
            stats: Stats::default(),
            lingering: 0,
            scratch: Vec::new(),
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Connections open now whose whole poem and its end are in the kernel, lingering
    /// until the client has taken them (on this factory's reactor).
    pub fn lingering_connections(&self) -> usize {
        self.lingering
    }

    /// Connections open now (on this factory's reactor).
    pub fn open_connections(&self) -> usize {
        self.open
    }

    /// The poem.
    pub fn poem(&self) -> &Poem {
        &self.poem
    }

    /// How the connections' send buffers are sized.
    pub fn send_budget(&self) -> SendBudget {
        self.send_budget
    }

    /// Connections open now that keep the kernel's autotuning under the budget (over
    /// every reactor).
    pub fn autotuned_connections(&self) -> usize {
        self.autotuned.load(Ordering::Acquire)
    }

    /// The send buffer a new connection gets: the listener's (nothing to do), one of
    /// the budget's autotuned places (only a `fast` send can use one: slow mode's
    /// pace needs no more than the bound), or the bound.
    pub(crate) fn size_send_buffer(&mut self, fast: bool) -> Sizing {
        let budget = self.send_budget;
        if budget.autotuned == 0 || !budget.could_overflow(self.poem.len()) {
            return Sizing::Inherited;
        }
        let taken = fast
            && self
                .autotuned
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    (used < budget.autotuned).then_some(used + 1)
                })
                .is_ok();
        match (taken, budget.bounded) {
            (true, _) => Sizing::Autotuned,
            (false, Some(bytes)) => Sizing::Bounded(bytes),
            // No bound: `could_overflow` said no above; nothing to set.
            (false, None) => Sizing::Inherited,
        }
    }

    /// Gives back an autotuned place.
    pub(crate) fn release_autotuned(&mut self) {
        let released = self
            .autotuned
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_sub(1)
            });
        debug_assert!(released.is_ok(), "an autotuned place released twice");
    }

    /// Writes the piece of the poem at `offset` (at most `max` bytes; with
    /// `whole_chars`, rounded to whole UTF-8 characters) to `cx`; returns how many
    /// bytes that was (0 at the end).
    pub(crate) fn send_piece(
        &mut self,
        cx: &mut Context<'_, PoetryProtocol>,
        offset: u64,
        max: usize,
        whole_chars: bool,
    ) -> std::io::Result<usize> {
        // Enough beyond the cut to see the character it falls in.
        let window = if whole_chars { max + 3 } else { max };
        if let Some(chunk) = self.poem.memory_chunk(offset, window) {
            let n = if whole_chars {
                self.poem.piece_len(chunk, max)
            } else {
                chunk.len()
            };
            cx.write(&chunk[..n]);
            return Ok(n);
        }
        if self.scratch.len() < window {
            self.scratch.resize(window, 0);
        }
        let got = self.poem.read_at(offset, &mut self.scratch[..window])?;
        let n = if whole_chars {
            self.poem.piece_len(&self.scratch[..got], max)
        } else {
            got
        };
        cx.write(&self.scratch[..n]);
        Ok(n)
    }

    /// Takes a place under the cap for a new connection; `false` if none is left.
    fn admit(&mut self) -> bool {
        let max = self.options.max_connections;
        let admitted = match &self.global_open {
            Some(global) => global
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                    (open < max).then_some(open + 1)
                })
                .is_ok(),
            None => self.open < max,
        };
        if admitted {
            self.open += 1;
        }
        admitted
    }

    /// Gives back the place of a connection that ended.
    pub(crate) fn release(&mut self) {
        debug_assert!(self.open > 0, "a connection released twice");
        self.open -= 1;
        if let Some(global) = &self.global_open {
            global.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Factory for PoetryFactory {
    type Protocol = PoetryProtocol;

    fn build_protocol(&mut self, peer: &Address) -> Option<PoetryProtocol> {
        if !self.admit() {
            self.stats.refused += 1;
            warn!("refusing {peer}: {} connections open", self.open);
            // A refusal is reset, so that it cannot look like an empty poem: the
            // protocol aborts as soon as it is made.
            return Some(PoetryProtocol::refusal());
        }
        self.stats.accepted += 1;
        Some(PoetryProtocol::new())
    }
}

/// Starts serving `poem` on `reactor` as `options` say; returns the listening port
/// (ask it for the real port) and the shared factory (read its stats).
///
/// # Errors
///
/// [`ServerError::Listen`] if the interface or port cannot be used;
/// [`ServerError::SocketOption`] if the congestion control cannot be used.
pub fn serve(
    reactor: &mut Reactor,
    poem: Poem,
    options: ServerOptions,
) -> Result<(ListeningPort, Shared<PoetryFactory>), ServerError> {
    serve_counted(reactor, poem, options, None)
}

/// What every reactor of one server counts together (`--reactors N`): its open
/// connections, under the cap, and the autotuned places of its send budget taken.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedCounts {
    open: Arc<AtomicUsize>,
    autotuned: Arc<AtomicUsize>,
}

/// As [`serve`], with `shared` counted over every reactor of the server.
pub(crate) fn serve_counted(
    reactor: &mut Reactor,
    poem: Poem,
    options: ServerOptions,
    shared: Option<SharedCounts>,
) -> Result<(ListeningPort, Shared<PoetryFactory>), ServerError> {
    if let Some(name) = &options.congestion_control {
        crate::sockopt::check_congestion(name).map_err(|source| ServerError::SocketOption {
            option: format!("congestion control {name}"),
            source,
        })?;
    }
    let port = options.port;
    let mut factory = PoetryFactory::new(poem, options);
    // A poem is incomplete from the moment its connection is accepted: every
    // accepted socket resets when closed (a crash or SIGKILL included) until its
    // protocol switches linger off at the poem's end. Set once, on the listening
    // socket, which accepted sockets inherit (no system call per connection); so is
    // the send buffer's bound when no connection may keep the kernel's autotuning
    // (otherwise each connection that needs it sets its own, `Sizing`). The accept
    // queue holds as many as the cap (the kernel bounds it by `net.core.somaxconn`):
    // a crowd arriving at once while the reactor is busy waits there, where a shorter
    // queue drops SYNs (a second's wait each) and, once its SYN cookies run, leaves
    // clients that send nothing connected on their side only, waiting forever.
    let budget = factory.send_budget;
    let listen = TcpListenOptions {
        interface: factory.options.interface.clone(),
        reuse_port: factory.options.reuse_port,
        backlog: i32::try_from(factory.options.max_connections).unwrap_or(i32::MAX),
        send_buffer: budget.bounded.filter(|_| budget.autotuned == 0),
        reset_on_close: true,
    };
    if let Some(shared) = shared {
        factory.global_open = Some(shared.open);
        factory.autotuned = shared.autotuned;
    }
    let factory = Shared::new(factory);
    let listening = listen_tcp(reactor, port, &factory, &listen)?;
    Ok((listening, factory))
}
