//! The client's protocol and factory: get-poetry 2.x, with the reason a connection
//! ended taken seriously.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use protocol::{
    connect_tcp, Address, ClientFactory, ConnectError, ConnectOptions, Connector, Context,
    DisconnectReason, Factory, Protocol, Shared,
};
use reactor::{DelayedCall, Reactor};

use crate::address::PoemAddress;

/// How one download ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still downloading.
    Pending,
    /// The server closed cleanly: the poem arrived whole.
    Whole,
    /// The connection broke (reset, error): only part of the poem arrived.
    Incomplete(String),
    /// Our `--timeout` expired before the poem finished.
    TimedOut,
    /// No connection could be made.
    Failed(String),
}

/// One download: the address, what arrived, and how it ended.
#[derive(Debug, Clone)]
pub struct Task {
    /// Task number, from 1, in address order.
    pub number: usize,
    /// Where it downloads from.
    pub address: PoemAddress,
    /// The bytes received.
    pub poem: Vec<u8>,
    /// How it ended.
    pub outcome: Outcome,
    /// When each piece arrived (since the start) and its size: for `--timeline`.
    pub arrivals: Vec<(Duration, usize)>,
    /// When it ended, since the start.
    pub finished: Option<Duration>,
}

impl Task {
    /// Whether the poem arrived whole.
    pub fn is_whole(&self) -> bool {
        self.outcome == Outcome::Whole
    }
}

/// How the client downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Give up on a poem after this long (exercise 1); `None` waits.
    pub timeout: Option<Duration>,
    /// Give up connecting after this long.
    pub connect_timeout: Option<Duration>,
    /// Print a line per read, as get-poetry 2.0 does (on stderr).
    pub verbose: bool,
    /// Stop the reactor when every download has ended.
    pub stop_when_done: bool,
    /// Largest poem kept, in bytes: a server that sends more is cut off and its poem
    /// reported incomplete, so a hostile server cannot grow the client without bound.
    pub max_poem_bytes: u64,
}

/// The default [`ClientOptions::max_poem_bytes`]: 1 GiB.
pub const DEFAULT_MAX_POEM_BYTES: u64 = 1 << 30;

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: None,
            connect_timeout: Some(Duration::from_secs(30)),
            verbose: false,
            stop_when_done: true,
            max_poem_bytes: DEFAULT_MAX_POEM_BYTES,
        }
    }
}

/// The factory: every task's state, shared by their protocols (the tutorial's
/// `PoetryClientFactory`).
#[derive(Debug)]
pub struct PoetryClientFactory {
    tasks: Vec<Task>,
    /// Which task each connector serves.
    task_of: HashMap<u64, usize>,
    remaining: usize,
    started: Duration,
    options: ClientOptions,
}

impl PoetryClientFactory {
    /// The tasks, in address order.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// Takes the tasks out (once the downloads are over).
    pub fn take_tasks(&mut self) -> Vec<Task> {
        std::mem::take(&mut self.tasks)
    }

    /// Downloads still going.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// When the downloads started, on the reactor's clock.
    pub fn started(&self) -> Duration {
        self.started
    }

    /// A task ended: record how, and stop the reactor after the last one (the
    /// tutorial's `poem_finished`).
    fn poem_finished(&mut self, task: usize, outcome: Outcome, reactor: &mut Reactor) {
        let now = reactor.now().saturating_sub(self.started);
        let Some(task) = self.tasks.get_mut(task) else {
            return;
        };
        if task.outcome != Outcome::Pending {
            return;
        }
        task.outcome = outcome;
        task.finished = Some(now);
        self.remaining -= 1;
        if self.remaining == 0 && self.options.stop_when_done {
            reactor.stop();
        }
    }
}

impl Factory for PoetryClientFactory {
    type Protocol = PoetryProtocol;

    fn build_protocol(&mut self, _peer: &Address) -> Option<PoetryProtocol> {
        // Connections come only through connectors: see build_client_protocol.
        None
    }
}

impl ClientFactory for PoetryClientFactory {
    fn build_client_protocol(
        &mut self,
        connector: &Connector<Self>,
        _peer: &Address,
    ) -> Option<PoetryProtocol> {
        let task = *self.task_of.get(&connector.serial())?;
        Some(PoetryProtocol {
            task,
            timer: None,
            timed_out: false,
            too_large: false,
        })
    }

    fn client_connection_failed(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        let Some(&task) = self.task_of.get(&connector.serial()) else {
            return;
        };
        eprintln!(
            "Failed to connect to: {} ({reason})",
            self.tasks[task].address
        );
        self.poem_finished(task, Outcome::Failed(reason.to_string()), reactor);
    }
}

/// One download's protocol: collect the poem until the server closes.
#[derive(Debug)]
pub struct PoetryProtocol {
    task: usize,
    timer: Option<DelayedCall>,
    /// We closed the connection because `--timeout` expired: a close we asked for
    /// arrives as a clean close, so we must remember.
    timed_out: bool,
    /// The server sent more than `max_poem_bytes`: we cut it off.
    too_large: bool,
}

impl Protocol for PoetryProtocol {
    type Factory = PoetryClientFactory;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let timeout = cx.factory().options.timeout;
        if let Some(timeout) = timeout {
            self.timer = Some(cx.call_later(timeout, |p, cx| {
                p.timer = None;
                p.timed_out = true;
                cx.lose_connection();
            }));
        }
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        let now = cx.reactor().now();
        let mut factory = cx.factory();
        let at = now.saturating_sub(factory.started);
        let verbose = factory.options.verbose;
        let limit = factory.options.max_poem_bytes;
        let task = &mut factory.tasks[self.task];
        if task.poem.len() as u64 + data.len() as u64 > limit {
            drop(factory);
            self.too_large = true;
            cx.abort_connection();
            return;
        }
        task.poem.extend_from_slice(data);
        task.arrivals.push((at, data.len()));
        if verbose {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "Task {}: got {} bytes of poetry from {}",
                task.number,
                data.len(),
                cx.get_peer()
            );
        }
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        if let Some(timer) = self.timer.take() {
            let _ = timer.cancel(cx.reactor());
        }
        let outcome = if self.timed_out {
            Outcome::TimedOut
        } else if self.too_large {
            let limit = cx.factory().options.max_poem_bytes;
            Outcome::Incomplete(format!("the poem passed the {limit}-byte limit"))
        } else if reason.is_clean() {
            Outcome::Whole
        } else {
            Outcome::Incomplete(reason.to_string())
        };
        cx.factory().poem_finished(self.task, outcome, cx.reactor());
    }
}

/// Starts downloading from every address on `reactor`, one connection each, all at
/// once. Run the reactor; it stops (if `options.stop_when_done`) when every download
/// has ended, and the factory holds the results.
pub fn start(
    reactor: &mut Reactor,
    addresses: &[PoemAddress],
    options: ClientOptions,
) -> Shared<PoetryClientFactory> {
    let tasks = addresses
        .iter()
        .enumerate()
        .map(|(i, address)| Task {
            number: i + 1,
            address: address.clone(),
            poem: Vec::new(),
            outcome: Outcome::Pending,
            arrivals: Vec::new(),
            finished: None,
        })
        .collect();
    let factory = Shared::new(PoetryClientFactory {
        tasks,
        task_of: HashMap::new(),
        remaining: addresses.len(),
        started: reactor.now(),
        options,
    });
    if addresses.is_empty() && options.stop_when_done {
        reactor.call_when_running(|r| r.stop());
    }
    let connect = ConnectOptions {
        timeout: options.connect_timeout,
        bind_address: None,
    };
    for (i, address) in addresses.iter().enumerate() {
        let connector = connect_tcp(reactor, &address.host, address.port, &factory, connect);
        factory.borrow_mut().task_of.insert(connector.serial(), i);
    }
    factory
}

/// Downloads every poem on a reactor of its own and returns the tasks in address
/// order: the library face of `poetry-client`.
///
/// # Errors
///
/// [`reactor::ReactorError`] if the reactor cannot be created or polled.
///
/// # Examples
///
/// ```no_run
/// use poetry_client::{get_poetry, parse_address, ClientOptions};
///
/// let tasks = get_poetry(&[parse_address("10000")?], ClientOptions::default())?;
/// for task in tasks.iter().filter(|t| t.is_whole()) {
///     print!("{}", String::from_utf8_lossy(&task.poem));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn get_poetry(
    addresses: &[PoemAddress],
    options: ClientOptions,
) -> Result<Vec<Task>, reactor::ReactorError> {
    let mut reactor = Reactor::new()?;
    let factory = start(&mut reactor, addresses, options);
    reactor.run()?;
    let tasks = factory.borrow_mut().take_tasks();
    Ok(tasks)
}
