//! [`Failure`]: an error on its way down a callback chain (Twisted's
//! `twisted.python.failure.Failure`).

use std::backtrace::{Backtrace, BacktraceStatus};
use std::error::Error;
use std::fmt::{self, Write as _};
use std::panic::Location;

use crate::DeferredError;

/// An error travelling down a Deferred's chain: the error itself, where it was made,
/// the places it passed since, and a backtrace when `RUST_BACKTRACE` asks for one
/// (Twisted's `Failure`).
///
/// Any error type converts into a `Failure` with `?` or [`Failure::new`], and the
/// conversion records the caller's source location (`#[track_caller]`), so even without
/// a backtrace a report says where the failure came from. The type of the error stays
/// checkable: [`check`](Self::check) (Twisted's `check`), [`downcast_ref`](Self::downcast_ref)
/// and [`trap`](Self::trap), which gives the error back by value or passes the failure on.
///
/// `Failure` deliberately does not implement [`Error`] itself, so that every error type
/// converts into it; [`error`](Self::error) gives the error inside.
///
/// # Examples
///
/// ```
/// use deferred::{DeferredError, Failure};
///
/// let failure = Failure::new(DeferredError::Cancelled);
/// assert!(failure.check::<DeferredError>());
/// assert!(!failure.check::<std::io::Error>());
/// let io: Result<std::io::Error, Failure> = failure.trap();
/// let failure = io.unwrap_err(); // not an io::Error: the failure comes back
/// assert_eq!(failure.trap::<DeferredError>().ok(), Some(DeferredError::Cancelled));
/// ```
#[doc(alias = "twisted.python.failure.Failure")]
pub struct Failure {
    inner: Box<Inner>,
}

struct Inner {
    error: Box<dyn Error + Send + Sync + 'static>,
    origin: &'static Location<'static>,
    trail: Vec<&'static Location<'static>>,
    backtrace: Backtrace,
}

impl Failure {
    /// A failure holding `error`, made here: the caller's location is its origin, and a
    /// backtrace is captured if `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for one.
    #[track_caller]
    pub fn new(error: impl Error + Send + Sync + 'static) -> Failure {
        Failure::from_boxed(Box::new(error), Location::caller())
    }

    /// A failure holding a plain message, for errors that have no type of their own.
    #[track_caller]
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure::from_boxed(Box::new(Message(message.into())), Location::caller())
    }

    /// A failure from an already boxed error, with `origin` as where it came from.
    pub fn from_boxed(
        error: Box<dyn Error + Send + Sync + 'static>,
        origin: &'static Location<'static>,
    ) -> Failure {
        Failure {
            inner: Box::new(Inner {
                error,
                origin,
                trail: Vec::new(),
                backtrace: Backtrace::capture(),
            }),
        }
    }

    /// The failure a caught panic becomes: [`DeferredError::Panicked`] with its message.
    pub(crate) fn from_panic(
        payload: &(dyn std::any::Any + Send),
        origin: &'static Location<'static>,
    ) -> Failure {
        let message = reactor::panic_message(payload);
        Failure::from_boxed(Box::new(DeferredError::Panicked(message)), origin)
    }

    /// The error inside.
    #[doc(alias = "value")]
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.inner.error
    }

    /// Takes the error out.
    pub fn into_error(self) -> Box<dyn Error + Send + Sync + 'static> {
        self.inner.error
    }

    /// Whether the error is an `E` (Twisted's `check`, for one type).
    pub fn check<E: Error + 'static>(&self) -> bool {
        self.inner.error.is::<E>()
    }

    /// The error as an `E`, if it is one.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.inner.error.downcast_ref::<E>()
    }

    /// The error by value if it is an `E`; otherwise the failure itself, to pass on
    /// (Twisted's `trap`, which re-raises what it does not expect). In an errback,
    /// `let e = failure.trap::<MyError>()?;` handles `MyError` and lets anything else
    /// continue down the errback chain.
    ///
    /// # Errors
    ///
    /// The failure, unchanged, when its error is not an `E`.
    pub fn trap<E: Error + 'static>(self) -> Result<E, Failure> {
        if !self.check::<E>() {
            return Err(self);
        }
        let Inner { error, .. } = *self.inner;
        match error.downcast::<E>() {
            Ok(e) => Ok(*e),
            Err(_) => unreachable!("checked to be an E just above"),
        }
    }

    /// Whether this is the failure of a cancelled Deferred ([`DeferredError::Cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.downcast_ref::<DeferredError>() == Some(&DeferredError::Cancelled)
    }

    /// Where the failure was made.
    pub fn origin(&self) -> &'static Location<'static> {
        self.inner.origin
    }

    /// The places the failure passed since it was made, oldest first: each `.await` of a
    /// Deferred that handed it on, and each task that ended with it.
    pub fn trail(&self) -> &[&'static Location<'static>] {
        &self.inner.trail
    }

    /// Records that the failure passed `place`.
    pub fn passed(&mut self, place: &'static Location<'static>) {
        self.inner.trail.push(place);
    }

    /// The backtrace taken when the failure was made, if `RUST_BACKTRACE` asked for one.
    pub fn backtrace(&self) -> Option<&Backtrace> {
        (self.inner.backtrace.status() == BacktraceStatus::Captured)
            .then_some(&self.inner.backtrace)
    }

    /// A readable report: the error and its sources, where it came from, the places it
    /// passed and the backtrace if one was taken (Twisted's `getTraceback`).
    #[doc(alias = "getTraceback")]
    pub fn report(&self) -> String {
        let mut out = format!("{}", self.inner.error);
        let mut source = self.inner.error.source();
        while let Some(cause) = source {
            let _ = write!(out, "\n  caused by: {cause}");
            source = cause.source();
        }
        let _ = write!(out, "\n  made at {}", self.inner.origin);
        for place in &self.inner.trail {
            let _ = write!(out, "\n  passed {place}");
        }
        if let Some(backtrace) = self.backtrace() {
            let _ = write!(out, "\n{backtrace}");
        }
        out
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.error, f)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("error", &self.inner.error)
            .field("origin", &format_args!("{}", self.inner.origin))
            .field("trail", &self.inner.trail.len())
            .finish()
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Failure {
    #[track_caller]
    fn from(error: E) -> Failure {
        Failure::new(error)
    }
}

/// A failure handed to code that speaks `Box<dyn Error>` (a `main` returning one, say)
/// gives up its error.
impl From<Failure> for Box<dyn Error + Send + Sync + 'static> {
    fn from(failure: Failure) -> Self {
        failure.into_error()
    }
}

/// As the `Send + Sync` conversion.
impl From<Failure> for Box<dyn Error + 'static> {
    fn from(failure: Failure) -> Self {
        failure.into_error()
    }
}

/// Turns a value into a [`Failure`], recording the caller as its origin: implemented by
/// `Failure` (kept as it is) and by every error type. [`Resolver::errback`](crate::Resolver::errback)
/// and [`fail`](crate::fail) take it.
pub trait IntoFailure {
    /// The failure; an error becomes one made at the caller's location.
    #[track_caller]
    fn into_failure(self) -> Failure;
}

impl IntoFailure for Failure {
    fn into_failure(self) -> Failure {
        self
    }
}

impl<E: Error + Send + Sync + 'static> IntoFailure for E {
    #[track_caller]
    fn into_failure(self) -> Failure {
        Failure::new(self)
    }
}

/// The error of [`Failure::msg`]: a plain message.
#[derive(Debug, Clone)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_knows_where_it_was_made() {
        let line = line!() + 1;
        let failure = Failure::new(DeferredError::AlreadyCalled);
        assert_eq!(failure.origin().line(), line);
        assert!(failure.origin().file().ends_with("failure.rs"));
        assert!(failure.report().contains("already called"));
        assert!(failure.report().contains("failure.rs"));
    }

    #[test]
    fn question_mark_records_the_place_of_the_question_mark() {
        fn parse(text: &str) -> Result<u32, Failure> {
            Ok(text.parse::<u32>()?)
        }
        let failure = parse("x").unwrap_err();
        assert!(failure.check::<std::num::ParseIntError>());
        assert!(failure.origin().file().ends_with("failure.rs"));
    }

    #[test]
    fn trap_gives_back_the_error_or_the_failure() {
        let failure = Failure::msg("plain");
        let failure = failure.trap::<DeferredError>().unwrap_err();
        assert_eq!(failure.to_string(), "plain");
        let cancelled = Failure::new(DeferredError::Cancelled);
        assert!(cancelled.is_cancelled());
        assert_eq!(
            cancelled.trap::<DeferredError>().unwrap(),
            DeferredError::Cancelled
        );
    }

    #[test]
    fn the_report_lists_the_places_passed() {
        let mut failure = Failure::msg("x");
        failure.passed(Location::caller());
        assert_eq!(failure.trail().len(), 1);
        assert!(failure.report().contains("passed"));
    }
}
