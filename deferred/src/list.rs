//! [`DeferredList`] and [`gather_results`]: waiting for several Deferreds (Part 18).

use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};

use crate::{Deferred, Failure, FirstError, Resolver};

/// What a [`DeferredList`] fires with.
#[derive(Debug)]
pub enum ListResult<T> {
    /// Every Deferred's result, in the order given (Twisted's list of
    /// `(success, result)` pairs).
    All(Vec<Result<T, Failure>>),
    /// With `fire_on_one_callback`: the first value, and whose it was (Twisted's
    /// `(result, index)`).
    First {
        /// The position of the Deferred in the list given.
        index: usize,
        /// Its value.
        value: T,
    },
}

/// Several Deferreds as one (Twisted's `DeferredList`): it fires when all have fired,
/// or — as asked — at the first value or the first failure.
///
/// The list *owns* its Deferreds, so unlike Twisted's (twisted#9329) it can cancel the
/// ones that no longer matter: [`cancel_losers`](Self::cancel_losers). Cancelling the
/// list's Deferred cancels every Deferred in it.
///
/// # Examples
///
/// ```
/// use deferred::{Deferred, DeferredList, ListResult, Failure};
///
/// let (a, ra) = Deferred::<&str>::new();
/// let (b, rb) = Deferred::<&str>::new();
/// let mut first = DeferredList::new([a, b]).fire_on_one_callback().cancel_losers().build();
/// rb.callback("b wins").unwrap();
/// match first.take_result().unwrap().unwrap() {
///     ListResult::First { index, value } => assert_eq!((index, value), (1, "b wins")),
///     ListResult::All(_) => unreachable!(),
/// }
/// assert!(ra.is_called(), "the loser was cancelled");
/// ```
pub struct DeferredList<T> {
    deferreds: Vec<Deferred<T>>,
    options: Options,
}

#[derive(Debug, Clone, Copy, Default)]
struct Options {
    fire_on_one_callback: bool,
    fire_on_one_errback: bool,
    consume_errors: bool,
    cancel_losers: bool,
}

struct ListState<T> {
    results: Vec<Option<Result<T, Failure>>>,
    remaining: usize,
    fired: bool,
    resolver: Resolver<ListResult<T>>,
    children: Vec<Option<Deferred<()>>>,
    options: Options,
}

impl<T: 'static> DeferredList<T> {
    /// A list of `deferreds`, firing when all have fired.
    pub fn new(deferreds: impl IntoIterator<Item = Deferred<T>>) -> Self {
        DeferredList {
            deferreds: deferreds.into_iter().collect(),
            options: Options::default(),
        }
    }

    /// Fire at the first value, with [`ListResult::First`] (Twisted's
    /// `fireOnOneCallback`); if none succeeds, fire with them all when all have fired.
    #[doc(alias = "fireOnOneCallback")]
    pub fn fire_on_one_callback(mut self) -> Self {
        self.options.fire_on_one_callback = true;
        self
    }

    /// Fail at the first failure, with a [`FirstError`] (Twisted's `fireOnOneErrback`).
    #[doc(alias = "fireOnOneErrback")]
    pub fn fire_on_one_errback(mut self) -> Self {
        self.options.fire_on_one_errback = true;
        self
    }

    /// Failures the list does not hand on (those arriving after it fired) are dropped
    /// silently instead of reported as unhandled (Twisted's `consumeErrors`). Failures
    /// in the list's result are the consumer's to handle either way.
    #[doc(alias = "consumeErrors")]
    pub fn consume_errors(mut self) -> Self {
        self.options.consume_errors = true;
        self
    }

    /// When the list fires early (first value or first failure), cancel the Deferreds
    /// still pending; their cancellation failures are consumed.
    pub fn cancel_losers(mut self) -> Self {
        self.options.cancel_losers = true;
        self
    }

    /// The Deferred of the whole list.
    pub fn build(self) -> Deferred<ListResult<T>> {
        let count = self.deferreds.len();
        let weak_state: Rc<RefCell<Weak<RefCell<ListState<T>>>>> = Rc::default();
        let canceller_state = weak_state.clone();
        let (d, resolver) = Deferred::with_canceller(move |_| {
            if let Some(state) = canceller_state.borrow().upgrade() {
                cancel_children(&state, None);
            }
        });
        let state = Rc::new(RefCell::new(ListState {
            results: (0..count).map(|_| None).collect(),
            remaining: count,
            fired: false,
            resolver,
            children: (0..count).map(|_| None).collect(),
            options: self.options,
        }));
        *weak_state.borrow_mut() = Rc::downgrade(&state);
        // The list's own Deferred keeps the state alive until it fires.
        let keep = state.clone();
        let d = d.add_both(move |result| {
            drop(keep);
            result
        });
        if count == 0 {
            let resolver = state.borrow().resolver.clone();
            let _ = resolver.callback(ListResult::All(Vec::new()));
        }
        for (index, child) in self.deferreds.into_iter().enumerate() {
            let weak = Rc::downgrade(&state);
            let options = self.options;
            let tail = child.add_both(move |result| {
                record(&weak, options, index, result);
                Ok::<_, Failure>(())
            });
            state.borrow_mut().children[index] = Some(tail);
        }
        let late_losers = {
            let s = state.borrow();
            s.fired && s.options.cancel_losers
        };
        if late_losers {
            cancel_children(&state, None);
        }
        d
    }

    /// The values of every Deferred, in order, or the first failure (Twisted's
    /// `gatherResults`, with this list's options; `fire_on_one_errback` is implied).
    pub fn gather(self) -> Deferred<Vec<T>> {
        self.fire_on_one_errback()
            .build()
            .add_callback(|list| match list {
                ListResult::All(results) => {
                    results.into_iter().collect::<Result<Vec<T>, Failure>>()
                }
                ListResult::First { value, .. } => Ok(vec![value]),
            })
    }
}

/// The values of every Deferred in order, or a [`FirstError`] at the first failure
/// (Twisted's `gatherResults`, with its defaults: failures arriving after the first are
/// reported as unhandled). For other options, see [`DeferredList::gather`].
///
/// # Examples
///
/// ```
/// use deferred::{gather_results, succeed};
///
/// let mut all = gather_results([succeed(1), succeed(2), succeed(3)]);
/// assert_eq!(all.take_result().unwrap().unwrap(), vec![1, 2, 3]);
/// ```
#[doc(alias = "gatherResults")]
pub fn gather_results<T: 'static>(
    deferreds: impl IntoIterator<Item = Deferred<T>>,
) -> Deferred<Vec<T>> {
    DeferredList::new(deferreds).gather()
}

enum Fire<T> {
    Nothing,
    Leftover(Failure),
    Now(Result<ListResult<T>, Failure>),
}

/// One child fired: store its result, and fire the list if that was the last one or
/// the options say so.
fn record<T: 'static>(
    state: &Weak<RefCell<ListState<T>>>,
    options: Options,
    index: usize,
    result: Result<T, Failure>,
) {
    let Some(state) = state.upgrade() else {
        // The list fired and is gone: nobody will see this result.
        if let Err(failure) = result {
            if !options.consume_errors && !failure.is_cancelled() {
                crate::unhandled::report(failure);
            }
        }
        return;
    };
    let (fire, cancel) = {
        let mut s = state.borrow_mut();
        let cancel = s.options.cancel_losers;
        let fire = if s.fired {
            match result {
                Err(failure) if !s.options.consume_errors && !failure.is_cancelled() => {
                    Fire::Leftover(failure)
                }
                _ => Fire::Nothing,
            }
        } else {
            match result {
                Ok(value) if s.options.fire_on_one_callback => {
                    Fire::Now(Ok(ListResult::First { index, value }))
                }
                Err(failure) if s.options.fire_on_one_errback => {
                    Fire::Now(Err(Failure::new(FirstError { index, failure })))
                }
                result => {
                    s.results[index] = Some(result);
                    s.remaining -= 1;
                    if s.remaining == 0 {
                        let results = s.results.drain(..).flatten().collect();
                        Fire::Now(Ok(ListResult::All(results)))
                    } else {
                        Fire::Nothing
                    }
                }
            }
        };
        if matches!(fire, Fire::Now(_)) {
            s.fired = true;
        }
        (fire, cancel)
    };
    match fire {
        Fire::Nothing => {}
        Fire::Leftover(failure) => crate::unhandled::report(failure),
        Fire::Now(result) => {
            if cancel {
                cancel_children(&state, Some(index));
            }
            let resolver = state.borrow().resolver.clone();
            let _ = resolver.resolve(result);
        }
    }
}

/// Cancels every child but `except` (each cancel may record into the state: no borrow
/// is held while it runs).
fn cancel_children<T: 'static>(state: &Rc<RefCell<ListState<T>>>, except: Option<usize>) {
    let count = state.borrow().children.len();
    for index in (0..count).filter(|i| Some(*i) != except) {
        let child = state.borrow_mut().children[index].take();
        if let Some(child) = child {
            child.cancel();
            state.borrow_mut().children[index] = Some(child);
        }
    }
}

impl<T> fmt::Debug for DeferredList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredList")
            .field("deferreds", &self.deferreds.len())
            .field("options", &self.options)
            .finish()
    }
}
