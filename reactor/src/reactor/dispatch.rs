//! Dispatch: readiness from the poller and the ready queue turned into calls of a
//! descriptor's `do_read` / `do_write`, with the descriptor lifted out of its slot
//! while its method runs (so it can call back into the reactor), panics caught, and
//! calls delivered to a lifted descriptor run as soon as its method returns.

use std::any::{Any, TypeId};
use std::mem;
use std::panic::{self, AssertUnwindSafe};

use log::error;

use super::slots::{Direction, SlotState};
use super::{panic_message, Reactor};
use crate::descriptor::{Descriptor, DescriptorId, IoStatus, LostReason};

impl Reactor {
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
    pub(super) fn lift(&mut self, id: DescriptorId) -> Box<dyn Descriptor> {
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
    pub(super) fn put_back(&mut self, id: DescriptorId, mut descriptor: Box<dyn Descriptor>) {
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
    pub(super) fn run_deliveries(&mut self, index: u32, descriptor: &mut dyn Descriptor) {
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

    pub(super) fn on_event(&mut self, id: DescriptorId, event: &mio::event::Event) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return; // meant for an earlier occupant of the slot
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            slot.read.ready = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            slot.write.ready = true;
        }
        if slot.queued {
            // Already due this turn or the next from remembered readiness: served
            // from the ready queue, not twice.
            return;
        }
        self.service(id);
    }

    pub(super) fn serve_ready_queue(&mut self, queue: Vec<DescriptorId>) {
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
    pub(super) fn service(&mut self, id: DescriptorId) {
        for dir in [Direction::Read, Direction::Write] {
            let Some(slot) = self.live_slot(id) else {
                return;
            };
            if slot.side(dir).due() && matches!(slot.state, SlotState::Present(_)) {
                self.dispatch(id, dir);
            }
        }
    }

    pub(super) fn dispatch(&mut self, id: DescriptorId, dir: Direction) {
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

    pub(super) fn note_status(&mut self, id: DescriptorId, dir: Direction, status: IoStatus) {
        let Ok(slot) = self.slot_mut(id) else {
            return;
        };
        match status {
            IoStatus::WouldBlock => slot.side_mut(dir).ready = false,
            IoStatus::Ready => {
                if slot.side(dir).interested && !slot.queued {
                    slot.queued = true;
                    self.ready_queue.push(id);
                }
            }
        }
    }
}
