//! The queue of pending delayed calls: a heap of deadlines (four children per node)
//! over a slab of calls.
//!
//! Cancelling or resetting a call never searches the heap: the call's slot is updated
//! in O(1) and its old heap entry becomes *stale* (its sequence number no longer
//! matches the slot). Stale entries are skipped when they reach the top, and the heap
//! is rebuilt without them once they outnumber the live ones, so a cancelled call
//! costs O(1) amortised and its memory is given back.

use crate::error::TimerError;
use crate::quad_heap::QuadHeap;
use crate::Callback;

/// One heap entry: ordered by deadline, then by sequence (FIFO among equal deadlines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    deadline: u64,
    seq: u64,
    slot: u32,
}

/// What became of the call that last occupied a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Called,
    Cancelled,
}

struct Slot {
    generation: u32,
    /// Outcome of the previous occupant (generation - 1), for precise errors.
    last_outcome: Option<Outcome>,
    /// While pending: the sequence number of the call's live heap entry. While free:
    /// `FREE_BIT | next free slot`, which no heap entry can match.
    seq: u64,
    /// The sequence number the call got when it was scheduled, kept through `reset`
    /// and `delay`: a call scheduled during a timer step waits for the next step, a
    /// call merely moved does not.
    born: u64,
    deadline: u64,
    callback: Option<Callback>,
}

/// Set in `Slot::seq` while the slot is free; sequence numbers never reach it.
const FREE_BIT: u64 = 1 << 63;

/// Identifies one scheduled call inside a [`TimerQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TimerKey {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

const NO_FREE: u32 = u32::MAX;

pub(crate) struct TimerQueue {
    heap: QuadHeap<Entry>,
    slots: Vec<Slot>,
    free_head: u32,
    live: usize,
    next_seq: u64,
    /// Due entries of calls scheduled during the current step, set aside by
    /// [`pop_due`](TimerQueue::pop_due) so they hold nothing back; put back by
    /// [`end_step`](TimerQueue::end_step).
    held: Vec<Entry>,
}

impl std::fmt::Debug for TimerQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerQueue")
            .field("live", &self.live)
            .field("heap_entries", &self.heap.len())
            .finish()
    }
}

impl TimerQueue {
    pub(crate) fn new() -> Self {
        TimerQueue {
            heap: QuadHeap::new(),
            slots: Vec::new(),
            free_head: NO_FREE,
            live: 0,
            next_seq: 1,
            held: Vec::new(),
        }
    }

    /// Number of calls still pending.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The sequence number the next scheduled (or reset) call will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(crate) fn insert(&mut self, deadline: u64, callback: Callback) -> TimerKey {
        let seq = self.take_seq();
        let slot = if self.free_head != NO_FREE {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            self.free_head = (slot.seq & !FREE_BIT) as u32;
            slot.seq = seq;
            slot.born = seq;
            slot.deadline = deadline;
            slot.callback = Some(callback);
            index
        } else {
            let index = u32::try_from(self.slots.len()).expect("more than 2^32 pending calls");
            self.slots.push(Slot {
                generation: 0,
                seq,
                born: seq,
                deadline,
                callback: Some(callback),
                last_outcome: None,
            });
            index
        };
        self.live += 1;
        self.heap.push(Entry {
            deadline,
            seq,
            slot,
        });
        TimerKey {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// The live slot behind `key`, or why there is none.
    fn live_slot(&mut self, key: TimerKey) -> Result<&mut Slot, TimerError> {
        let slot = self
            .slots
            .get_mut(key.slot as usize)
            .ok_or(TimerError::Expired)?;
        if slot.generation == key.generation && slot.callback.is_some() {
            return Ok(slot);
        }
        let outcome = if key.generation.checked_add(1) == Some(slot.generation) {
            slot.last_outcome
        } else {
            None
        };
        Err(match outcome {
            Some(Outcome::Called) => TimerError::AlreadyCalled,
            Some(Outcome::Cancelled) => TimerError::AlreadyCancelled,
            None => TimerError::Expired,
        })
    }

    pub(crate) fn is_active(&mut self, key: TimerKey) -> bool {
        self.live_slot(key).is_ok()
    }

    pub(crate) fn deadline(&mut self, key: TimerKey) -> Result<u64, TimerError> {
        self.live_slot(key).map(|s| s.deadline)
    }

    /// Frees the slot of a call that ran or was cancelled. Its generation moves on,
    /// so the call's key goes stale; a slot whose generation is used up is retired
    /// (never reused) instead, so no stale key can match a later call.
    fn release(&mut self, index: u32, outcome: Outcome) -> Option<Callback> {
        let slot = &mut self.slots[index as usize];
        let callback = slot.callback.take();
        debug_assert!(slot.generation < u32::MAX, "a retired slot held a call");
        slot.generation += 1;
        slot.last_outcome = Some(outcome);
        if slot.generation == u32::MAX {
            slot.seq = FREE_BIT | u64::from(NO_FREE);
        } else {
            slot.seq = FREE_BIT | u64::from(self.free_head);
            self.free_head = index;
        }
        self.live -= 1;
        callback
    }

    /// Cancels the call; its callback is dropped here.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Result<(), TimerError> {
        self.live_slot(key)?;
        drop(self.release(key.slot, Outcome::Cancelled));
        self.compact_if_mostly_stale();
        Ok(())
    }

    /// Moves the call to a new deadline; it is ordered after every call already queued
    /// for that same deadline.
    pub(crate) fn reschedule(&mut self, key: TimerKey, deadline: u64) -> Result<(), TimerError> {
        self.live_slot(key)?;
        let seq = self.take_seq();
        let slot = &mut self.slots[key.slot as usize];
        slot.seq = seq;
        slot.deadline = deadline;
        self.heap.push(Entry {
            deadline,
            seq,
            slot: key.slot,
        });
        self.compact_if_mostly_stale();
        Ok(())
    }

    fn is_stale(&self, entry: &Entry) -> bool {
        self.slots[entry.slot as usize].seq != entry.seq
    }

    fn drop_stale_top(&mut self) {
        while let Some(top) = self.heap.peek() {
            if self.is_stale(top) {
                self.heap.pop();
            } else {
                break;
            }
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        self.drop_stale_top();
        self.heap.peek().map(|e| e.deadline)
    }

    /// Removes and returns the earliest call due at `now` that was scheduled with a
    /// sequence number below `seq_limit`: calls scheduled while the due calls run wait
    /// for the next step, as in Twisted, and hold back no other due call (they are set
    /// aside until [`end_step`](Self::end_step)). A call scheduled before the step and
    /// moved during it (`reset`, `delay`) still runs in it if it is due.
    pub(crate) fn pop_due(&mut self, now: u64, seq_limit: u64) -> Option<Callback> {
        loop {
            self.drop_stale_top();
            let top = *self.heap.peek()?;
            if top.deadline > now {
                return None;
            }
            self.heap.pop();
            if self.slots[top.slot as usize].born >= seq_limit {
                self.held.push(top);
                continue;
            }
            return self.release(top.slot, Outcome::Called);
        }
    }

    /// Ends a timer step: the entries [`pop_due`](Self::pop_due) set aside go back.
    pub(crate) fn end_step(&mut self) {
        for entry in self.held.drain(..) {
            self.heap.push(entry);
        }
    }

    /// Rebuilds the heap without stale entries once they outnumber live ones, so the
    /// memory of cancelled calls is given back and stale entries cost O(1) amortised.
    fn compact_if_mostly_stale(&mut self) {
        let stale = (self.heap.len() + self.held.len()).saturating_sub(self.live);
        if stale > 64 && stale > self.live {
            let slots = &self.slots;
            self.heap.retain(|e| slots[e.slot as usize].seq == e.seq);
        }
    }

    /// Approximate bytes held per pending call by the queue's own structures (heap
    /// entry and slot), not counting what the callbacks capture.
    pub(crate) const BYTES_PER_CALL: usize =
        std::mem::size_of::<Entry>() + std::mem::size_of::<Slot>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn noop() -> Callback {
        Box::new(|_| {})
    }

    #[test]
    fn cancel_then_errors_say_what_happened() {
        let mut q = TimerQueue::new();
        let k = q.insert(10, noop());
        assert!(q.is_active(k));
        q.cancel(k).unwrap();
        assert!(!q.is_active(k));
        assert_eq!(q.cancel(k), Err(TimerError::AlreadyCancelled));
        let k2 = q.insert(5, noop());
        assert!(q.pop_due(5, u64::MAX).is_some());
        assert_eq!(q.cancel(k2), Err(TimerError::AlreadyCalled));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn stale_entries_are_compacted_away() {
        let mut q = TimerQueue::new();
        let keys: Vec<_> = (0..1000).map(|i| q.insert(i, noop())).collect();
        for k in &keys[..900] {
            q.cancel(*k).unwrap();
        }
        assert_eq!(q.len(), 100);
        assert!(q.heap.len() <= 2 * 100 + 64, "heap holds {}", q.heap.len());
        assert_eq!(q.next_deadline(), Some(900));
    }

    #[test]
    fn equal_deadlines_pop_in_insertion_order() {
        let mut q = TimerQueue::new();
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..5 {
            let order = order.clone();
            q.insert(7, Box::new(move |_| order.borrow_mut().push(i)));
        }
        let mut n = 0;
        while q.pop_due(7, u64::MAX).is_some() {
            n += 1;
        }
        assert_eq!(n, 5);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn reschedule_moves_the_call_and_skips_its_old_entry() {
        let mut q = TimerQueue::new();
        let a = q.insert(1, noop());
        let _b = q.insert(2, noop());
        q.reschedule(a, 3).unwrap();
        assert_eq!(q.next_deadline(), Some(2));
        assert!(q.pop_due(2, u64::MAX).is_some());
        assert!(q.pop_due(2, u64::MAX).is_none());
        assert_eq!(q.deadline(a), Ok(3));
        assert!(q.pop_due(3, u64::MAX).is_some());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_timer_slot_whose_generations_are_used_up_is_retired() {
        let mut q = TimerQueue::new();
        let first = q.insert(1, noop());
        // Injected: this slot has served 2^32 - 2 calls already.
        q.slots[first.slot as usize].generation = u32::MAX - 1;
        let last = TimerKey {
            generation: u32::MAX - 1,
            ..first
        };
        q.cancel(last).unwrap();
        let next = q.insert(2, noop());
        assert_ne!(next.slot, last.slot, "the used-up slot is retired");
        assert_eq!(q.cancel(last), Err(TimerError::AlreadyCancelled));
        for generation in [0, 1, u32::MAX] {
            let stale = TimerKey { generation, ..last };
            assert!(!q.is_active(stale));
            assert!(q.cancel(stale).is_err());
        }
        assert!(q.is_active(next));
    }

    #[test]
    fn seq_limit_defers_calls_scheduled_during_a_run() {
        let mut q = TimerQueue::new();
        let limit = q.next_seq();
        q.insert(0, noop());
        assert!(q.pop_due(0, limit).is_none());
        q.end_step();
        assert!(q.pop_due(0, q.next_seq()).is_some());
    }
}
