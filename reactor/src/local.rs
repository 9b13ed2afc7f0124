//! [`LocalHandle`]: queueing a call on the reactor from its own thread without
//! `&mut Reactor` and without a system call.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};

use crate::error::ReactorError;
use crate::{Callback, Reactor};

/// The queue a [`LocalHandle`] feeds; the reactor moves it into its `call_soon` queue
/// at the start of each turn's soon step. Its `RefCell` is borrowed only to push and to
/// drain, never while a call runs.
#[derive(Default)]
pub(crate) struct LocalQueue {
    calls: RefCell<VecDeque<Callback>>,
}

impl LocalQueue {
    pub(crate) fn has_calls(&self) -> bool {
        !self.calls.borrow().is_empty()
    }

    pub(crate) fn drain_into(&self, soon: &mut VecDeque<Callback>) {
        soon.append(&mut self.calls.borrow_mut());
    }
}

/// A same-thread handle to a [`Reactor`]: like [`Reactor::call_soon`], for code that
/// runs on the reactor's thread but has no `&mut Reactor` at hand (a waker, a
/// Deferred's callback).
///
/// Unlike [`ReactorHandle::call_from_thread`](crate::ReactorHandle::call_from_thread)
/// it costs no system call: code on the reactor's thread runs only while the reactor is
/// not waiting, and the reactor does not wait while calls are queued here. It is not
/// `Send`; other threads use a `ReactorHandle`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let local = reactor.local_handle();
/// local.call_soon(|r| r.stop()).unwrap();
/// reactor.run().unwrap(); // the queued call stops it on the first turn
/// ```
#[derive(Clone)]
pub struct LocalHandle {
    queue: Weak<LocalQueue>,
}

impl LocalHandle {
    pub(crate) fn new(queue: &Rc<LocalQueue>) -> LocalHandle {
        LocalHandle {
            queue: Rc::downgrade(queue),
        }
    }

    /// Runs `f` on the reactor's next turn, with the `call_soon` calls.
    ///
    /// # Errors
    ///
    /// [`ReactorError::Closed`] if the reactor has been dropped.
    pub fn call_soon(&self, f: impl FnOnce(&mut Reactor) + 'static) -> Result<(), ReactorError> {
        let queue = self.queue.upgrade().ok_or(ReactorError::Closed)?;
        queue.calls.borrow_mut().push_back(Box::new(f));
        Ok(())
    }

    /// Whether the reactor still exists.
    pub fn is_alive(&self) -> bool {
        self.queue.strong_count() > 0
    }

    /// Whether both handles reach the same reactor.
    pub fn same_reactor(&self, other: &LocalHandle) -> bool {
        Weak::ptr_eq(&self.queue, &other.queue)
    }
}

impl fmt::Debug for LocalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHandle")
            .field("alive", &self.is_alive())
            .finish()
    }
}
