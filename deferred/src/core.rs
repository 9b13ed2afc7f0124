//! The untyped chain under every [`Deferred`](crate::Deferred): a result, a queue of
//! steps, and the one iterative loop (a trampoline) that runs them.
//!
//! Every chain of this crate runs in [`run`]. A callback that returns a Deferred links
//! the two chains (`waiting_on` one way, `continuation` the other) and the loop moves
//! into the inner chain instead of recursing; when the inner chain settles, the loop
//! moves its result back into the outer one. `chain_deferred` steps push the current
//! chain on an explicit stack. So no chain, however deep, grows the Rust stack.
//!
//! Borrow discipline: the `RefCell` of a chain is borrowed only inside the small
//! functions of this file, never while user code (a callback, a canceller, a waker, a
//! value's `Drop`) runs, so no borrow can ever fail.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::mem;
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::task::Waker;

use crate::{DeferredError, Failure};

/// A result travelling down a chain, its value type erased (the typed layer checks it).
pub(crate) type Outcome = Result<Box<dyn Any>, Failure>;

/// A chain's value, erased: always an `Option<T>` in a box, so that a step can take
/// the value out and, when its callback returns a value of the same type, put the next
/// one back in the same allocation (a chain of callbacks that keep their type
/// allocates once, not once per step).
pub(crate) fn erase<T: 'static>(value: T) -> Box<dyn Any> {
    Box::new(Some(value))
}

/// An erased box whose value was taken out, typed again, ready for [`refill`].
pub(crate) type Emptied<T> = Box<Option<T>>;

/// Takes the value out of an erased box made by [`erase`], handing back the box,
/// emptied and typed, for [`refill`]; the box as it was if it holds no `T` (a bug of
/// the typed layer).
pub(crate) fn take_value<T: 'static>(
    erased: Box<dyn Any>,
) -> Result<(T, Emptied<T>), Box<dyn Any>> {
    let mut slot = erased.downcast::<Option<T>>()?;
    match slot.take() {
        Some(value) => Ok((value, slot)),
        None => Err(slot),
    }
}

/// Puts `value` into an emptied box if it was made for a `U`, or into a new one. Both
/// types are known here, so the check is decided when the code is compiled.
pub(crate) fn refill<T: 'static, U: 'static>(
    mut emptied: Box<Option<T>>,
    value: U,
) -> Box<dyn Any> {
    match (&mut *emptied as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(slot) => {
            debug_assert!(slot.is_none(), "only an emptied box is refilled");
            *slot = Some(value);
            emptied
        }
        None => erase(value),
    }
}

/// What a step hands on: a result now, or a chain to wait for.
pub(crate) enum Next {
    Done(Outcome),
    Wait(Rc<Core>),
}

/// A callback/errback pair, erased; it gets the place it was added (so a closure
/// that captures nothing else costs no allocation).
pub(crate) type Callback = Box<dyn FnOnce(Outcome, &'static Location<'static>) -> Next>;

/// What a canceller becomes once erased: it gets the chain to fire.
pub(crate) type Canceller = Box<dyn FnOnce(&Rc<Core>)>;

/// One entry of a chain's queue.
pub(crate) enum Step {
    /// Run a callback pair; the location is where it was added.
    Call(Callback, &'static Location<'static>),
    /// Fire that chain with the current result (`chain_deferred`); this one continues
    /// with `()`.
    Chain(Rc<Core>, &'static Location<'static>),
}

#[derive(Default)]
struct State {
    result: Option<Outcome>,
    called: bool,
    running: bool,
    paused: u32,
    handle_dropped: bool,
    /// A failure left unread is dropped without a report (cancelled on purpose).
    quiet: bool,
    suppress_already_called: bool,
    waiting_on: Option<Rc<Core>>,
    continuation: Option<Rc<Core>>,
    steps: VecDeque<Step>,
    canceller: Option<Canceller>,
    waker: Option<Waker>,
}

impl State {
    /// Steps could run now.
    fn can_step(&self) -> bool {
        self.paused == 0 && self.waiting_on.is_none() && self.result.is_some()
    }

    /// Everything added so far has run and the result is there for whoever holds it.
    fn settled(&self) -> bool {
        !self.running && self.can_step() && self.steps.is_empty()
    }
}

/// One chain: Twisted's `Deferred` object, without its types.
pub(crate) struct Core {
    st: RefCell<State>,
}

/// The outcome of giving a chain its first result. A refused result is handed back so
/// that it is dropped after the chain's borrow ends (its `Drop` is user code).
#[allow(dead_code)] // The refused outcomes are held only to be dropped late.
pub(crate) enum Accepted {
    /// It now has the result and should run.
    Run,
    /// It was fired already and the attempt was silently absorbed (after a cancel).
    Absorbed(Outcome),
    /// It was fired already.
    AlreadyCalled(Outcome),
}

impl Core {
    pub(crate) fn new() -> Rc<Core> {
        Rc::new(Core {
            st: RefCell::new(State::default()),
        })
    }

    pub(crate) fn fired(outcome: Outcome) -> Rc<Core> {
        Rc::new(Core {
            st: RefCell::new(State {
                result: Some(outcome),
                called: true,
                ..State::default()
            }),
        })
    }

    pub(crate) fn set_canceller(&self, canceller: Canceller) {
        self.st.borrow_mut().canceller = Some(canceller);
    }

    pub(crate) fn is_called(&self) -> bool {
        self.st.borrow().called
    }

    pub(crate) fn is_settled(&self) -> bool {
        self.st.borrow().settled()
    }

    pub(crate) fn pause(&self) {
        let mut s = self.st.borrow_mut();
        s.paused = s.paused.saturating_add(1);
    }

    /// Takes the result of a settled chain (for `take_result` and futures).
    pub(crate) fn take_settled(&self) -> Option<Outcome> {
        let mut s = self.st.borrow_mut();
        if s.settled() {
            s.result.take()
        } else {
            None
        }
    }

    /// Registers the waker of a future waiting for this chain to settle.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let old = {
            let mut s = self.st.borrow_mut();
            match &s.waker {
                Some(w) if w.will_wake(waker) => None,
                _ => s.waker.replace(waker.clone()),
            }
        };
        drop(old);
    }

    /// The typed handle is gone: a failure nobody can see any more is reported now, or
    /// when it arrives.
    pub(crate) fn drop_handle(&self) {
        let orphan = {
            let mut s = self.st.borrow_mut();
            s.handle_dropped = true;
            let waker = s.waker.take();
            let orphan = if s.settled() { s.result.take() } else { None };
            (waker, orphan)
        };
        if let (_, Some(Err(failure))) = orphan {
            self.report(failure);
        }
    }

    fn report(&self, failure: Failure) {
        if !self.st.borrow().quiet {
            crate::unhandled::report(failure);
        }
    }

    /// Cancels the chain on behalf of nobody: its failure, if nobody reads it, is not
    /// reported (a task's cancel cancelling what the task was awaiting).
    pub(crate) fn cancel_quietly(self: &Rc<Self>, at: &'static Location<'static>) {
        self.st.borrow_mut().quiet = true;
        cancel(self, at);
    }

    /// Gives the chain its result, if it has none yet.
    pub(crate) fn accept(&self, outcome: Outcome) -> Accepted {
        let (accepted, canceller) = {
            let mut s = self.st.borrow_mut();
            if s.called {
                if mem::take(&mut s.suppress_already_called) {
                    (Accepted::Absorbed(outcome), None)
                } else {
                    (Accepted::AlreadyCalled(outcome), None)
                }
            } else {
                s.called = true;
                s.result = Some(outcome);
                (Accepted::Run, s.canceller.take())
            }
        };
        drop(canceller);
        accepted
    }
}

/// Fires `core` with `outcome` and runs its chain (Twisted's `callback` / `errback`).
pub(crate) fn fire(core: &Rc<Core>, outcome: Outcome) -> Result<(), DeferredError> {
    match core.accept(outcome) {
        Accepted::Run => {
            run(core.clone());
            Ok(())
        }
        Accepted::Absorbed(_) => Ok(()),
        Accepted::AlreadyCalled(_) => Err(DeferredError::AlreadyCalled),
    }
}

/// Room made for steps at a chain's first step.
const FIRST_STEPS: usize = 8;

/// Adds a step; it runs at once if the chain has its result and is not paused.
pub(crate) fn add(core: &Rc<Core>, step: Step) {
    let ready = {
        let mut s = core.st.borrow_mut();
        if s.steps.capacity() == 0 {
            // One allocation for the first few steps (a pending Deferred with none
            // costs nothing here); growing 4 → 8 cost two copies for a common chain.
            s.steps.reserve_exact(FIRST_STEPS);
        }
        s.steps.push_back(step);
        s.called
    };
    if ready {
        run(core.clone());
    }
}

pub(crate) fn unpause(core: &Rc<Core>) {
    let resume = {
        let mut s = core.st.borrow_mut();
        s.paused = s.paused.saturating_sub(1);
        s.paused == 0
    };
    if resume {
        run(core.clone());
    }
}

/// Marks `core` as being run by this loop; false if another loop (further up the
/// stack) is already running it, which will then pick up whatever is new.
fn begin(core: &Core) -> bool {
    let mut s = core.st.borrow_mut();
    !mem::replace(&mut s.running, true)
}

fn next_step(core: &Core) -> Option<(Step, Outcome)> {
    let mut s = core.st.borrow_mut();
    if !s.can_step() {
        return None;
    }
    let step = s.steps.pop_front()?;
    let input = s.result.take()?;
    Some((step, input))
}

fn put_result(core: &Core, outcome: Outcome) {
    let mut s = core.st.borrow_mut();
    debug_assert!(s.result.is_none(), "a step's result replaces nothing");
    s.result = Some(outcome);
}

/// Puts a step's result and, if the chain can go on, takes its next step, in one borrow.
fn put_and_next(core: &Core, outcome: Outcome) -> Option<(Step, Outcome)> {
    let mut s = core.st.borrow_mut();
    debug_assert!(s.result.is_none(), "a step's result replaces nothing");
    if s.paused == 0 && s.waiting_on.is_none() {
        if let Some(step) = s.steps.pop_front() {
            return Some((step, outcome));
        }
    }
    s.result = Some(outcome);
    None
}

/// A step returned a Deferred: `cur` waits for it, and the loop moves into it (a
/// Deferred returned into its own chain is a failure instead).
fn wait_for(cur: &mut Rc<Core>, inner: Rc<Core>, at: &'static Location<'static>) {
    if Rc::ptr_eq(&inner, cur) {
        let failure = Failure::from_boxed(Box::new(DeferredError::ReturnedItself), at);
        put_result(cur, Err(failure));
        return;
    }
    wait_on(cur, &inner);
    if begin(&inner) {
        *cur = inner;
    }
}

/// A `chain_deferred` step: `cur` goes on with `()`, `target` gets `input` and, if it
/// can run now, the loop runs it first and comes back to `cur` after.
fn chain_into(
    cur: &mut Rc<Core>,
    resume: &mut Vec<Rc<Core>>,
    target: Rc<Core>,
    input: Outcome,
    at: &'static Location<'static>,
) {
    put_result(cur, Ok(erase(())));
    match target.accept(input) {
        Accepted::Run => {
            if begin(&target) {
                resume.push(mem::replace(cur, target));
            }
        }
        Accepted::Absorbed(_) => {}
        Accepted::AlreadyCalled(_) => {
            let _ = cur.st.borrow_mut().result.take();
            let error = Box::new(DeferredError::AlreadyCalled);
            put_result(cur, Err(Failure::from_boxed(error, at)));
        }
    }
}

/// `outer` waits for `inner`: the loop follows `inner`, and comes back when it settles.
fn wait_on(outer: &Rc<Core>, inner: &Rc<Core>) {
    {
        let mut s = outer.st.borrow_mut();
        s.running = false;
        s.waiting_on = Some(inner.clone());
    }
    let old = inner.st.borrow_mut().continuation.replace(outer.clone());
    debug_assert!(old.is_none(), "a Deferred is returned into one chain only");
}

/// The loop is done with `core` for now. If it settled and a chain waits for it, the
/// result moves there and that chain is returned, to be run next; if it settled with
/// nobody to read it, a failure is reported.
fn settle(core: &Core) -> Option<Rc<Core>> {
    let (outer, waker, orphan) = {
        let mut s = core.st.borrow_mut();
        s.running = false;
        if !s.settled() {
            return None;
        }
        if let Some(outer) = s.continuation.take() {
            let result = s.result.take();
            let inner = {
                let mut o = outer.st.borrow_mut();
                debug_assert!(o.result.is_none());
                o.result = result;
                o.waiting_on.take()
            };
            (Some((outer, inner)), None, None)
        } else {
            let orphan = if s.handle_dropped {
                s.result.take()
            } else {
                None
            };
            (None, s.waker.take(), orphan)
        }
    };
    if let Some(waker) = waker {
        waker.wake();
    }
    if let Some(Err(failure)) = orphan {
        core.report(failure);
    }
    outer.map(|(outer, _inner)| outer)
}

/// Runs one step; its result (or what it waits for) is put in place.
fn call(f: Callback, input: Outcome, at: &'static Location<'static>) -> Next {
    panic::catch_unwind(AssertUnwindSafe(move || f(input, at)))
        .unwrap_or_else(|payload| Next::Done(Err(Failure::from_panic(payload.as_ref(), at))))
}

/// The trampoline: runs `start`'s chain and every chain it leads into, iteratively.
pub(crate) fn run(start: Rc<Core>) {
    if !begin(&start) {
        return;
    }
    let mut resume: Vec<Rc<Core>> = Vec::new();
    let mut cur = start;
    loop {
        let mut next = next_step(&cur);
        while let Some((step, input)) = next {
            next = match step {
                Step::Call(f, at) => match call(f, input, at) {
                    // The common case: one borrow puts the result and takes the next step.
                    Next::Done(outcome) => put_and_next(&cur, outcome),
                    Next::Wait(inner) => {
                        wait_for(&mut cur, inner, at);
                        next_step(&cur)
                    }
                },
                Step::Chain(target, at) => {
                    chain_into(&mut cur, &mut resume, target, input, at);
                    next_step(&cur)
                }
            };
        }
        if let Some(outer) = settle(&cur) {
            if begin(&outer) {
                cur = outer;
                continue;
            }
        }
        match resume.pop() {
            Some(next) => cur = next,
            None => break,
        }
    }
}

/// Cancels `core` (Twisted's `cancel`): an unfired chain runs its canceller and, if
/// that did not fire it, fails with [`DeferredError::Cancelled`]; a chain waiting for
/// another cancels that one (followed down iteratively); a settled chain is left alone.
pub(crate) fn cancel(core: &Rc<Core>, at: &'static Location<'static>) {
    let mut cur = core.clone();
    loop {
        enum Act {
            Cancel(Option<Canceller>),
            Descend(Rc<Core>),
            Nothing,
        }
        let act = {
            let mut s = cur.st.borrow_mut();
            if !s.called {
                let canceller = s.canceller.take();
                s.suppress_already_called = canceller.is_none();
                Act::Cancel(canceller)
            } else if let Some(inner) = &s.waiting_on {
                Act::Descend(inner.clone())
            } else {
                Act::Nothing
            }
        };
        match act {
            Act::Cancel(canceller) => {
                if let Some(canceller) = canceller {
                    run_canceller(canceller, &cur);
                }
                if !cur.is_called() {
                    let failure = Failure::from_boxed(Box::new(DeferredError::Cancelled), at);
                    let _ = fire(&cur, Err(failure));
                }
                return;
            }
            Act::Descend(inner) => cur = inner,
            Act::Nothing => return,
        }
    }
}

fn run_canceller(canceller: Canceller, core: &Rc<Core>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| canceller(core))) {
        log::error!(
            "a Deferred's canceller panicked ({}); the Deferred is cancelled all the same",
            reactor::panic_message(payload.as_ref())
        );
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let s = self.st.get_mut();
        if let (Some(Err(failure)), false) = (s.result.take(), s.quiet) {
            crate::unhandled::report(failure);
        }
    }
}
