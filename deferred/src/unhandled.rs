//! Unhandled failures: reported when the last chance to handle them goes away, and a
//! hook that lets a test turn such reports into test failures.
//!
//! Twisted logs "Unhandled error in Deferred" from `__del__`, whenever the garbage
//! collector gets round to it (twisted#2652, #10089). Here the report is made at the
//! moment the failure becomes unreachable: when the [`Deferred`](crate::Deferred)
//! holding it is dropped, or when it arrives in a chain whose handle was dropped.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::Failure;

type Sink = Rc<RefCell<Vec<Failure>>>;

thread_local! {
    static SINKS: RefCell<Vec<Sink>> = const { RefCell::new(Vec::new()) };
}

/// Reports `failure`: logs it, and hands it to the innermost [`UnhandledGuard`] of this
/// thread if there is one.
pub(crate) fn report(failure: Failure) {
    log::error!("Unhandled error in Deferred:\n{}", failure.report());
    let sink = SINKS
        .try_with(|sinks| sinks.borrow().last().cloned())
        .ok()
        .flatten();
    if let Some(sink) = sink {
        sink.borrow_mut().push(failure);
    }
}

/// Collects the unhandled failures of this thread while it lives, and fails the test
/// that holds it if any are left uncollected when it is dropped.
///
/// Made by [`catch_unhandled`]. Reports still go to the log as well.
pub struct UnhandledGuard {
    sink: Sink,
}

/// Starts collecting this thread's unhandled Deferred failures: the test hook of
/// twisted#10089. Hold the guard for the length of a test; call
/// [`take`](UnhandledGuard::take) to check the failures you expect.
///
/// # Examples
///
/// ```
/// use deferred::{catch_unhandled, fail, Deferred, Failure};
///
/// let guard = catch_unhandled();
/// let d: Deferred<u32> = fail(Failure::msg("nobody handles me"));
/// drop(d); // reported here, at the drop
/// let reported = guard.take();
/// assert_eq!(reported.len(), 1);
/// assert_eq!(reported[0].to_string(), "nobody handles me");
/// ```
pub fn catch_unhandled() -> UnhandledGuard {
    let sink = Sink::default();
    SINKS.with(|sinks| sinks.borrow_mut().push(sink.clone()));
    UnhandledGuard { sink }
}

impl UnhandledGuard {
    /// The failures reported since the guard was made (or last taken), oldest first.
    pub fn take(&self) -> Vec<Failure> {
        std::mem::take(&mut *self.sink.borrow_mut())
    }
}

impl Drop for UnhandledGuard {
    /// # Panics
    ///
    /// If failures were reported and not taken, and the thread is not already
    /// panicking: that is how the guard fails a test.
    fn drop(&mut self) {
        let _ = SINKS.try_with(|sinks| {
            sinks.borrow_mut().retain(|s| !Rc::ptr_eq(s, &self.sink));
        });
        let left = self.take();
        if !left.is_empty() && !std::thread::panicking() {
            let reports: Vec<String> = left.iter().map(Failure::report).collect();
            panic!(
                "{} unhandled error(s) in Deferred:\n{}",
                left.len(),
                reports.join("\n")
            );
        }
    }
}

impl fmt::Debug for UnhandledGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnhandledGuard")
            .field("reported", &self.sink.borrow().len())
            .finish()
    }
}
