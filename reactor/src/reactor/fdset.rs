//! Registration (Twisted's `IReactorFDSet`): descriptors in and out, interest in
//! reading and writing, readiness marked by hand, and the lazy registration with the
//! poller just before the next poll.

use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};

use log::{debug, error, trace};
use mio::Interest;

use super::slots::{Direction, Slot, SlotState};
use super::{panic_message, Reactor, Removed};
use crate::descriptor::{Descriptor, DescriptorId, LostReason};
use crate::error::ReactorError;

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

    pub(super) fn set_interest(
        &mut self,
        id: DescriptorId,
        dir: Direction,
        on: bool,
    ) -> Result<(), ReactorError> {
        let slot = self.slot_mut(id)?;
        let side = slot.side_mut(dir);
        side.interested = on;
        let ready = side.ready;
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
        slot.read.ready |= readable;
        slot.write.ready |= writable;
        if slot.due() && !slot.queued {
            slot.queued = true;
            self.ready_queue.push(id);
        }
        Ok(())
    }

    /// Whether the descriptor is a reader.
    pub fn is_reading(&self, id: DescriptorId) -> bool {
        self.live_slot(id).is_some_and(|s| s.read.interested)
    }

    /// Whether the descriptor is a writer.
    pub fn is_writing(&self, id: DescriptorId) -> bool {
        self.live_slot(id).is_some_and(|s| s.write.interested)
    }

    /// Whether `id` still names a registered descriptor.
    pub fn contains(&self, id: DescriptorId) -> bool {
        self.live_slot(id).is_some()
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

    /// Registers with the poller every descriptor inserted since the last poll that
    /// is still there; one the poller refuses is lost with the error.
    pub(super) fn register_pending(&mut self) {
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

    pub(super) fn deregister(&mut self, descriptor: &mut dyn Descriptor) {
        if let Err(e) = self.poll.registry().deregister(descriptor.source()) {
            debug!("deregistering {}: {e}", descriptor.log_prefix());
        }
    }

    /// Removes the descriptor and tells it why through `connection_lost`.
    pub(super) fn lose(&mut self, id: DescriptorId, reason: LostReason) {
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
