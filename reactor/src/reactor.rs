//! The [`Reactor`]: the loop that waits for readiness and time, and dispatches.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, error, info, trace};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::clock::{duration_to_nanos, Clock, SystemClock};
use crate::delayed_call::DelayedCall;
use crate::descriptor::{Descriptor, DescriptorId, IoStatus, LostReason};
use crate::error::{ReactorError, TimerError};
use crate::handle::{ReactorHandle, ThreadCall};
use crate::local::{LocalHandle, LocalQueue};
use crate::timers::{TimerKey, TimerQueue};
use crate::Callback;

const WAKER_TOKEN: Token = Token(usize::MAX);
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);
/// Events taken from the operating system per poll.
const EVENTS_CAPACITY: usize = 1024;

enum SlotState {
    /// Free; the index of the next free slot (or `u32::MAX`).
    Vacant(u32),
    Present(Box<dyn Descriptor>),
    /// Out of its slot while one of its methods runs; its concrete type, so that
    /// [`Reactor::deliver`] can check it.
    Lifted(TypeId),
    /// Removed while lifted: dropped when its method returns (after its deliveries).
    LiftedRemoved,
    /// Its generations are used up: never used again, so no stale id can match.
    Retired,
}

struct Slot {
    generation: u32,
    state: SlotState,
    reading: bool,
    writing: bool,
    read_ready: bool,
    write_ready: bool,
    /// Already in the ready queue for the next turn.
    queued: bool,
    /// Registered with the poller (done lazily, just before the next poll).
    registered: bool,
}

impl Slot {
    /// A slot in `state`, with no interest or readiness yet.
    fn new(generation: u32, state: SlotState) -> Slot {
        Slot {
            generation,
            state,
            reading: false,
            writing: false,
            read_ready: false,
            write_ready: false,
            queued: false,
            registered: false,
        }
    }

    /// Whether the descriptor `id` names is here (in its slot or being dispatched).
    fn holds(&self, id: DescriptorId) -> bool {
        self.generation == id.generation
            && matches!(self.state, SlotState::Present(_) | SlotState::Lifted(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

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

// ===== impl IReactorFDSet =====

impl Reactor {
    /// Takes ownership of `descriptor`, with no interest yet: follow with
    /// [`add_reader`](Self::add_reader) and/or [`add_writer`](Self::add_writer). Its
    /// source is registered with the poller just before the next poll; if the poller
    /// refuses it then, the descriptor is removed and told so through
    /// `connection_lost` ([`LostReason::Error`]).
    ///
    /// # Errors
    ///
    /// [`ReactorError::Io`] if the reactor already holds 2^32 - 3 descriptors; the
    /// descriptor is dropped.
    pub fn insert(
        &mut self,
        descriptor: Box<dyn Descriptor>,
    ) -> Result<DescriptorId, ReactorError> {
        self.insert_with(|_| descriptor)
    }

    /// As [`insert`](Self::insert), for a descriptor that needs its own id: `make`
    /// receives the id the descriptor will have and builds it (the vacant-entry
    /// pattern), so the descriptor knows its id before any of its methods runs.
    ///
    /// # Errors
    ///
    /// [`ReactorError::Io`] if the reactor already holds 2^32 - 3 descriptors; `make`
    /// is not called.
    pub fn insert_with(
        &mut self,
        make: impl FnOnce(DescriptorId) -> Box<dyn Descriptor>,
    ) -> Result<DescriptorId, ReactorError> {
        let index = self.vacant_slot()?;
        let slot = &mut self.slots[index as usize];
        let id = DescriptorId {
            reactor: self.identity,
            index,
            generation: slot.generation,
        };
        let SlotState::Vacant(next) = slot.state else {
            unreachable!("free list points at an occupied slot");
        };
        self.free_head = next;
        *slot = Slot::new(slot.generation, SlotState::Present(make(id)));
        self.descriptor_count += 1;
        self.peak_descriptors = self.peak_descriptors.max(self.descriptor_count);
        // Registered with the poller just before the next poll, not now: a descriptor
        // that finishes within this turn (a short reply, then close) costs no
        // epoll_ctl at all. Edge-triggered registration reports readiness that is
        // already there, so nothing is missed.
        self.unregistered.push(id);
        trace!("inserted descriptor {id}");
        Ok(id)
    }

    /// The index of a vacant slot: the head of the free list, or a new slot.
    fn vacant_slot(&mut self) -> Result<u32, ReactorError> {
        if self.free_head != u32::MAX {
            return Ok(self.free_head);
        }
        let index = u32::try_from(self.slots.len())
            .ok()
            .filter(|i| *i < u32::MAX - 2)
            .ok_or_else(|| io::Error::other("too many descriptors"))?;
        debug_assert!(self.fresh_generation < u32::MAX);
        let slot = Slot::new(self.fresh_generation, SlotState::Vacant(u32::MAX));
        self.slots.push(slot);
        self.free_head = index;
        Ok(index)
    }

    fn slot_mut(&mut self, id: DescriptorId) -> Result<&mut Slot, ReactorError> {
        if id.reactor != self.identity {
            return Err(ReactorError::WrongReactor(id));
        }
        self.slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.holds(id))
            .ok_or(ReactorError::UnknownDescriptor(id))
    }

    fn set_interest(
        &mut self,
        id: DescriptorId,
        dir: Direction,
        on: bool,
    ) -> Result<(), ReactorError> {
        let slot = self.slot_mut(id)?;
        let ready = match dir {
            Direction::Read => {
                slot.reading = on;
                slot.read_ready
            }
            Direction::Write => {
                slot.writing = on;
                slot.write_ready
            }
        };
        if on && ready && !slot.queued {
            // Readiness seen earlier (maybe while paused) is not lost: serve it next turn.
            slot.queued = true;
            self.ready_queue.push(id);
        }
        Ok(())
    }

    /// Starts calling the descriptor's `do_read` when it is readable (Twisted's
    /// `addReader`). Readiness that arrived while it was not reading is served on the
    /// next turn.
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownDescriptor`] if `id` is stale.
    #[doc(alias = "addReader")]
    pub fn add_reader(&mut self, id: DescriptorId) -> Result<(), ReactorError> {
        self.set_interest(id, Direction::Read, true)
    }

    /// Starts calling the descriptor's `do_write` when it is writable (Twisted's
    /// `addWriter`).
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownDescriptor`] if `id` is stale.
    #[doc(alias = "addWriter")]
    pub fn add_writer(&mut self, id: DescriptorId) -> Result<(), ReactorError> {
        self.set_interest(id, Direction::Write, true)
    }

    /// Stops calling `do_read` (Twisted's `removeReader`); the descriptor stays
    /// registered, and its readiness is remembered.
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownDescriptor`] if `id` is stale.
    #[doc(alias = "removeReader")]
    pub fn remove_reader(&mut self, id: DescriptorId) -> Result<(), ReactorError> {
        self.set_interest(id, Direction::Read, false)
    }

    /// Stops calling `do_write` (Twisted's `removeWriter`).
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownDescriptor`] if `id` is stale.
    #[doc(alias = "removeWriter")]
    pub fn remove_writer(&mut self, id: DescriptorId) -> Result<(), ReactorError> {
        self.set_interest(id, Direction::Write, false)
    }

    /// Marks the descriptor readable and/or writable as if the operating system had
    /// reported it, for sources the OS knows nothing of (in-memory streams in tests,
    /// user-space queues). It is served on the next turn if it is interested.
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownDescriptor`] if `id` is stale.
    pub fn set_ready(
        &mut self,
        id: DescriptorId,
        readable: bool,
        writable: bool,
    ) -> Result<(), ReactorError> {
        let slot = self.slot_mut(id)?;
        slot.read_ready |= readable;
        slot.write_ready |= writable;
        let wanted = (slot.reading && slot.read_ready) || (slot.writing && slot.write_ready);
        if wanted && !slot.queued {
            slot.queued = true;
            self.ready_queue.push(id);
        }
        Ok(())
    }

    /// Whether the descriptor is a reader.
    pub fn is_reading(&self, id: DescriptorId) -> bool {
        self.live_slot(id).is_some_and(|s| s.reading)
    }

    /// Whether the descriptor is a writer.
    pub fn is_writing(&self, id: DescriptorId) -> bool {
        self.live_slot(id).is_some_and(|s| s.writing)
    }

    /// Whether `id` still names a registered descriptor.
    pub fn contains(&self, id: DescriptorId) -> bool {
        self.live_slot(id).is_some()
    }

    fn live_slot(&self, id: DescriptorId) -> Option<&Slot> {
        if id.reactor != self.identity {
            return None;
        }
        self.slots.get(id.index as usize).filter(|s| s.holds(id))
    }

    /// Slots in the descriptor table, in use or free: it shrinks again after most
    /// descriptors are gone.
    #[cfg(test)]
    fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// How many descriptors are registered.
    pub fn descriptor_count(&self) -> usize {
        self.descriptor_count
    }

    /// Removes a descriptor at once: it receives no further events, even later in the
    /// current batch, and `id` becomes stale. Its `connection_lost` is not called: the
    /// remover decides what to tell it.
    ///
    /// A descriptor idle in its slot is handed back ([`Removed::Descriptor`]). One
    /// whose method is running right now (it removed itself, or code it called did)
    /// cannot be: it is dropped as soon as that method returns, after any
    /// [`deliver`](Self::deliver) calls queued for it ([`Removed::WhileDispatched`]).
    /// Either way it is out of the reactor when this returns.
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownDescriptor`] if `id` is stale.
    pub fn remove_descriptor(&mut self, id: DescriptorId) -> Result<Removed, ReactorError> {
        self.take(id, true)
    }

    /// Removes a descriptor from its slot; deregisters its source only if asked (a
    /// descriptor about to be dropped need not be: closing its source removes it from
    /// the poller).
    fn take(&mut self, id: DescriptorId, deregister: bool) -> Result<Removed, ReactorError> {
        let slot = self.slot_mut(id)?;
        // Live generations are below u32::MAX (see `free_slot`): no wrap.
        slot.generation += 1;
        slot.reading = false;
        slot.writing = false;
        let registered = mem::replace(&mut slot.registered, false);
        let state = mem::replace(&mut slot.state, SlotState::LiftedRemoved);
        self.descriptor_count -= 1;
        match state {
            SlotState::Present(mut descriptor) => {
                if deregister && registered {
                    self.deregister(descriptor.as_mut());
                }
                self.free_slot(id.index);
                trace!("removed descriptor {id}");
                Ok(Removed::Descriptor(descriptor))
            }
            _ => {
                trace!("descriptor {id} removed while dispatched");
                Ok(Removed::WhileDispatched)
            }
        }
    }

    /// Registers with the poller every descriptor inserted since the last poll that
    /// is still there; one the poller refuses is lost with the error.
    fn register_pending(&mut self) {
        for id in mem::take(&mut self.unregistered) {
            let Some(slot) = self.slots.get_mut(id.index as usize) else {
                continue;
            };
            if slot.generation != id.generation || slot.registered {
                continue;
            }
            let SlotState::Present(descriptor) = &mut slot.state else {
                continue;
            };
            let registry = self.poll.registry();
            let interest = Interest::READABLE | Interest::WRITABLE;
            let source = descriptor.source();
            let registered = match registry.register(source, id.token(), interest) {
                // Handed over by a descriptor that was registered and dropped (a
                // finished connect handing its socket to the connection): the
                // registration is moved to this descriptor's token.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    registry.reregister(source, id.token(), interest)
                }
                other => other,
            };
            match registered {
                Ok(()) => slot.registered = true,
                Err(e) => self.lose(id, LostReason::Error(e)),
            }
        }
    }

    /// Removes every descriptor and calls `connection_lost` on each with
    /// [`LostReason::Shutdown`]: what the reactor does as it shuts down (Twisted's
    /// `disconnectAll`; its `removeAll` hands them back untold instead: take one back
    /// with [`remove_descriptor`](Self::remove_descriptor)). A descriptor that calls
    /// this from inside its own callback is removed too, but, being lifted, is not
    /// told: it knows.
    #[doc(alias = "disconnectAll", alias = "removeAll")]
    pub fn disconnect_all(&mut self) {
        for id in self.live_ids() {
            self.lose(id, LostReason::Shutdown);
        }
    }

    fn live_ids(&self) -> Vec<DescriptorId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.state, SlotState::Present(_) | SlotState::Lifted(_)))
            .map(|(index, s)| DescriptorId {
                reactor: self.identity,
                index: index as u32,
                generation: s.generation,
            })
            .collect()
    }

    fn deregister(&mut self, descriptor: &mut dyn Descriptor) {
        if let Err(e) = self.poll.registry().deregister(descriptor.source()) {
            debug!("deregistering {}: {e}", descriptor.log_prefix());
        }
    }

    /// Puts an emptied slot on the free list, or retires it once its generations are
    /// used up: a stale id can then never match a later occupant, however long the
    /// process runs.
    fn free_slot(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.queued = false;
        if slot.generation == u32::MAX {
            debug!("reactor: slot {index} retired, its generations used up");
            slot.state = SlotState::Retired;
            return;
        }
        slot.state = SlotState::Vacant(self.free_head);
        self.free_head = index;
    }

    /// Lends the descriptor `id`, as its concrete type `D`, to `f` together with the
    /// reactor: how a timer or another descriptor reaches a registered descriptor.
    ///
    /// The descriptor is lifted out of its slot while `f` runs (so `f` may use the
    /// reactor freely, and may remove the descriptor). Returns `None`, without calling
    /// `f`, if `id` is stale, the descriptor is not a `D`, or it is being dispatched
    /// right now (use [`deliver`](Self::deliver) to reach it then).
    ///
    /// # Panics
    ///
    /// If `f` panics; the descriptor is put back first.
    pub fn with_descriptor<D: Descriptor, R>(
        &mut self,
        id: DescriptorId,
        f: impl FnOnce(&mut D, &mut Reactor) -> R,
    ) -> Option<R> {
        let slot = self.slot_mut(id).ok()?;
        match &slot.state {
            SlotState::Present(d) if (d.as_ref() as &dyn Any).is::<D>() => {}
            _ => return None,
        }
        let mut descriptor = self.lift(id);
        let concrete = (descriptor.as_mut() as &mut dyn Any)
            .downcast_mut::<D>()
            .expect("type checked above");
        // If `f` panics, the descriptor still goes back to its slot before the panic
        // carries on: otherwise it would be dropped and leave its slot lifted forever.
        let result = panic::catch_unwind(AssertUnwindSafe(|| f(concrete, self)));
        self.put_back(id, descriptor);
        match result {
            Ok(result) => Some(result),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Calls `f` with the descriptor `id`, as its concrete type `D`: at once if it is
    /// idle in its slot (as [`with_descriptor`](Self::with_descriptor)), or, if one of
    /// its methods is running right now, as soon as that method returns, before
    /// anything else happens to it, and even if that method removed it (`f` then sees
    /// it just before it is dropped). Deliveries queued during one dispatch run in
    /// the order they were made.
    ///
    /// This is how code called *from* a descriptor's callback reaches that same
    /// descriptor (a listener told to stop by the connection it just accepted).
    /// Returns whether `f` was run or queued: `false` if `id` is stale or the
    /// descriptor is not a `D`. A panic in a queued `f` is caught and logged.
    ///
    /// # Panics
    ///
    /// If `f` panics while run at once; the descriptor is put back first.
    pub fn deliver<D: Descriptor>(
        &mut self,
        id: DescriptorId,
        f: impl FnOnce(&mut D, &mut Reactor) + 'static,
    ) -> bool {
        let Ok(slot) = self.slot_mut(id) else {
            return false;
        };
        match slot.state {
            SlotState::Lifted(type_id) if type_id == TypeId::of::<D>() => {
                self.deliveries.push((
                    id.index,
                    Box::new(move |descriptor, reactor| {
                        if let Some(d) = (descriptor as &mut dyn Any).downcast_mut::<D>() {
                            f(d, reactor);
                        }
                    }),
                ));
                true
            }
            SlotState::Present(_) => self.with_descriptor::<D, _>(id, f).is_some(),
            _ => false,
        }
    }

    /// Lifts a present descriptor out of its slot for one of its methods (or `f`).
    fn lift(&mut self, id: DescriptorId) -> Box<dyn Descriptor> {
        let slot = &mut self.slots[id.index as usize];
        let type_id = match &slot.state {
            SlotState::Present(d) => (d.as_ref() as &dyn Any).type_id(),
            _ => unreachable!("lift of a descriptor that is not present"),
        };
        let SlotState::Present(descriptor) =
            mem::replace(&mut slot.state, SlotState::Lifted(type_id))
        else {
            unreachable!("checked above")
        };
        descriptor
    }

    /// Returns a lifted descriptor to its slot, or drops it if it was removed
    /// meanwhile; deliveries queued for it while it was lifted run first.
    fn put_back(&mut self, id: DescriptorId, mut descriptor: Box<dyn Descriptor>) {
        self.run_deliveries(id.index, descriptor.as_mut());
        let slot = &mut self.slots[id.index as usize];
        match slot.state {
            SlotState::Lifted(_) => slot.state = SlotState::Present(descriptor),
            SlotState::LiftedRemoved => {
                // Dropped right here: closing its source removes it from the poller.
                drop(descriptor);
                self.free_slot(id.index);
            }
            _ => unreachable!("lifted slot {id} was reused while lifted"),
        }
    }

    /// Runs the deliveries queued for the lifted descriptor in slot `index`, including
    /// those its deliveries queue.
    fn run_deliveries(&mut self, index: u32, descriptor: &mut dyn Descriptor) {
        while let Some(at) = self.deliveries.iter().position(|(i, _)| *i == index) {
            let (_, f) = self.deliveries.remove(at);
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(descriptor, self))) {
                error!(
                    "delivery to {} panicked: {}",
                    descriptor.log_prefix(),
                    panic_message(payload.as_ref())
                );
            }
        }
    }

    /// Removes the descriptor and tells it why through `connection_lost`.
    fn lose(&mut self, id: DescriptorId, reason: LostReason) {
        let Ok(Removed::Descriptor(mut descriptor)) = self.take(id, false) else {
            return;
        };
        debug!("{} {id} lost: {reason}", descriptor.log_prefix());
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            descriptor.connection_lost(self, id, reason);
        }));
        if let Err(payload) = outcome {
            error!(
                "{} {id} panicked in connection_lost: {}",
                descriptor.log_prefix(),
                panic_message(payload.as_ref())
            );
        }
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
    /// lost ([`LostReason::Shutdown`]).
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

    /// One turn: poll, dispatch I/O, serve remembered readiness, run due calls.
    fn turn(&mut self, max_wait: Option<Duration>) -> Result<(), ReactorError> {
        self.dispatching = true;
        let result = self.turn_inner(max_wait);
        self.dispatching = false;
        result
    }

    fn poll_timeout(&mut self, max_wait: Option<Duration>) -> Option<Duration> {
        if !self.soon.is_empty()
            || !self.ready_queue.is_empty()
            || self.local.has_calls()
            || self.state == RunState::Stopping
        {
            return Some(Duration::ZERO);
        }
        let until_timer = self.timers.next_deadline().and_then(|deadline| {
            let now = duration_to_nanos(self.clock.now());
            let wait = Duration::from_nanos(deadline.saturating_sub(now));
            // A manual clock moves only when told: never sleep waiting for it.
            (!self.clock.is_manual() || wait.is_zero()).then_some(wait)
        });
        match (until_timer, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn turn_inner(&mut self, max_wait: Option<Duration>) -> Result<(), ReactorError> {
        self.register_pending();
        let timeout = self.poll_timeout(max_wait);
        let mut events = mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = match self.poll.poll(&mut events, timeout) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            Err(e) => Err(ReactorError::Io(e)),
        };
        // Readiness remembered from earlier turns is served after this poll's events.
        // Whatever gets queued from here on (a descriptor answering `Ready`, an
        // `add_reader` finding remembered readiness) waits for the next turn, so a
        // descriptor is called at most once per direction per turn.
        let mut carried = Vec::new();
        if polled.is_ok() {
            carried = mem::take(&mut self.ready_queue);
            for event in events.iter() {
                match event.token() {
                    WAKER_TOKEN => {}
                    SIGNAL_TOKEN => self.read_signals(),
                    token => {
                        let id = DescriptorId::from_token(token, self.identity);
                        self.on_event(id, event);
                    }
                }
            }
        }
        self.events = events;
        polled?;
        self.serve_ready_queue(carried);
        self.run_due_calls();
        self.run_thread_calls();
        self.run_soon_calls();
        self.compact_if_emptied();
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(())
    }

    /// Checks, in debug builds after every turn, the invariants of the slot table and
    /// the queues that the code relies on.
    #[cfg(debug_assertions)]
    fn check_invariants(&self) {
        let mut present = 0;
        let mut vacant = 0;
        for (index, slot) in self.slots.iter().enumerate() {
            match slot.state {
                SlotState::Present(_) => present += 1,
                SlotState::Vacant(_) => vacant += 1,
                SlotState::Retired => assert_eq!(slot.generation, u32::MAX, "slot {index}"),
                SlotState::Lifted(_) | SlotState::LiftedRemoved => {
                    panic!("slot {index} still lifted between turns")
                }
            }
            if !matches!(slot.state, SlotState::Present(_)) {
                assert!(
                    !slot.queued && !slot.reading && !slot.writing,
                    "slot {index}"
                );
            }
            if !matches!(slot.state, SlotState::Retired) {
                assert!(
                    slot.generation < u32::MAX,
                    "slot {index}: generation used up"
                );
            }
        }
        assert_eq!(present, self.descriptor_count, "descriptor count");
        // The free list holds every vacant slot once, and nothing else.
        let (mut next, mut on_list) = (self.free_head, 0);
        while next != u32::MAX {
            let SlotState::Vacant(after) = self.slots[next as usize].state else {
                panic!("free list reaches occupied slot {next}");
            };
            on_list += 1;
            assert!(on_list <= vacant, "free list loops");
            next = after;
        }
        assert_eq!(on_list, vacant, "vacant slots off the free list");
        // A queued slot is in the ready queue under its current id, once; the queue
        // may also hold stale ids (removed since), which are skipped.
        for (index, slot) in self.slots.iter().enumerate() {
            let entries = self
                .ready_queue
                .iter()
                .filter(|id| id.index as usize == index && slot.holds(**id))
                .count();
            assert_eq!(
                entries,
                usize::from(slot.queued),
                "slot {index} in the ready queue"
            );
        }
        assert!(
            self.deliveries.is_empty(),
            "deliveries outlived their dispatch"
        );
    }

    /// After most descriptors are gone (a quarter of a peak of at least
    /// [`COMPACT_MIN_PEAK`]), gives their memory back: trailing free slots are dropped,
    /// the queues shrink, and the allocator is asked to return free pages to the
    /// system, so a server's memory falls back after a crowd of clients leaves.
    fn compact_if_emptied(&mut self) {
        if self.peak_descriptors < COMPACT_MIN_PEAK
            || self.descriptor_count > self.peak_descriptors / 4
        {
            return;
        }
        self.peak_descriptors = self.descriptor_count;
        let keep = self
            .slots
            .iter()
            .rposition(|s| !matches!(s.state, SlotState::Vacant(_)))
            .map_or(0, |i| i + 1);
        for slot in &self.slots[keep..] {
            self.fresh_generation = self.fresh_generation.max(slot.generation);
        }
        self.slots.truncate(keep);
        self.slots.shrink_to_fit();
        // Rebuild the free list, lowest index first, so the table stays compact.
        self.free_head = u32::MAX;
        for index in (0..keep).rev() {
            if let SlotState::Vacant(_) = self.slots[index].state {
                self.slots[index].state = SlotState::Vacant(self.free_head);
                self.free_head = index as u32;
            }
        }
        self.ready_queue.shrink_to_fit();
        self.unregistered.shrink_to_fit();
        debug!("reactor: compacted the slot table to {keep} slots");
        release_free_memory();
    }

    fn read_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let received: Vec<i32> = signals.pending().collect();
        for signal in received {
            info!("reactor: received signal {signal}, stopping");
            self.stop();
        }
    }

    fn on_event(&mut self, id: DescriptorId, event: &mio::event::Event) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return; // meant for an earlier occupant of the slot
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            slot.read_ready = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            slot.write_ready = true;
        }
        if slot.queued {
            // Already due this turn or the next from remembered readiness: served
            // from the ready queue, not twice.
            return;
        }
        self.service(id);
    }

    fn serve_ready_queue(&mut self, queue: Vec<DescriptorId>) {
        for &id in &queue {
            if let Some(slot) = self.slots.get_mut(id.index as usize) {
                if slot.generation == id.generation {
                    slot.queued = false;
                    self.service(id);
                }
            }
        }
        // Keep the allocation when nothing was queued meanwhile.
        if self.ready_queue.is_empty() {
            self.ready_queue = queue;
            self.ready_queue.clear();
        }
    }

    /// Dispatches whatever the descriptor is both interested in and ready for.
    fn service(&mut self, id: DescriptorId) {
        for dir in [Direction::Read, Direction::Write] {
            let Some(slot) = self.live_slot(id) else {
                return;
            };
            let wanted = match dir {
                Direction::Read => slot.reading && slot.read_ready,
                Direction::Write => slot.writing && slot.write_ready,
            };
            if wanted && matches!(slot.state, SlotState::Present(_)) {
                self.dispatch(id, dir);
            }
        }
    }

    fn dispatch(&mut self, id: DescriptorId, dir: Direction) {
        let mut descriptor = self.lift(id);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| match dir {
            Direction::Read => descriptor.do_read(self, id),
            Direction::Write => descriptor.do_write(self, id),
        }));
        self.put_back(id, descriptor);
        let reason = match outcome {
            Ok(Ok(status)) => {
                self.note_status(id, dir, status);
                return;
            }
            Ok(Err(e)) => LostReason::Error(e),
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                error!("descriptor {id} panicked in {dir:?} dispatch: {msg}");
                LostReason::Panicked(msg)
            }
        };
        self.lose(id, reason);
    }

    fn note_status(&mut self, id: DescriptorId, dir: Direction, status: IoStatus) {
        let Ok(slot) = self.slot_mut(id) else {
            return;
        };
        let (interested, ready) = match dir {
            Direction::Read => (slot.reading, &mut slot.read_ready),
            Direction::Write => (slot.writing, &mut slot.write_ready),
        };
        match status {
            IoStatus::WouldBlock => *ready = false,
            IoStatus::Ready => {
                if interested && !slot.queued {
                    slot.queued = true;
                    self.ready_queue.push(id);
                }
            }
        }
    }

    fn run_callback(&mut self, f: Callback, what: &str) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(self))) {
            error!("{what} panicked: {}", panic_message(payload.as_ref()));
        }
    }

    fn run_due_calls(&mut self) {
        if self.timers.len() == 0 {
            return;
        }
        let now = duration_to_nanos(self.clock.now());
        let limit = self.timers.next_seq();
        while let Some(f) = self.timers.pop_due(now, limit) {
            self.run_callback(f, "delayed call");
        }
        self.timers.end_step();
    }

    fn run_thread_calls(&mut self) {
        // Only the calls queued by now, as Twisted does: one that queues another, or a
        // thread sending without pause, must not keep the loop in this turn. Later calls
        // run next turn; their senders have woken the poller.
        let calls: Vec<ThreadCall> = self.thread_calls.try_iter().collect();
        for f in calls {
            self.run_callback(f, "call from thread");
        }
    }

    fn run_soon_calls(&mut self) {
        self.local.drain_into(&mut self.soon);
        for _ in 0..self.soon.len() {
            match self.soon.pop_front() {
                Some(f) => self.run_callback(f, "soon call"),
                None => break,
            }
        }
    }
}

/// Numbers reactors: ids carry the number of the reactor that issued them.
fn next_identity() -> Result<u32, ReactorError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        .map_err(|_| io::Error::other("more than 2^32 reactors created").into())
}

/// Descriptors a reactor must have held before it compacts its slot table.
const COMPACT_MIN_PEAK: usize = 1024;

/// Asks the allocator to return free pages to the system (glibc keeps them otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor whose source the poller never hears of.
    struct Nothing;

    impl mio::event::Source for Nothing {
        fn register(&mut self, _: &mio::Registry, _: Token, _: Interest) -> io::Result<()> {
            Ok(())
        }
        fn reregister(&mut self, _: &mio::Registry, _: Token, _: Interest) -> io::Result<()> {
            Ok(())
        }
        fn deregister(&mut self, _: &mio::Registry) -> io::Result<()> {
            Ok(())
        }
    }

    impl Descriptor for Nothing {
        fn source(&mut self) -> &mut dyn mio::event::Source {
            self
        }
        fn connection_lost(&mut self, _: &mut Reactor, _: DescriptorId, _: LostReason) {}
    }

    fn nothing() -> Box<dyn Descriptor> {
        Box::new(Nothing)
    }

    fn turn(reactor: &mut Reactor) {
        reactor.iterate(Some(Duration::ZERO)).unwrap();
    }

    #[test]
    fn the_table_shrinks_after_a_crowd_leaves_and_stale_ids_stay_stale() {
        let mut reactor = Reactor::with_clock(crate::ManualClock::new()).unwrap();
        let ids: Vec<_> = (0..4000)
            .map(|_| reactor.insert(nothing()).unwrap())
            .collect();
        turn(&mut reactor);
        assert_eq!(reactor.slot_count(), 4000);
        // Keep a few low ones; the crowd above them leaves.
        for id in &ids[10..] {
            assert!(matches!(
                reactor.remove_descriptor(*id),
                Ok(Removed::Descriptor(_))
            ));
        }
        turn(&mut reactor);
        assert_eq!(reactor.descriptor_count(), 10);
        assert_eq!(
            reactor.slot_count(),
            10,
            "trailing free slots are given back"
        );
        // New descriptors reuse the table; none answers to an id of the crowd.
        let fresh: Vec<_> = (0..4000)
            .map(|_| reactor.insert(nothing()).unwrap())
            .collect();
        for old in &ids[10..] {
            assert!(
                !reactor.contains(*old),
                "stale id {old} reached a new descriptor"
            );
        }
        for id in &fresh {
            assert!(reactor.contains(*id));
        }
        for id in &ids[..10] {
            assert!(reactor.contains(*id), "the ones that stayed keep their ids");
        }
    }

    #[test]
    fn a_slot_whose_generations_are_used_up_is_retired_not_reused() {
        let mut reactor = Reactor::new().unwrap();
        // Injected: the first slot starts two generations before the end.
        reactor.fresh_generation = u32::MAX - 2;
        let first = reactor.insert(nothing()).unwrap();
        assert_eq!(first.generation, u32::MAX - 2);
        assert!(reactor.remove_descriptor(first).is_ok());
        let second = reactor.insert(nothing()).unwrap();
        assert_eq!(
            (second.index, second.generation),
            (first.index, u32::MAX - 1)
        );
        assert!(reactor.remove_descriptor(second).is_ok());
        let third = reactor.insert(nothing()).unwrap();
        assert_ne!(third.index, first.index, "the used-up slot is retired");
        assert!(matches!(reactor.slots[0].state, SlotState::Retired));
        // No stale id of the retired slot matches, whatever its generation: a wrap
        // back to 0 included.
        for generation in [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1] {
            let stale = DescriptorId {
                generation,
                ..first
            };
            assert!(!reactor.contains(stale));
            assert!(matches!(
                reactor.remove_descriptor(stale),
                Err(ReactorError::UnknownDescriptor(_))
            ));
        }
        assert!(reactor.contains(third));
    }
}
