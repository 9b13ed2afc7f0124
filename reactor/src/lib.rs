//! The event loop: Twisted's reactor, on mio.
//!
//! The bottom of every stack in this workspace. It knows descriptors (things with a
//! mio source that can be read or written), time, and calls. It knows nothing of TCP,
//! of connections or of protocols: the `transport` crate builds those *as*
//! descriptors.
//!
//! | here | Twisted |
//! |---|---|
//! | [`Reactor::run`], [`Reactor::stop`], [`Reactor::call_when_running`], [`Reactor::add_shutdown_trigger`] | `IReactorCore` |
//! | [`Reactor::call_later`] → [`DelayedCall`], [`Reactor::now`] | `IReactorTime.callLater`, `IDelayedCall`, `seconds` |
//! | [`Reactor::insert`], [`add_reader`](Reactor::add_reader), [`add_writer`](Reactor::add_writer), [`remove_reader`](Reactor::remove_reader), [`remove_writer`](Reactor::remove_writer), [`remove_descriptor`](Reactor::remove_descriptor), [`disconnect_all`](Reactor::disconnect_all) | `IReactorFDSet`, `disconnectAll` |
//! | [`Descriptor`]: `do_read`, `do_write`, `connection_lost` | `IReadDescriptor`, `IWriteDescriptor`, `IFileDescriptor` |
//! | [`ReactorHandle::call_from_thread`] | `IReactorThreads.callFromThread` |
//! | [`LocalHandle::call_soon`] (same thread, no `&mut Reactor`, no system call) | `callLater(0, f)` from anywhere on the reactor's thread |
//! | [`ManualClock`] | `twisted.internet.task.Clock` |
//! | [`Reactor::handle_signals`] | `installSignalHandlers` |
//!
//! # Ownership and re-entrancy
//!
//! The reactor owns every descriptor and every pending call. A callback receives
//! `&mut Reactor` for the length of the call. A descriptor being dispatched is lifted
//! out of its slot first, so it can change its interest, add or remove descriptors
//! (itself included), schedule calls or stop the reactor without a double borrow.
//! Everything else names a descriptor by a [`DescriptorId`] and a call by a
//! [`DelayedCall`]: small `Copy` ids with a generation, never shared pointers.
//!
//! # Ordering guarantees
//!
//! * `call_when_running` calls run as `run` starts, in registration order, before
//!   its first turn.
//! * Each turn: poll; dispatch I/O events in the order the OS returned them (read
//!   before write for one descriptor); serve readiness remembered from earlier turns
//!   (a descriptor is called at most once per direction per turn); run due
//!   `call_later` calls (equal deadlines in scheduling order); calls from other
//!   threads (per-thread order); then `call_soon` calls.
//! * A call scheduled while calls run waits for the next turn, even with a zero delay
//!   (this holds for `call_later`, `call_soon` and calls from threads alike), so a
//!   call that reschedules itself cannot starve I/O.
//! * A panic in any callback is caught at the dispatch boundary and logged with
//!   `log::error!`; a panicking descriptor is removed and told why, and everything else
//!   carries on.
//!
//! # What it does not do
//!
//! No sockets, no buffering, no protocols: see the `transport` and `protocol` crates.
//! It does not install signal handlers unless asked ([`Reactor::handle_signals`]), and
//! it is single-threaded: other threads reach it only through a [`ReactorHandle`].
//!
//! # Example
//!
//! The tutorial's first reactor program: a call that prints, then stops the loop.
//!
//! ```
//! use std::time::Duration;
//! use reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! reactor.call_later(Duration::from_millis(10), |r| {
//!     println!("Hello from the reactor, {:.3}s in", r.now().as_secs_f64());
//!     r.stop();
//! });
//! reactor.run()?;
//! # Ok::<(), reactor::ReactorError>(())
//! ```

mod clock;
mod delayed_call;
mod descriptor;
mod error;
mod handle;
mod local;
mod quad_heap;
#[allow(clippy::module_inception)] // The crate is named for its one central type.
mod reactor;
mod timers;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::delayed_call::DelayedCall;
pub use crate::descriptor::{Descriptor, DescriptorId, IoStatus, LostReason};
pub use crate::error::{ReactorError, TimerError};
pub use crate::handle::ReactorHandle;
pub use crate::local::LocalHandle;
pub use crate::reactor::{panic_message, Reactor, Removed};

/// A call the reactor will make once, with itself.
pub(crate) type Callback = Box<dyn FnOnce(&mut Reactor)>;

/// Re-exported so descriptor implementors use the same mio as the reactor.
pub use mio;
