//! The slot table: where the reactor keeps its descriptors, and the ids that name
//! them. A slot holds a descriptor (or is free, on the free list, or is lent out
//! while one of the descriptor's methods runs), its generation (which an id must
//! match), its interest and readiness per direction, and whether it waits in the
//! ready queue. Generations only grow: a slot whose generations are used up is
//! retired, and the table, shrunk after a crowd leaves, starts new slots above every
//! generation a dropped slot reached, so a stale id never names a later descriptor.

use std::any::TypeId;
use std::io;
use std::mem;

use log::{debug, trace};

use super::{Reactor, Removed};
use crate::descriptor::{Descriptor, DescriptorId};
use crate::error::ReactorError;

pub(super) enum SlotState {
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

/// One direction of a descriptor's I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Read,
    Write,
}

/// Interest and readiness in one direction. Readiness is kept while the descriptor
/// is not interested (edge-triggered polling would not report it again) and served
/// once it is.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Side {
    /// The descriptor wants calls in this direction (`add_reader` / `add_writer`).
    pub(super) interested: bool,
    /// Reported ready (by the poller or `set_ready`), and no call has met
    /// `WouldBlock` since.
    pub(super) ready: bool,
}

impl Side {
    /// Whether a call in this direction is due.
    pub(super) fn due(self) -> bool {
        self.interested && self.ready
    }
}

pub(super) struct Slot {
    pub(super) generation: u32,
    pub(super) state: SlotState,
    pub(super) read: Side,
    pub(super) write: Side,
    /// Already in the ready queue for the next turn.
    pub(super) queued: bool,
    /// Registered with the poller (done lazily, just before the next poll).
    pub(super) registered: bool,
}

impl Slot {
    /// A slot in `state`, with no interest or readiness yet.
    pub(super) fn new(generation: u32, state: SlotState) -> Slot {
        Slot {
            generation,
            state,
            read: Side::default(),
            write: Side::default(),
            queued: false,
            registered: false,
        }
    }

    /// Interest and readiness in direction `dir`.
    pub(super) fn side(&self, dir: Direction) -> Side {
        match dir {
            Direction::Read => self.read,
            Direction::Write => self.write,
        }
    }

    /// As [`side`](Self::side), to change it.
    pub(super) fn side_mut(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }

    /// Whether a call in either direction is due.
    pub(super) fn due(&self) -> bool {
        self.read.due() || self.write.due()
    }

    /// Whether the descriptor `id` names is here (in its slot or being dispatched).
    pub(super) fn holds(&self, id: DescriptorId) -> bool {
        self.generation == id.generation
            && matches!(self.state, SlotState::Present(_) | SlotState::Lifted(_))
    }
}

impl Reactor {
    /// The index of a vacant slot: the head of the free list, or a new slot.
    pub(super) fn vacant_slot(&mut self) -> Result<u32, ReactorError> {
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

    pub(super) fn slot_mut(&mut self, id: DescriptorId) -> Result<&mut Slot, ReactorError> {
        if id.reactor != self.identity {
            return Err(ReactorError::WrongReactor(id));
        }
        self.slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.holds(id))
            .ok_or(ReactorError::UnknownDescriptor(id))
    }

    pub(super) fn live_slot(&self, id: DescriptorId) -> Option<&Slot> {
        if id.reactor != self.identity {
            return None;
        }
        self.slots.get(id.index as usize).filter(|s| s.holds(id))
    }

    /// Slots in the descriptor table, in use or free: it shrinks again after most
    /// descriptors are gone.
    #[cfg(test)]
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn live_ids(&self) -> Vec<DescriptorId> {
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

    /// Removes a descriptor from its slot; deregisters its source only if asked (a
    /// descriptor about to be dropped need not be: closing its source removes it from
    /// the poller).
    pub(super) fn take(
        &mut self,
        id: DescriptorId,
        deregister: bool,
    ) -> Result<Removed, ReactorError> {
        let slot = self.slot_mut(id)?;
        // Live generations are below u32::MAX (see `free_slot`): no wrap.
        slot.generation += 1;
        slot.read.interested = false;
        slot.write.interested = false;
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

    /// Puts an emptied slot on the free list, or retires it once its generations are
    /// used up: a stale id can then never match a later occupant, however long the
    /// process runs.
    pub(super) fn free_slot(&mut self, index: u32) {
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

    /// After most descriptors are gone (a quarter of a peak of at least
    /// [`COMPACT_MIN_PEAK`]), gives their memory back: trailing free slots are dropped,
    /// the queues shrink, and the allocator is asked to return free pages to the
    /// system, so a server's memory falls back after a crowd of clients leaves. While
    /// the crowd goes on leaving, again at each further quarter, down to a handful of
    /// descriptors: the last quarter of a crowd is given back too (at most log4 of the
    /// peak compactions per crowd).
    pub(super) fn compact_if_emptied(&mut self) {
        if (self.peak_descriptors < COMPACT_MIN_PEAK && !self.crowd_leaving)
            || self.descriptor_count > self.peak_descriptors / 4
        {
            return;
        }
        self.peak_descriptors = self.descriptor_count;
        self.crowd_leaving = self.descriptor_count >= CROWD_END;
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

    /// Checks, in debug builds after every turn, the invariants of the slot table and
    /// the queues that the code relies on.
    #[cfg(debug_assertions)]
    pub(super) fn check_invariants(&self) {
        let vacant = self.check_slots();
        self.check_free_list(vacant);
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

    /// Every slot between turns: none lifted, only a present one interested or
    /// queued, generations below the end unless retired, the count right. Returns the
    /// number of vacant slots.
    #[cfg(debug_assertions)]
    fn check_slots(&self) -> usize {
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
                    !slot.queued && !slot.read.interested && !slot.write.interested,
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
        vacant
    }

    /// The free list holds every one of the `vacant` slots once, and nothing else.
    #[cfg(debug_assertions)]
    fn check_free_list(&self, vacant: usize) {
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
    }
}

/// Descriptors a reactor must have held before it compacts its slot table.
const COMPACT_MIN_PEAK: usize = 1024;
/// Below this many descriptors a crowd has left: no further compaction.
const CROWD_END: usize = 4;

/// Asks the allocator to return free pages to the system (glibc keeps them otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mio::{Interest, Token};

    use super::*;
    use crate::descriptor::LostReason;

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
    fn a_crowd_that_leaves_a_quarter_at_a_time_is_given_back_to_the_last_few() {
        let mut reactor = Reactor::with_clock(crate::ManualClock::new()).unwrap();
        let ids: Vec<_> = (0..4000)
            .map(|_| reactor.insert(nothing()).unwrap())
            .collect();
        turn(&mut reactor);
        // The two lowest stay; the rest leave from the bottom up, 500 a turn, so the
        // last ones to leave sit at the top of the table.
        for chunk in ids[2..].chunks(500) {
            for id in chunk {
                reactor.remove_descriptor(*id).unwrap();
            }
            turn(&mut reactor);
        }
        assert_eq!(reactor.descriptor_count(), 2);
        assert_eq!(
            reactor.slot_count(),
            2,
            "compacted again below the minimum peak while the crowd left"
        );
        // A handful coming and going compacts nothing more.
        let few: Vec<_> = (0..3).map(|_| reactor.insert(nothing()).unwrap()).collect();
        turn(&mut reactor);
        for id in few {
            reactor.remove_descriptor(id).unwrap();
        }
        turn(&mut reactor);
        assert_eq!(
            reactor.slot_count(),
            5,
            "free slots below a handful are kept"
        );
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
