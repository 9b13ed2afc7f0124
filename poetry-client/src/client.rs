//! The client's protocol and factory: get-poetry 2.x, with the reason a connection
//! ended taken seriously.

use std::io::Write;
use std::time::Duration;

use deferred::{DeferredError, Failure};
use protocol::Shared;
use reactor::Reactor;

use crate::address::PoemAddress;
use crate::get::{download, Chunk, GetOptions, OnData, PoetryError};

/// How one download ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still downloading.
    Pending,
    /// The server closed cleanly: the poem arrived whole.
    Whole,
    /// The connection broke (reset, error): only part of the poem arrived.
    Incomplete(String),
    /// The server reset the connection before sending a byte: it refused us (a server
    /// at its connection cap resets), which is never mistaken for an empty poem.
    Refused(String),
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
    /// When bytes arrived (since the start) and how many: for `--timeline`. Empty
    /// unless [`ClientOptions::record_arrivals`]; bounded either way.
    pub arrivals: Arrivals,
    /// When it ended, since the start.
    pub finished: Option<Duration>,
}

/// When a download's bytes arrived: at most [`Arrivals::MAX_RECORDS`] records of
/// `(time since the start, bytes)`, whatever the number of reads. Reads closer together
/// than the current granularity share a record; when the records fill up, neighbours
/// are merged in pairs and the granularity doubles. So a server sending one byte per
/// packet costs the client a few kilobytes here, not 24 bytes per byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arrivals {
    records: Vec<(Duration, usize)>,
    granularity: Duration,
}

impl Arrivals {
    /// The most records kept.
    pub const MAX_RECORDS: usize = 1024;

    /// The records, oldest first: when each group of reads began, and its bytes.
    pub fn records(&self) -> &[(Duration, usize)] {
        &self.records
    }

    /// Two reads closer together than this share a record (zero until the records
    /// first fill up).
    pub fn granularity(&self) -> Duration {
        self.granularity
    }

    /// Records `bytes` arriving at `at` (times never go backwards).
    pub fn push(&mut self, at: Duration, bytes: usize) {
        if let Some(last) = self.records.last_mut() {
            if at.saturating_sub(last.0) <= self.granularity {
                last.1 += bytes;
                return;
            }
        }
        if self.records.len() == Self::MAX_RECORDS {
            self.halve();
        }
        self.records.push((at, bytes));
        debug_assert!(self.records.len() <= Self::MAX_RECORDS);
    }

    /// Merges neighbours in pairs and doubles the granularity.
    fn halve(&mut self) {
        let merged: Vec<(Duration, usize)> = self
            .records
            .chunks(2)
            .map(|pair| (pair[0].0, pair.iter().map(|r| r.1).sum()))
            .collect();
        self.records = merged;
        self.granularity = (self.granularity * 2).max(Duration::from_millis(1));
    }
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
    /// Keep [`Task::arrivals`] (for `--timeline`); off, no per-read record is kept.
    pub record_arrivals: bool,
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
            record_arrivals: false,
        }
    }
}

/// Where the factory says what happens as it happens (today: a connection that
/// failed, the tutorial's `Failed to connect to:` line).
pub type Notifier = Box<dyn FnMut(&str)>;

/// Every task's state, shared by their downloads: what the tutorial's
/// `PoetryClientFactory` holds. Each download is a [`get_poetry`](crate::get_poetry)
/// Deferred ([`download`]); this records its bytes as they arrive and its outcome
/// when it fires.
pub struct PoetryClientFactory {
    tasks: Vec<Task>,
    remaining: usize,
    started: Duration,
    options: ClientOptions,
    notify: Notifier,
}

impl std::fmt::Debug for PoetryClientFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoetryClientFactory")
            .field("tasks", &self.tasks)
            .field("remaining", &self.remaining)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
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

    /// Sends the messages said as things happen (a failed connection) to `notify`
    /// instead of stderr: a live display prints them above itself.
    pub fn set_notifier(&mut self, notify: Notifier) {
        self.notify = notify;
    }

    /// Bytes of a task arrived: keep them, and note them for `--timeline` and
    /// `--verbose`.
    fn received(&mut self, task: usize, chunk: Chunk<'_>) {
        let at = chunk.at.saturating_sub(self.started);
        let ClientOptions {
            verbose,
            record_arrivals,
            ..
        } = self.options;
        let Some(task) = self.tasks.get_mut(task) else {
            return;
        };
        task.poem.extend_from_slice(chunk.data);
        if record_arrivals {
            task.arrivals.push(at, chunk.data.len());
        }
        if verbose {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "Task {}: got {} bytes of poetry from {}",
                task.number,
                chunk.data.len(),
                chunk.peer
            );
        }
    }

    /// A task's download fired: record how it ended (the tutorial's `poem_finished`),
    /// and tell of a failed connection.
    fn poem_finished(&mut self, task: usize, outcome: Outcome) {
        let Some(entry) = self.tasks.get_mut(task) else {
            return;
        };
        if entry.outcome != Outcome::Pending {
            return;
        }
        if let Outcome::Failed(reason) = &outcome {
            let message = format!("Failed to connect to: {} ({reason})", entry.address);
            entry.outcome = outcome;
            (self.notify)(&message);
        } else {
            entry.outcome = outcome;
        }
        self.remaining -= 1;
    }

    /// On the turn after a task ended: its time, and the reactor stopped after the
    /// last one.
    fn poem_timed(&mut self, task: usize, reactor: &mut Reactor) {
        let now = reactor.now().saturating_sub(self.started);
        if let Some(task) = self.tasks.get_mut(task) {
            task.finished.get_or_insert(now);
        }
        if self.remaining == 0 && self.options.stop_when_done {
            reactor.stop();
        }
    }
}

/// How a download's result reads as an [`Outcome`].
fn outcome_of(result: Result<u64, Failure>) -> Outcome {
    let failure = match result {
        Ok(_) => return Outcome::Whole,
        Err(failure) => failure,
    };
    if let Some(error) = failure.downcast_ref::<PoetryError>() {
        return match error {
            PoetryError::Connect(reason) => Outcome::Failed(reason.clone()),
            PoetryError::Refused(reason) => Outcome::Refused(reason.clone()),
            PoetryError::Incomplete { reason, .. } => Outcome::Incomplete(reason.clone()),
            too_large => Outcome::Incomplete(too_large.to_string()),
        };
    }
    match failure.downcast_ref::<DeferredError>() {
        Some(DeferredError::TimedOut(_)) => Outcome::TimedOut,
        _ => Outcome::Incomplete(failure.to_string()),
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
            arrivals: Arrivals::default(),
            finished: None,
        })
        .collect();
    let factory = Shared::new(PoetryClientFactory {
        tasks,
        remaining: addresses.len(),
        started: reactor.now(),
        options,
        notify: Box::new(|message| {
            // A closed or full stderr has no one to tell.
            let _ = writeln!(std::io::stderr(), "{message}");
        }),
    });
    if addresses.is_empty() && options.stop_when_done {
        reactor.call_when_running(|r| r.stop());
    }
    let get = GetOptions {
        connect_timeout: options.connect_timeout,
        max_poem_bytes: options.max_poem_bytes,
    };
    for (i, address) in addresses.iter().enumerate() {
        let sink = factory.clone();
        let on_data: OnData = Box::new(move |chunk| sink.borrow_mut().received(i, chunk));
        let mut poem = download(reactor, address, get, on_data);
        if let Some(timeout) = options.timeout {
            poem = poem.add_timeout(reactor, timeout);
        }
        let (done, local) = (factory.clone(), reactor.local_handle());
        drop(poem.add_both(move |result| {
            // Recorded now, even if the reactor is shutting down; timed next turn.
            done.borrow_mut().poem_finished(i, outcome_of(result));
            let _ = local.call_soon(move |r| done.borrow_mut().poem_timed(i, r));
            Ok::<_, Failure>(())
        }));
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
/// use poetry_client::{download_all, parse_address, ClientOptions};
///
/// let tasks = download_all(&[parse_address("10000")?], ClientOptions::default())?;
/// for task in tasks.iter().filter(|t| t.is_whole()) {
///     print!("{}", String::from_utf8_lossy(&task.poem));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn download_all(
    addresses: &[PoemAddress],
    options: ClientOptions,
) -> Result<Vec<Task>, reactor::ReactorError> {
    let mut reactor = Reactor::new()?;
    let factory = start(&mut reactor, addresses, options);
    reactor.run()?;
    let tasks = factory.borrow_mut().take_tasks();
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_stay_bounded_and_keep_every_byte() {
        // One byte per read, a microsecond apart: a million reads, 1024 records.
        let mut arrivals = Arrivals::default();
        for i in 0..1_000_000u64 {
            arrivals.push(Duration::from_micros(i), 1);
            assert!(arrivals.records().len() <= Arrivals::MAX_RECORDS);
        }
        let records = arrivals.records();
        assert_eq!(records.iter().map(|r| r.1).sum::<usize>(), 1_000_000);
        assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "out of order");
        // Coalesced, but still spread over the whole second.
        assert!(
            records.len() > Arrivals::MAX_RECORDS / 4,
            "{}",
            records.len()
        );
        assert!(records.last().unwrap().0 > Duration::from_millis(900));
        assert!(arrivals.granularity() >= Duration::from_millis(1));
    }

    #[test]
    fn arrivals_far_apart_keep_a_record_each() {
        let mut arrivals = Arrivals::default();
        for i in 0..100u64 {
            arrivals.push(Duration::from_millis(20 * i), 10);
        }
        assert_eq!(arrivals.records().len(), 100);
        assert_eq!(arrivals.granularity(), Duration::ZERO);
    }
}
