//! Awaiting a [`Deferred`]: the push world meets the poll world.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::core::Core;
use crate::{Deferred, DeferredError, Failure};

/// The future of an awaited [`Deferred`]: ready with the chain's result once every
/// callback added before the `.await` has run.
///
/// Made by `.await` (through [`IntoFuture`]), which records where it was awaited: a
/// failure that comes out of it carries that place in its [`trail`](Failure::trail),
/// so a failure crossing several `async fn`s keeps the path it took. A fired Deferred
/// is ready on the first poll, with no waker and no scheduling.
pub struct Awaiting<T> {
    core: Option<Rc<Core>>,
    at: &'static Location<'static>,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> IntoFuture for Deferred<T> {
    type Output = Result<T, Failure>;
    type IntoFuture = Awaiting<T>;

    #[track_caller]
    fn into_future(self) -> Awaiting<T> {
        Awaiting {
            core: Some(self.into_core()),
            at: Location::caller(),
            _value: PhantomData,
        }
    }
}

impl<T: 'static> Future for Awaiting<T> {
    type Output = Result<T, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let at = self.at;
        let Some(core) = self.core.as_ref() else {
            let error = Box::new(DeferredError::Panicked("awaited after completion".into()));
            return Poll::Ready(Err(Failure::from_boxed(error, at)));
        };
        match core.take_settled() {
            Some(outcome) => {
                self.core = None;
                Poll::Ready(match outcome {
                    Ok(value) => match crate::core::take_value::<T>(value) {
                        Ok((value, _)) => Ok(value),
                        Err(_) => {
                            let error = DeferredError::Panicked("unexpected value type".into());
                            Err(Failure::from_boxed(Box::new(error), at))
                        }
                    },
                    Err(mut failure) => {
                        failure.passed(at);
                        Err(failure)
                    }
                })
            }
            None => {
                core.set_waker(cx.waker());
                crate::task::note_awaited(core);
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Awaiting<T> {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.drop_handle();
        }
    }
}

impl<T> fmt::Debug for Awaiting<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Awaiting")
            .field("done", &self.core.is_none())
            .field("at", &format_args!("{}", self.at))
            .finish()
    }
}
