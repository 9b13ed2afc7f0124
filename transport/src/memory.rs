//! [`MemoryStream`]: an in-memory stream pair that behaves like a socket pair, so the
//! real transport code runs in tests without a socket.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::address::Address;
use crate::stream::Stream;

/// One direction of the pair.
#[derive(Debug, Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// The writer shut down its writing half, or was dropped: readers see end of file
    /// once `bytes` is drained.
    write_closed: bool,
    /// The writer closed with a reset: readers see `ConnectionReset`.
    reset: bool,
    /// The reader was dropped: writers see `BrokenPipe`.
    read_closed: bool,
}

#[derive(Debug)]
struct Shared {
    /// `pipes[0]` carries bytes from end 0 to end 1; `pipes[1]` the other way.
    pipes: [Pipe; 2],
    capacity: usize,
    /// Counts every change of state, so a driver can tell when nothing moves.
    activity: u64,
}

/// One end of an in-memory, non-blocking stream pair.
///
/// It behaves as a connected socket does: writes are accepted up to the pair's
/// capacity and then return `WouldBlock`; reads return `WouldBlock` when nothing is
/// there, `Ok(0)` after the peer shut down its writing half or closed, and
/// `ConnectionReset` after the peer closed with a reset. Dropping an end closes it.
///
/// Registering it with a reactor is a no-op: the operating system knows nothing of it,
/// so whoever drives it tells the reactor when it is ready (see
/// [`Reactor::set_ready`](reactor::Reactor::set_ready)); the protocol crate's testing
/// helpers do this for you.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use transport::MemoryStream;
///
/// let (mut a, mut b) = MemoryStream::pair(4);
/// assert_eq!(a.write(b"hello").unwrap(), 4); // capacity 4: a partial write
/// let mut buf = [0u8; 8];
/// assert_eq!(b.read(&mut buf).unwrap(), 4);
/// assert_eq!(&buf[..4], b"hell");
/// assert_eq!(b.read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
/// drop(a);
/// assert_eq!(b.read(&mut buf).unwrap(), 0); // end of file
/// ```
#[derive(Debug)]
pub struct MemoryStream {
    shared: Rc<RefCell<Shared>>,
    side: usize,
    number: u64,
    reset_on_close: Cell<bool>,
}

static NEXT_NUMBER: AtomicU64 = AtomicU64::new(1);

impl MemoryStream {
    /// A connected pair whose each direction holds at most `capacity` bytes in
    /// flight.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero: no byte could ever cross.
    pub fn pair(capacity: usize) -> (MemoryStream, MemoryStream) {
        assert!(
            capacity > 0,
            "a memory stream needs a capacity of at least one byte"
        );
        let shared = Rc::new(RefCell::new(Shared {
            pipes: [Pipe::default(), Pipe::default()],
            capacity,
            activity: 0,
        }));
        let first = NEXT_NUMBER.fetch_add(2, Ordering::Relaxed);
        let end = |side: usize| MemoryStream {
            shared: shared.clone(),
            side,
            number: first + side as u64,
            reset_on_close: Cell::new(false),
        };
        (end(0), end(1))
    }

    /// A counter that moves whenever either end of the pair changes state; equal
    /// readings mean nothing happened in between.
    pub fn activity(&self) -> u64 {
        self.shared.borrow().activity
    }

    /// Bytes waiting to be read at this end.
    pub fn available(&self) -> usize {
        self.shared.borrow().pipes[1 - self.side].bytes.len()
    }

    /// Whether the peer has shut down its writing half or closed, and everything it
    /// wrote has been read.
    pub fn at_eof(&self) -> bool {
        let shared = self.shared.borrow();
        let pipe = &shared.pipes[1 - self.side];
        pipe.write_closed && pipe.bytes.is_empty()
    }

    /// Whether the peer end has been dropped (closed in both directions).
    pub fn peer_closed(&self) -> bool {
        let shared = self.shared.borrow();
        shared.pipes[1 - self.side].write_closed && shared.pipes[self.side].read_closed
    }
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut shared = self.shared.borrow_mut();
        let pipe = &mut shared.pipes[1 - self.side];
        if pipe.bytes.is_empty() {
            if pipe.reset {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            if pipe.write_closed {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = pipe.bytes.len().min(buf.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.bytes.drain(..n)) {
            *slot = byte;
        }
        shared.activity += 1;
        Ok(n)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut shared = self.shared.borrow_mut();
        let capacity = shared.capacity;
        let pipe = &mut shared.pipes[self.side];
        if pipe.write_closed || pipe.read_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = capacity - pipe.bytes.len();
        if room == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(buf.len());
        pipe.bytes.extend(&buf[..n]);
        shared.activity += 1;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        let out = &mut shared.pipes[self.side];
        out.write_closed = true;
        out.reset |= self.reset_on_close.get();
        if self.reset_on_close.get() {
            out.bytes.clear();
        }
        let incoming = &mut shared.pipes[1 - self.side];
        incoming.read_closed = true;
        incoming.bytes.clear();
        shared.activity += 1;
    }
}

impl Source for MemoryStream {
    fn register(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }

    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }

    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for MemoryStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        let mut shared = self.shared.borrow_mut();
        shared.pipes[self.side].write_closed = true;
        shared.activity += 1;
        Ok(())
    }

    fn local_address(&self) -> io::Result<Address> {
        Ok(Address::Memory(self.number))
    }

    fn peer_address(&self) -> io::Result<Address> {
        Ok(Address::Memory(if self.side == 0 {
            self.number + 1
        } else {
            self.number - 1
        }))
    }

    fn set_reset_on_close(&self) -> io::Result<()> {
        self.reset_on_close.set(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_write_gives_eof_after_the_data() {
        let (mut a, mut b) = MemoryStream::pair(16);
        a.write_all(b"abc").unwrap();
        a.shutdown_write().unwrap();
        assert!(a.write(b"x").is_err());
        let mut buf = [0u8; 16];
        assert_eq!(b.read(&mut buf).unwrap(), 3);
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        assert!(b.at_eof());
        b.write_all(b"back").unwrap();
        assert_eq!(
            a.read(&mut buf).unwrap(),
            4,
            "the other direction stays open"
        );
    }

    #[test]
    fn reset_is_seen_as_connection_reset_and_discards_data() {
        let (mut a, mut b) = MemoryStream::pair(16);
        a.write_all(b"lost").unwrap();
        a.set_reset_on_close().unwrap();
        drop(a);
        let err = b.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(b.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert!(b.peer_closed());
    }

    #[test]
    fn activity_moves_on_every_change() {
        let (mut a, b) = MemoryStream::pair(2);
        let before = b.activity();
        a.write_all(b"ok").unwrap();
        assert!(b.activity() > before);
        assert_eq!(a.write(b"!").unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(b.available(), 2);
    }
}
