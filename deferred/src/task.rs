//! [`ensure_deferred`]: futures run on the reactor (Twisted's `ensureDeferred`, what
//! `inlineCallbacks` is in Part 17), and [`with_reactor`]: how such a future reaches
//! the reactor.
//!
//! Each reactor gets one executor, made on its first `ensure_deferred` and kept in a
//! thread-local list beside it (it goes when the reactor is gone). It holds its tasks
//! strongly: a task is never lost because nobody kept its Deferred (the asyncio trap of
//! cpython#117379); dropping the Deferred detaches the task, and a detached task's
//! failure is still reported.
//!
//! Waking: a task's waker is `Send + Sync`. On the reactor's thread it queues the task
//! and, if the executor is not already due, one [`LocalHandle`] call — no system call.
//! From any other thread it goes through the reactor's `call_from_thread`, which wakes
//! the reactor's poll.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use reactor::{LocalHandle, Reactor, ReactorHandle};

use crate::core::Core;
use crate::{Deferred, DeferredError, Failure};

/// How many times one turn re-polls a task right after running the reactor calls it
/// asked for; beyond that it waits for the next turn, so it cannot starve I/O.
const REPOLLS_PER_TURN: usize = 64;

type Request = Box<dyn FnOnce(&mut Reactor)>;
type ReactorFn<R> = Box<dyn FnOnce(&mut Reactor) -> R>;
type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

static NEXT_EXECUTOR: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static EXECUTORS: RefCell<Vec<Rc<Executor>>> = const { RefCell::new(Vec::new()) };
    static SCOPE: RefCell<Scope> = const { RefCell::new(Scope { depth: 0, requests: Vec::new(), awaited: Vec::new() }) };
}

/// What the task being polled asked for: reactor calls, and the Deferreds it waits on.
struct Scope {
    depth: u32,
    requests: Vec<Request>,
    awaited: Vec<Weak<Core>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TaskKey {
    index: u32,
    generation: u32,
}

struct Task {
    /// `None` while the task is being polled.
    future: Option<TaskFuture>,
    waker: Arc<TaskWaker>,
    /// Fails the task's Deferred if the future panics.
    on_panic: Option<Box<dyn FnOnce(Failure)>>,
    awaited: Vec<Weak<Core>>,
    cancelled: bool,
    at: &'static Location<'static>,
}

struct Slot {
    generation: u32,
    task: Option<Task>,
}

struct Executor {
    key: u64,
    local: LocalHandle,
    remote: ReactorHandle,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    ready: RefCell<VecDeque<TaskKey>>,
    scheduled: Cell<bool>,
}

/// A task's waker: which executor, which task, and the way back from other threads.
struct TaskWaker {
    executor: u64,
    task: TaskKey,
    remote: ReactorHandle,
    queued: AtomicBool,
}

fn find_executor(key: u64) -> Option<Rc<Executor>> {
    EXECUTORS
        .try_with(|list| {
            let list = list.try_borrow().ok()?;
            list.iter().find(|e| e.key == key).cloned()
        })
        .ok()
        .flatten()
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(executor) = find_executor(self.executor) {
            executor.enqueue(self.task); // the reactor's own thread: no system call
            return;
        }
        let (key, task) = (self.executor, self.task);
        let _ = self.remote.call_from_thread(move |_| {
            if let Some(executor) = find_executor(key) {
                executor.enqueue(task);
            }
        });
    }
}

/// The executor of `reactor`, made on first use; executors of reactors that are gone
/// are dropped (outside the list's borrow: their tasks' drops may run user code).
fn executor_for(reactor: &Reactor) -> Rc<Executor> {
    let local = reactor.local_handle();
    let (found, dead) = EXECUTORS.with(|list| {
        let mut list = list.borrow_mut();
        let (alive, dead): (Vec<_>, Vec<_>) = list.drain(..).partition(|e| e.local.is_alive());
        *list = alive;
        let found = list.iter().find(|e| e.local.same_reactor(&local)).cloned();
        let found = found.unwrap_or_else(|| {
            let executor = Rc::new(Executor {
                key: NEXT_EXECUTOR.fetch_add(1, Ordering::Relaxed),
                local,
                remote: reactor.handle(),
                slots: RefCell::default(),
                free: RefCell::default(),
                ready: RefCell::default(),
                scheduled: Cell::new(false),
            });
            list.push(executor.clone());
            executor
        });
        (found, dead)
    });
    drop(dead);
    found
}

impl Executor {
    /// Stores the task `make` builds for its key (`make` runs no user code).
    fn insert(&self, make: impl FnOnce(TaskKey) -> Task) -> TaskKey {
        let mut slots = self.slots.borrow_mut();
        let reused = self.free.borrow_mut().pop();
        match reused {
            Some(index) => {
                let slot = &mut slots[index as usize];
                debug_assert!(slot.task.is_none());
                let key = TaskKey {
                    index,
                    generation: slot.generation,
                };
                slot.task = Some(make(key));
                key
            }
            None => {
                let key = TaskKey {
                    index: u32::try_from(slots.len()).unwrap_or(u32::MAX),
                    generation: 0,
                };
                slots.push(Slot {
                    generation: 0,
                    task: Some(make(key)),
                });
                key
            }
        }
    }

    fn with_task<R>(&self, key: TaskKey, f: impl FnOnce(&mut Task) -> R) -> Option<R> {
        let mut slots = self.slots.borrow_mut();
        let slot = slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.task.as_mut().map(f)
    }

    fn remove(&self, key: TaskKey) -> Option<Task> {
        let task = {
            let mut slots = self.slots.borrow_mut();
            let slot = slots.get_mut(key.index as usize)?;
            if slot.generation != key.generation {
                return None;
            }
            let task = slot.task.take()?;
            slot.generation = slot.generation.wrapping_add(1);
            task
        };
        self.free.borrow_mut().push(key.index);
        Some(task)
    }

    fn enqueue(self: &Rc<Self>, task: TaskKey) {
        self.ready.borrow_mut().push_back(task);
        if !self.scheduled.replace(true) {
            let executor = self.clone();
            if self
                .local
                .call_soon(move |r| executor.run_ready(r))
                .is_err()
            {
                self.scheduled.set(false);
            }
        }
    }

    /// One turn's work: every task woken before this step, polled once each.
    fn run_ready(self: &Rc<Self>, reactor: &mut Reactor) {
        self.scheduled.set(false);
        let batch: Vec<TaskKey> = self.ready.borrow_mut().drain(..).collect();
        for key in batch {
            self.poll_task(reactor, key);
        }
    }

    /// Polls the task; after each poll that asked for reactor calls, runs them and
    /// polls again (a bounded number of times per turn).
    fn poll_task(self: &Rc<Self>, reactor: &mut Reactor, key: TaskKey) {
        for _ in 0..REPOLLS_PER_TURN {
            let Some((mut future, waker)) = self
                .with_task(key, |t| {
                    t.waker.queued.store(false, Ordering::Release);
                    t.future.take().map(|f| (f, t.waker.clone()))
                })
                .flatten()
            else {
                return;
            };
            let waker = Waker::from(waker);
            let scope = Scope::enter();
            let polled = panic::catch_unwind(AssertUnwindSafe(|| {
                future.as_mut().poll(&mut Context::from_waker(&waker))
            }));
            let (requests, awaited) = scope.exit();
            match polled {
                Ok(Poll::Ready(())) => {
                    drop(self.remove(key));
                    drop(future);
                    return;
                }
                Err(payload) => {
                    drop(future);
                    if let Some(task) = self.remove(key) {
                        if let Some(on_panic) = task.on_panic {
                            on_panic(Failure::from_panic(payload.as_ref(), task.at));
                        }
                    }
                    return;
                }
                Ok(Poll::Pending) => {
                    let cancelled = self.with_task(key, |t| {
                        t.awaited = awaited;
                        if !t.cancelled {
                            t.future = Some(future);
                            None
                        } else {
                            Some(future)
                        }
                    });
                    if let Some(Some(future)) = cancelled {
                        self.finish_cancel(key, future);
                        return;
                    }
                    if requests.is_empty() {
                        return;
                    }
                    for request in requests {
                        run_request(request, reactor);
                    }
                }
            }
        }
        // Still asking after many rounds: the rest waits for the next turn.
        if let Some(waker) = self.with_task(key, |t| Waker::from(t.waker.clone())) {
            waker.wake();
        }
    }

    /// The task's Deferred was cancelled: what it awaits is cancelled too (quietly:
    /// nobody is left to read it) and the future is dropped now.
    fn cancel(self: &Rc<Self>, key: TaskKey) {
        let future = self.with_task(key, |t| {
            t.cancelled = true;
            t.future.take()
        });
        if let Some(Some(future)) = future {
            self.finish_cancel(key, future);
        }
    }

    fn finish_cancel(&self, key: TaskKey, future: TaskFuture) {
        let Some(task) = self.remove(key) else {
            return;
        };
        drop(future);
        for core in task.awaited.iter().filter_map(Weak::upgrade) {
            core.cancel_quietly(task.at);
        }
    }
}

fn run_request(request: Request, reactor: &mut Reactor) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| request(reactor))) {
        log::error!(
            "a with_reactor call panicked: {}",
            reactor::panic_message(payload.as_ref())
        );
    }
}

impl Scope {
    /// Starts collecting for one poll (keeping an outer poll's collection aside).
    fn enter() -> ScopeGuard {
        SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            s.depth += 1;
            ScopeGuard {
                saved_requests: std::mem::take(&mut s.requests),
                saved_awaited: std::mem::take(&mut s.awaited),
            }
        })
    }
}

struct ScopeGuard {
    saved_requests: Vec<Request>,
    saved_awaited: Vec<Weak<Core>>,
}

impl ScopeGuard {
    fn exit(self) -> (Vec<Request>, Vec<Weak<Core>>) {
        SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            s.depth -= 1;
            (
                std::mem::replace(&mut s.requests, self.saved_requests),
                std::mem::replace(&mut s.awaited, self.saved_awaited),
            )
        })
    }
}

/// Notes that the task being polled waits on `core` (so cancelling the task cancels it).
pub(crate) fn note_awaited(core: &Rc<Core>) {
    let _ = SCOPE.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.depth > 0 {
                s.awaited.push(Rc::downgrade(core));
            }
        }
    });
}

/// Runs `future` on the reactor's thread and gives its result as a Deferred
/// (Twisted's `ensureDeferred` / `Deferred.fromCoroutine`; an `async fn` run this way is
/// what an `inlineCallbacks` generator is in Part 17).
///
/// The future is polled once at once, here, as Twisted runs a coroutine up to its
/// first suspension; after that it is polled on the reactor's turns, whenever it is
/// woken. A failure it ends with records this call's place in its
/// [`trail`](Failure::trail). Cancelling the Deferred cancels the Deferreds the future
/// is waiting on and drops the future at once; dropping the Deferred leaves the task
/// running (its failure, if any, is then reported as unhandled). A panic in the future
/// fails the Deferred.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use deferred::{defer_later, ensure_deferred, with_reactor, Failure};
/// use reactor::{ManualClock, Reactor};
///
/// let clock = ManualClock::new();
/// let mut reactor = Reactor::with_clock(clock.clone()).unwrap();
/// let mut d = ensure_deferred(&mut reactor, async {
///     let later = with_reactor(|r| defer_later(r, Duration::from_secs(2), || Ok::<_, Failure>(21))).await?;
///     let n = later.await?;
///     Ok::<_, Failure>(n * 2)
/// });
/// reactor.iterate(Some(Duration::ZERO)).unwrap();
/// assert!(!d.has_result());
/// clock.advance(Duration::from_secs(2));
/// for _ in 0..3 { reactor.iterate(Some(Duration::ZERO)).unwrap(); }
/// assert_eq!(d.take_result().unwrap().unwrap(), 42);
/// ```
#[doc(alias = "ensureDeferred")]
#[doc(alias = "fromCoroutine")]
#[doc(alias = "inlineCallbacks")]
#[track_caller]
pub fn ensure_deferred<T: 'static>(
    reactor: &mut Reactor,
    future: impl Future<Output = Result<T, Failure>> + 'static,
) -> Deferred<T> {
    let at = Location::caller();
    let executor = executor_for(reactor);
    let key_cell: Rc<Cell<Option<TaskKey>>> = Rc::default();
    let weak = Rc::downgrade(&executor);
    let cell = key_cell.clone();
    let (d, resolver) = Deferred::with_canceller(move |_| {
        if let (Some(executor), Some(key)) = (weak.upgrade(), cell.get()) {
            executor.cancel(key);
        }
    });
    let on_panic = resolver.clone();
    let task_future = async move {
        let mut result = future.await;
        if let Err(failure) = &mut result {
            failure.passed(at);
        }
        let _ = resolver.resolve(result);
    };
    let (executor_key, remote) = (executor.key, executor.remote.clone());
    let key = executor.insert(|key| Task {
        future: Some(Box::pin(task_future)),
        waker: Arc::new(TaskWaker {
            executor: executor_key,
            task: key,
            remote,
            queued: AtomicBool::new(false),
        }),
        on_panic: Some(Box::new(move |failure| {
            let _ = on_panic.errback(failure);
        })),
        awaited: Vec::new(),
        cancelled: false,
        at,
    });
    key_cell.set(Some(key));
    executor.poll_task(reactor, key);
    d
}

/// Runs `f` with the reactor, from inside a future run by [`ensure_deferred`], and
/// gives its result: the way async code schedules calls, connects or listens.
///
/// The call does not run inside the future's poll: the future yields, the executor
/// runs `f` with its `&mut Reactor` between polls, and polls the future again at once.
/// So no code ever holds the reactor twice, and no borrow can fail.
///
/// # Errors
///
/// The future's output is [`DeferredError::NotOnReactor`] when it is not polled by
/// `ensure_deferred`'s executor, and [`DeferredError::Panicked`] if `f` panics.
#[track_caller]
pub fn with_reactor<R: 'static>(f: impl FnOnce(&mut Reactor) -> R + 'static) -> WithReactor<R> {
    WithReactor {
        f: Some(Box::new(f)),
        out: Rc::default(),
        at: Location::caller(),
    }
}

/// The future of [`with_reactor`].
#[must_use = "futures do nothing unless awaited"]
pub struct WithReactor<R> {
    f: Option<ReactorFn<R>>,
    out: Rc<Cell<Option<Result<R, Failure>>>>,
    at: &'static Location<'static>,
}

impl<R> Unpin for WithReactor<R> {}

impl<R: 'static> Future for WithReactor<R> {
    type Output = Result<R, Failure>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(out) = self.out.take() {
            return Poll::Ready(out);
        }
        let Some(f) = self.f.take() else {
            return Poll::Pending; // asked; the executor runs it before the next poll
        };
        let (out, at) = (self.out.clone(), self.at);
        let request: Request = Box::new(move |reactor| {
            let result = panic::catch_unwind(AssertUnwindSafe(|| f(reactor)))
                .map_err(|payload| Failure::from_panic(payload.as_ref(), at));
            out.set(Some(result));
        });
        let refused = SCOPE
            .try_with(|s| match s.try_borrow_mut() {
                Ok(mut s) if s.depth > 0 => {
                    s.requests.push(request);
                    None
                }
                _ => Some(()),
            })
            .unwrap_or(Some(()));
        match refused {
            None => Poll::Pending,
            Some(()) => {
                let error = Box::new(DeferredError::NotOnReactor);
                Poll::Ready(Err(Failure::from_boxed(error, at)))
            }
        }
    }
}

impl<R> fmt::Debug for WithReactor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithReactor")
            .field("asked", &self.f.is_none())
            .field("at", &format_args!("{}", self.at))
            .finish()
    }
}
