//! [`ReactorHandle`]: reaching a reactor from other threads (Twisted's
//! `callFromThread`).

use std::sync::mpsc;
use std::sync::Arc;

use mio::Waker;

use crate::error::ReactorError;
use crate::Reactor;

pub(crate) type ThreadCall = Box<dyn FnOnce(&mut Reactor) + Send>;

/// A thread-safe handle to a [`Reactor`]: `Clone + Send + Sync`.
///
/// Calls sent through it are queued and the reactor's poll is woken (mio's `Waker`),
/// so they run on the reactor's thread on its next turn, in the order each thread sent
/// them.
///
/// # Examples
///
/// ```
/// use reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let handle = reactor.handle();
/// let worker = std::thread::spawn(move || {
///     let answer = 6 * 7; // some blocking work
///     handle.call_from_thread(move |r| { println!("{answer}"); r.stop(); }).unwrap();
/// });
/// reactor.run().unwrap();
/// worker.join().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ReactorHandle {
    sender: mpsc::Sender<ThreadCall>,
    waker: Arc<Waker>,
}

impl ReactorHandle {
    pub(crate) fn new(sender: mpsc::Sender<ThreadCall>, waker: Arc<Waker>) -> Self {
        ReactorHandle { sender, waker }
    }

    /// Runs `f` on the reactor's thread, on its next turn (Twisted's `callFromThread`).
    ///
    /// # Errors
    ///
    /// [`ReactorError::Closed`] if the reactor has been dropped;
    /// [`ReactorError::Io`] if it could not be woken.
    #[doc(alias = "callFromThread")]
    pub fn call_from_thread(
        &self,
        f: impl FnOnce(&mut Reactor) + Send + 'static,
    ) -> Result<(), ReactorError> {
        self.sender
            .send(Box::new(f))
            .map_err(|_| ReactorError::Closed)?;
        self.waker.wake()?;
        Ok(())
    }

    /// Asks the reactor to stop, from any thread.
    ///
    /// # Errors
    ///
    /// As [`call_from_thread`](Self::call_from_thread).
    pub fn stop(&self) -> Result<(), ReactorError> {
        self.call_from_thread(|r| r.stop())
    }
}
