//! What the reactor watches: the [`Descriptor`] contract and the ids that name one.

use std::any::Any;
use std::fmt;
use std::io;

use mio::event::Source;

use crate::Reactor;

/// Names a descriptor registered with a [`Reactor`]: the reactor, a slot index and the
/// generation of the registration that filled it.
///
/// Ids are small and `Copy`; hold one instead of a pointer to the descriptor. Once the
/// descriptor is removed its id is *stale*: the slot may be reused, but with a new
/// generation, so a stale id never reaches the new occupant (nor receives its events).
/// Generations never wrap: a slot whose generation is used up is retired, so a stale
/// id stays stale for the life of the process. An id used on another reactor than
/// the one that issued it is refused ([`ReactorError::WrongReactor`](crate::ReactorError::WrongReactor)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DescriptorId {
    pub(crate) reactor: u32,
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl DescriptorId {
    /// The mio token this registration polls under (index and generation packed).
    pub(crate) fn token(self) -> mio::Token {
        mio::Token(((self.generation as usize) << 32) | self.index as usize)
    }

    /// The id a token of reactor `reactor`'s poller stands for.
    pub(crate) fn from_token(token: mio::Token, reactor: u32) -> Self {
        DescriptorId {
            reactor,
            index: (token.0 & 0xffff_ffff) as u32,
            generation: (token.0 >> 32) as u32,
        }
    }
}

impl fmt::Debug for DescriptorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for DescriptorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a descriptor learnt about the operating system's readiness while it read or
/// wrote.
///
/// mio is edge-triggered; Twisted's reactors are level-triggered. The reactor bridges
/// the two by remembering readiness per descriptor: it keeps calling `do_read` (or
/// `do_write`), one call per turn of the loop, for as long as the descriptor is
/// interested and reports [`IoStatus::Ready`]. Reporting [`IoStatus::WouldBlock`]
/// tells the reactor to wait for the next readiness event instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStatus {
    /// The descriptor met `WouldBlock`: the reactor waits for the operating system to
    /// report readiness again.
    WouldBlock,
    /// The descriptor stopped before `WouldBlock` (it hit its per-turn budget, or had
    /// nothing more to do): the readiness is kept, and the reactor calls again on its
    /// next turn if the descriptor is still interested.
    Ready,
}

/// Why the reactor removed a descriptor and called its
/// [`connection_lost`](Descriptor::connection_lost).
///
/// Not `#[non_exhaustive]`: the crates of this workspace match it exhaustively, so a
/// new variant is handled everywhere the compiler points, never by a wildcard.
#[derive(Debug)]
pub enum LostReason {
    /// `do_read` or `do_write` returned this error.
    Error(io::Error),
    /// A callback of the descriptor panicked; the panic message.
    Panicked(String),
    /// The reactor is shutting down (Twisted disconnects every selectable at shutdown).
    Shutdown,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Error(e) => write!(f, "{e}"),
            LostReason::Panicked(msg) => write!(f, "callback panicked: {msg}"),
            LostReason::Shutdown => f.write_str("reactor shut down"),
        }
    }
}

/// A source of readiness the reactor watches: Twisted's `IReadDescriptor` and
/// `IWriteDescriptor` (and their common base `IFileDescriptor`) in one trait.
///
/// # The contract
///
/// * The reactor owns every registered descriptor. While one of its methods runs, the
///   descriptor is *lifted* out of its slot and receives `&mut Reactor`, so it may call
///   back into the reactor freely: change its own interest (`add_writer`,
///   `remove_reader`...), register other descriptors, schedule calls, or remove itself
///   with [`Reactor::remove_descriptor`] (it is then dropped as soon as the method
///   returns, and receives no further calls).
/// * [`do_read`](Descriptor::do_read) is called only while the descriptor is a reader
///   and the operating system reported it readable; [`do_write`](Descriptor::do_write)
///   likewise for writers. Each reports an [`IoStatus`] (see its docs for the
///   edge-triggered bridge). An implementation must not report `Ready` forever without
///   making progress: the reactor would call it on every turn.
/// * Returning an error from `do_read` / `do_write`, or panicking in them, removes the
///   descriptor; the reactor then calls [`connection_lost`](Descriptor::connection_lost)
///   with the reason, exactly once, and drops it. The reactor also calls
///   `connection_lost` with [`LostReason::Shutdown`] for every descriptor still
///   registered when it shuts down. A descriptor removed explicitly with
///   [`Reactor::remove_descriptor`] is handed back (or dropped) without that call: the
///   remover decides.
/// * [`source`](Descriptor::source) must return the same mio source every time. The
///   reactor registers it once, for both directions, just before its next poll after
///   the descriptor is inserted (so a descriptor inserted and removed within one turn
///   costs the poller nothing), deregisters it when it is removed and handed back, and
///   simply drops it (closing the source removes it from the poller) otherwise.
///
/// # Examples
///
/// ```
/// use std::io::{self, Read};
/// use mio::net::UnixStream;
/// use reactor::{Descriptor, DescriptorId, IoStatus, LostReason, Reactor, Removed};
///
/// /// Counts the bytes that arrive on a socket, and stops the reactor at end of file.
/// struct Counter { stream: UnixStream, total: usize }
///
/// impl Descriptor for Counter {
///     fn source(&mut self) -> &mut dyn mio::event::Source { &mut self.stream }
///
///     fn do_read(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
///         let mut buf = [0u8; 4096];
///         loop {
///             match self.stream.read(&mut buf) {
///                 Ok(0) => {
///                     // Removing itself while dispatched: dropped when this returns.
///                     let removed = reactor.remove_descriptor(id);
///                     assert!(matches!(removed, Ok(Removed::WhileDispatched)));
///                     reactor.stop();
///                     return Ok(IoStatus::WouldBlock);
///                 }
///                 Ok(n) => self.total += n,
///                 Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(IoStatus::WouldBlock),
///                 Err(e) => return Err(e),
///             }
///         }
///     }
///
///     fn connection_lost(&mut self, _: &mut Reactor, _: DescriptorId, reason: LostReason) {
///         eprintln!("lost: {reason}");
///     }
/// }
///
/// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// std::io::Write::write_all(&mut &b, b"hello").unwrap();
/// drop(b);
/// let mut reactor = Reactor::new().unwrap();
/// let id = reactor.insert(Box::new(Counter { stream: UnixStream::from_std(a), total: 0 })).unwrap();
/// reactor.add_reader(id).unwrap();
/// reactor.run().unwrap();
/// ```
pub trait Descriptor: Any {
    /// The mio source the reactor polls (Twisted's `fileno()`).
    fn source(&mut self) -> &mut dyn Source;

    /// Called when the source is readable and the descriptor is a reader (Twisted's
    /// `doRead`).
    ///
    /// # Errors
    ///
    /// An error removes the descriptor, which is then told why through
    /// `connection_lost`.
    #[doc(alias = "doRead")]
    fn do_read(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        let _ = (reactor, id);
        Ok(IoStatus::WouldBlock)
    }

    /// Called when the source is writable and the descriptor is a writer (Twisted's
    /// `doWrite`).
    ///
    /// # Errors
    ///
    /// An error removes the descriptor, which is then told why through
    /// `connection_lost`.
    #[doc(alias = "doWrite")]
    fn do_write(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        let _ = (reactor, id);
        Ok(IoStatus::WouldBlock)
    }

    /// The reactor removed this descriptor, for `reason`; it is dropped right after
    /// (Twisted's `connectionLost`). Called at most once. `id` is already stale.
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, reactor: &mut Reactor, id: DescriptorId, reason: LostReason);

    /// A short label for log lines about this descriptor (Twisted's `logPrefix`).
    #[doc(alias = "logPrefix")]
    fn log_prefix(&self) -> &str {
        "descriptor"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_index_and_generation() {
        let id = DescriptorId {
            reactor: 3,
            index: 7,
            generation: 0xdead_beef,
        };
        assert_eq!(DescriptorId::from_token(id.token(), 3), id);
        assert_eq!(format!("{id}"), "#7.3735928559");
    }
}
