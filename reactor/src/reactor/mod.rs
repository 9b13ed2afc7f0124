//! The [`Reactor`]: the loop that waits for readiness and time, and dispatches.
//!
//! One idea per file: here the reactor itself, its construction, time
//! (`IReactorTime`) and the loop's life (`IReactorCore`); `slots.rs` the slot table
//! and ids; `fdset.rs` registration (`IReactorFDSet`); `dispatch.rs` turning
//! readiness into descriptor calls; `turn.rs` one turn of the loop.

mod dispatch;
mod fdset;
mod slots;
mod turn;

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, error, info};
use mio::{Events, Interest, Poll, Token, Waker};

use self::slots::Slot;
use crate::clock::{duration_to_nanos, Clock, SystemClock};
use crate::delayed_call::DelayedCall;
use crate::descriptor::{Descriptor, DescriptorId};
use crate::error::{ReactorError, TimerError};
use crate::handle::{ReactorHandle, ThreadCall};
use crate::local::{LocalHandle, LocalQueue};
use crate::timers::{TimerKey, TimerQueue};
use crate::Callback;

const WAKER_TOKEN: Token = Token(usize::MAX);
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);
/// Events taken from the operating system per poll.
const EVENTS_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Idle,
    Running,
    Stopping,
    ShutDown,
}

/// The event loop: Twisted's reactor (`IReactorCore`, `IReactorTime`, `IReactorFDSet`,
/// `IReactorThreads.callFromThread`).
///
/// It owns every registered [`Descriptor`] and every pending call. Callbacks receive
/// `&mut Reactor`, so anything the reactor can do, a callback can do, including
/// stopping it. See the crate documentation for the full picture and examples.
pub struct Reactor {
    /// This reactor's number in the process: every id it issues carries it.
    identity: u32,
    poll: Poll,
    events: Events,
    slots: Vec<Slot>,
    free_head: u32,
    descriptor_count: usize,
    /// Most descriptors held since the slot table was last compacted.
    peak_descriptors: usize,
    /// The last compaction left a crowd still leaving: compact again at its next
    /// quarter, even below the minimum peak.
    crowd_leaving: bool,
    /// Generation new slots start at: above every generation a truncated slot reached,
    /// so a stale id for a truncated slot never matches its successor.
    fresh_generation: u32,
    ready_queue: Vec<DescriptorId>,
    /// Inserted since the last poll, not yet registered with the poller.
    unregistered: Vec<DescriptorId>,
    pub(crate) timers: TimerQueue,
    soon: VecDeque<Callback>,
    when_running: Vec<Callback>,
    shutdown_triggers: Vec<Callback>,
    clock: Box<dyn Clock>,
    state: RunState,
    dispatching: bool,
    waker: Arc<Waker>,
    thread_calls: mpsc::Receiver<ThreadCall>,
    thread_sender: mpsc::Sender<ThreadCall>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// Calls queued through `LocalHandle`s, moved into `soon` each soon step.
    local: Rc<LocalQueue>,
    /// Calls for descriptors being dispatched, by slot index (see [`Reactor::deliver`]).
    deliveries: Vec<(u32, Delivery)>,
}

/// A call queued for a lifted descriptor.
type Delivery = Box<dyn FnOnce(&mut dyn Descriptor, &mut Reactor)>;

/// What [`Reactor::remove_descriptor`] did with the descriptor.
pub enum Removed {
    /// It was idle in its slot: here it is, its source deregistered from the poller.
    Descriptor(Box<dyn Descriptor>),
    /// One of its methods is running: it is dropped as soon as that method returns.
    WhileDispatched,
}

impl Removed {
    /// The descriptor, if it was handed back.
    pub fn into_descriptor(self) -> Option<Box<dyn Descriptor>> {
        match self {
            Removed::Descriptor(descriptor) => Some(descriptor),
            Removed::WhileDispatched => None,
        }
    }
}

impl std::fmt::Debug for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removed::Descriptor(d) => write!(f, "Removed::Descriptor({})", d.log_prefix()),
            Removed::WhileDispatched => f.write_str("Removed::WhileDispatched"),
        }
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("state", &self.state)
            .field("descriptors", &self.descriptor_count)
            .field("timers", &self.timers)
            .field("soon", &self.soon.len())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

// ===== construction =====

impl Reactor {
    /// A reactor on the real monotonic clock.
    ///
    /// # Errors
    ///
    /// [`ReactorError::Io`] if the operating system refuses a poll instance or waker.
    pub fn new() -> Result<Reactor, ReactorError> {
        Reactor::with_clock(SystemClock::new())
    }

    /// A reactor that reads time from `clock`, typically a
    /// [`ManualClock`](crate::ManualClock) in tests.
    ///
    /// # Errors
    ///
    /// [`ReactorError::Io`] if the operating system refuses a poll instance or waker.
    pub fn with_clock(clock: impl Clock + 'static) -> Result<Reactor, ReactorError> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let (thread_sender, thread_calls) = mpsc::channel();
        Ok(Reactor {
            identity: next_identity()?,
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            slots: Vec::new(),
            free_head: u32::MAX,
            descriptor_count: 0,
            peak_descriptors: 0,
            crowd_leaving: false,
            fresh_generation: 0,
            ready_queue: Vec::new(),
            unregistered: Vec::new(),
            timers: TimerQueue::new(),
            soon: VecDeque::new(),
            when_running: Vec::new(),
            shutdown_triggers: Vec::new(),
            clock: Box::new(clock),
            state: RunState::Idle,
            dispatching: false,
            waker,
            thread_calls,
            thread_sender,
            signals: None,
            local: Rc::default(),
            deliveries: Vec::new(),
        })
    }

    /// A thread-safe handle for [`call_from_thread`](ReactorHandle::call_from_thread)
    /// and stopping the reactor from other threads.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle::new(self.thread_sender.clone(), self.waker.clone())
    }

    /// A same-thread handle that queues calls for the next turn without `&mut Reactor`
    /// and without a system call (see [`LocalHandle`]).
    pub fn local_handle(&self) -> LocalHandle {
        LocalHandle::new(&self.local)
    }

    /// Makes SIGINT and SIGTERM stop the reactor cleanly (shutdown triggers run and
    /// every descriptor is told it was lost), as Twisted's `installSignalHandlers`.
    ///
    /// Not done by default: a library or test that runs reactors should not take over
    /// the process's signals unasked. The binaries call it before `run`.
    ///
    /// # Errors
    ///
    /// [`ReactorError::Io`] if the handlers cannot be installed.
    pub fn handle_signals(&mut self) -> Result<(), ReactorError> {
        if self.signals.is_some() {
            return Ok(());
        }
        let mut signals = signal_hook_mio::v1_0::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }
}

// ===== impl IReactorTime =====

impl Reactor {
    /// The time on the reactor's clock, since the clock's epoch (Twisted's
    /// `seconds()`; `now().as_secs_f64()` is the same number).
    #[doc(alias = "seconds")]
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The key of `call` in this reactor's timer queue, if it is this reactor's.
    pub(crate) fn own_timer(&self, call: DelayedCall) -> Result<TimerKey, TimerError> {
        if call.reactor == self.identity {
            Ok(call.key)
        } else {
            Err(TimerError::WrongReactor)
        }
    }

    pub(crate) fn deadline_after(&self, delay: Duration) -> u64 {
        duration_to_nanos(self.clock.now()).saturating_add(duration_to_nanos(delay))
    }

    /// Calls `f` once `delay` has passed (Twisted's `callLater`). Calls due at the same
    /// time run in the order they were scheduled; a call scheduled while due calls run
    /// waits for the next turn, even with a zero delay.
    #[doc(alias = "callLater")]
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Reactor) + 'static,
    ) -> DelayedCall {
        let deadline = self.deadline_after(delay);
        DelayedCall {
            reactor: self.identity,
            key: self.timers.insert(deadline, Box::new(f)),
        }
    }

    /// Calls `f` on the next turn of the loop, before waiting for I/O.
    pub fn call_soon(&mut self, f: impl FnOnce(&mut Reactor) + 'static) {
        self.soon.push_back(Box::new(f));
    }

    /// Calls `f` as soon as the reactor is running: at once (next turn) if it already
    /// is, else when [`run`](Self::run) starts, in registration order and before the
    /// first turn's timers and I/O (Twisted's `callWhenRunning`).
    #[doc(alias = "callWhenRunning")]
    pub fn call_when_running(&mut self, f: impl FnOnce(&mut Reactor) + 'static) {
        if self.state == RunState::Running {
            self.call_soon(f);
        } else {
            self.when_running.push(Box::new(f));
        }
    }

    /// Whether the next turn has work that does not wait for I/O: `call_soon` calls,
    /// remembered readiness, or `call_later` calls already due. The protocol crate's
    /// test pumps use it to tell when a reactor on a manual clock has settled; not
    /// part of the reactor's API.
    #[doc(hidden)]
    pub fn has_pending_work(&mut self) -> bool {
        if !self.soon.is_empty() || !self.ready_queue.is_empty() || self.local.has_calls() {
            return true;
        }
        let now = duration_to_nanos(self.clock.now());
        self.timers
            .next_deadline()
            .is_some_and(|deadline| deadline <= now)
    }

    /// How many `call_later` calls are pending.
    pub fn pending_calls(&self) -> usize {
        self.timers.len()
    }

    /// Bytes the reactor's own timer structures hold per pending call (not counting what
    /// the callbacks capture); reported by the timer benchmark.
    pub const TIMER_BYTES_PER_CALL: usize = TimerQueue::BYTES_PER_CALL;
}

// ===== impl IReactorCore =====

impl Reactor {
    /// Runs the loop until [`stop`](Self::stop) (Twisted's `run`), then shuts down:
    /// shutdown triggers run, then every descriptor still registered is told it was
    /// lost ([`LostReason::Shutdown`](crate::LostReason::Shutdown)).
    ///
    /// # Errors
    ///
    /// [`ReactorError::AlreadyRunning`] when called from inside the reactor's own
    /// callbacks; [`ReactorError::NotRestartable`] after a completed run;
    /// [`ReactorError::Io`] if polling fails (the reactor still shuts down).
    pub fn run(&mut self) -> Result<(), ReactorError> {
        match self.state {
            RunState::Running | RunState::Stopping => return Err(ReactorError::AlreadyRunning),
            RunState::ShutDown => return Err(ReactorError::NotRestartable),
            RunState::Idle => {}
        }
        if self.dispatching {
            return Err(ReactorError::AlreadyRunning);
        }
        self.state = RunState::Running;
        // Twisted fires its 'startup' event, and so the callWhenRunning calls, before
        // the first iteration: they run now, in order, before any timer or I/O.
        self.dispatching = true;
        for f in mem::take(&mut self.when_running) {
            self.run_callback(f, "when-running call");
        }
        self.dispatching = false;
        let mut result = Ok(());
        while self.state == RunState::Running {
            if let Err(e) = self.turn(None) {
                error!("reactor: polling failed: {e}");
                result = Err(e);
                break;
            }
        }
        self.shut_down();
        result
    }

    /// Asks the loop to stop after the current turn (Twisted's `stop`). Harmless when
    /// called twice, or when the reactor is not running.
    pub fn stop(&mut self) {
        match self.state {
            RunState::Running => {
                debug!("reactor: stop requested");
                self.state = RunState::Stopping;
            }
            _ => debug!(
                "reactor: stop requested while {:?}; nothing to do",
                self.state
            ),
        }
    }

    /// Whether [`run`](Self::run) is in progress and no stop was requested.
    pub fn is_running(&self) -> bool {
        self.state == RunState::Running
    }

    /// Registers `f` to run when the reactor shuts down, before descriptors are
    /// disconnected (Twisted's `addSystemEventTrigger('before', 'shutdown', f)`).
    #[doc(alias = "addSystemEventTrigger")]
    pub fn add_shutdown_trigger(&mut self, f: impl FnOnce(&mut Reactor) + 'static) {
        self.shutdown_triggers.push(Box::new(f));
    }

    /// Runs one turn of the loop without `run`: waits at most `timeout` (`None`: until
    /// something happens) for I/O, dispatches it, then runs due calls, calls from other
    /// threads and `call_soon` calls (Twisted's `iterate`). With a
    /// [`ManualClock`](crate::ManualClock), advance the clock and then `iterate(Some(Duration::ZERO))`.
    ///
    /// # Errors
    ///
    /// [`ReactorError::AlreadyRunning`] from inside a callback; [`ReactorError::Io`] if
    /// polling fails.
    pub fn iterate(&mut self, timeout: Option<Duration>) -> Result<(), ReactorError> {
        if self.dispatching {
            return Err(ReactorError::AlreadyRunning);
        }
        self.turn(timeout)
    }

    fn shut_down(&mut self) {
        info!("reactor: shutting down");
        for trigger in mem::take(&mut self.shutdown_triggers) {
            self.run_callback(trigger, "shutdown trigger");
        }
        // A descriptor's connection_lost may insert others (a reconnecting client);
        // they are told of the shutdown too, a bounded number of rounds.
        for _ in 0..16 {
            if self.descriptor_count == 0 {
                break;
            }
            self.disconnect_all();
        }
        self.state = RunState::ShutDown;
    }
}

/// Numbers reactors: ids carry the number of the reactor that issued them.
fn next_identity() -> Result<u32, ReactorError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        .map_err(|_| io::Error::other("more than 2^32 reactors created").into())
}

/// The text of a panic payload (`&str` or `String`), or a placeholder for other
/// types: what the reactor logs when it catches a panic. The layers above use it for
/// the panics they catch themselves, so every layer words them alike; not part of
/// the reactor's API.
#[doc(hidden)]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
