//! [`Shared`]: a factory shared by its listening ports, connectors and protocols.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::fmt;
use std::rc::Rc;

use reactor::Reactor;

use crate::factory::Factory;
use crate::idle_queue::IdleQueues;

struct Inner<F> {
    factory: RefCell<F>,
    /// Ports and connectors currently using the factory (Twisted's `numPorts`).
    users: Cell<usize>,
    /// Calls into the factory put off to a later turn because it was busy.
    deferred: Cell<usize>,
    /// The idle timeouts of the connections it built, one queue per period. Borrowed
    /// only inside the idle timeout's own code, never over user code.
    idle: RefCell<IdleQueues>,
}

/// A factory, shared by everything that uses it: the ports that listen with it, the
/// connectors that connect with it, and every protocol it built (Twisted's
/// `protocol.factory`). Cloning shares; it never copies the factory.
///
/// Protocols reach it with [`Context::factory`](crate::Context::factory); the program
/// that made it reads it after the reactor stops with [`borrow`](Self::borrow).
///
/// The framework borrows the factory only for the length of one call into it, and
/// never over a borrow of user code: a call it must make while the factory is borrowed
/// (a `do_stop` because a protocol holding `cx.factory()` stopped the last port, a
/// connector's news) runs on the reactor's next turn instead, in order. So the only
/// overlapping borrows are two guards user code holds at once, as with a `RefCell`.
///
/// # Examples
///
/// ```
/// use protocol::{Factory, Shared};
/// # use protocol::{Context, Protocol};
/// # struct Counter; impl Protocol for Counter { type Factory = Tally;
/// #   fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {} }
/// struct Tally { connections: usize }
/// impl Factory for Tally {
///     type Protocol = Counter;
///     fn build_protocol(&mut self, _: &transport::Address) -> Option<Counter> {
///         self.connections += 1;
///         Some(Counter)
///     }
/// }
///
/// let factory = Shared::new(Tally { connections: 0 });
/// let also = factory.clone();
/// also.borrow_mut().connections += 1;
/// assert_eq!(factory.borrow().connections, 1);
/// ```
pub struct Shared<F> {
    inner: Rc<Inner<F>>,
}

impl<F> Clone for Shared<F> {
    fn clone(&self) -> Self {
        Shared {
            inner: self.inner.clone(),
        }
    }
}

impl<F: fmt::Debug> fmt::Debug for Shared<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.factory.try_borrow() {
            Ok(factory) => f.debug_tuple("Shared").field(&*factory).finish(),
            Err(_) => f.write_str("Shared(<borrowed>)"),
        }
    }
}

impl<F> Shared<F> {
    /// Shares `factory`.
    pub fn new(factory: F) -> Self {
        Shared {
            inner: Rc::new(Inner {
                factory: RefCell::new(factory),
                users: Cell::new(0),
                deferred: Cell::new(0),
                idle: RefCell::new(IdleQueues::default()),
            }),
        }
    }

    /// Reads the factory.
    ///
    /// # Panics
    ///
    /// If it is being modified right now (a guard from `borrow_mut` is alive).
    pub fn borrow(&self) -> Ref<'_, F> {
        self.inner.factory.borrow()
    }

    /// Modifies the factory.
    ///
    /// # Panics
    ///
    /// If it is borrowed right now (another guard is alive).
    pub fn borrow_mut(&self) -> RefMut<'_, F> {
        self.inner.factory.borrow_mut()
    }

    /// The factory, if nothing borrows it now.
    pub(crate) fn try_borrow_mut(&self) -> Option<RefMut<'_, F>> {
        self.inner.factory.try_borrow_mut().ok()
    }

    /// The idle-timeout queues of the connections it built.
    pub(crate) fn idle_queues(&self) -> RefMut<'_, IdleQueues> {
        self.inner.idle.borrow_mut()
    }

    /// How many ports and connectors use the factory now.
    pub fn users(&self) -> usize {
        self.inner.users.get()
    }

    /// Whether both handles share one factory.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<F: Factory> Shared<F> {
    /// A port or connector starts using the factory: the first one calls `do_start`.
    pub(crate) fn start_use(&self, reactor: &mut Reactor) {
        let users = self.inner.users.get();
        self.inner.users.set(users + 1);
        if users == 0 {
            self.call(reactor, |factory, reactor| factory.do_start(reactor));
        }
    }

    /// A port or connector stops using the factory: the last one calls `do_stop`.
    pub(crate) fn stop_use(&self, reactor: &mut Reactor) {
        let users = self.inner.users.get();
        if users == 0 {
            return;
        }
        self.inner.users.set(users - 1);
        if users == 1 {
            self.call(reactor, |factory, reactor| factory.do_stop(reactor));
        }
    }

    /// Tells the factory something (`do_start`, `do_stop`, a connector's news): now if
    /// it is free, else on the reactor's next turn. It is busy when user code that
    /// holds a guard (`cx.factory()`, `borrow_mut`) made the call that led here, e.g.
    /// `cx.factory().port.take().map(|p| p.stop_listening(cx.reactor()))`; the
    /// framework never borrows it over such a guard. Calls put off keep their order,
    /// and one put off makes the later ones wait behind it.
    pub(crate) fn call(
        &self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut F, &mut Reactor) + 'static,
    ) {
        if self.inner.deferred.get() == 0 {
            if let Ok(mut factory) = self.inner.factory.try_borrow_mut() {
                return f(&mut factory, reactor);
            }
        }
        self.inner.deferred.set(self.inner.deferred.get() + 1);
        let shared = self.clone();
        reactor.call_soon(move |reactor| shared.run_deferred(reactor, f));
    }

    fn run_deferred(&self, reactor: &mut Reactor, f: impl FnOnce(&mut F, &mut Reactor) + 'static) {
        match self.inner.factory.try_borrow_mut() {
            Ok(mut factory) => {
                self.inner.deferred.set(self.inner.deferred.get() - 1);
                f(&mut factory, reactor);
            }
            Err(_) => {
                // Only a guard held across reactor turns (outside any callback) can
                // be alive here; wait for the next turn again, in order.
                let shared = self.clone();
                reactor.call_soon(move |reactor| shared.run_deferred(reactor, f));
            }
        }
    }
}
