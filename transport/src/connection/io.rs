//! The descriptor side of a connection: reading (with a read buffer lent per
//! thread) and the write path (flushing the buffer, resuming a push producer at the
//! low-water mark, asking a pull producer for more).

use std::cell::RefCell;
use std::io;

use reactor::{Descriptor, DescriptorId, IoStatus, LostReason, Reactor};

use super::core::{Producer, State};
use super::{Connection, MAX_READS_PER_TURN};
use crate::handler::Handler;
use crate::read_buffer::ReadBuffer;
use crate::reason::DisconnectReason;

/// `resume_producing` calls per write readiness for a pull producer before yielding.
const MAX_PULLS_PER_TURN: usize = 16;

thread_local! {
    /// One read buffer per thread, lent to whichever connection is reading, so an idle
    /// connection holds no read buffer at all.
    static SCRATCH: RefCell<Option<ReadBuffer>> = const { RefCell::new(None) };
}

fn take_scratch() -> ReadBuffer {
    SCRATCH
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(ReadBuffer::new)
}

fn return_scratch(buf: ReadBuffer) {
    SCRATCH.with(|s| *s.borrow_mut() = Some(buf));
}

impl<H: Handler> Connection<H> {
    /// Writes buffered bytes until the buffer is empty or the socket would block.
    /// Returns whether it would block; `Err` is the failure that ended the connection.
    fn flush(&mut self) -> Result<bool, DisconnectReason> {
        while !self.core.out.is_empty() {
            match self.core.stream.write(self.core.out.as_slice()) {
                Ok(0) => return Err(DisconnectReason::from_io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.core.out.consume(n);
                    self.core.bytes_sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(DisconnectReason::from_io(e)),
            }
        }
        Ok(false)
    }
}

// ===== impl IReadDescriptor, IWriteDescriptor =====

impl<H: Handler> Descriptor for Connection<H> {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        self.core.stream.as_mut()
    }

    fn do_read(&mut self, reactor: &mut Reactor, _id: DescriptorId) -> io::Result<IoStatus> {
        let mut buf = take_scratch();
        let mut status = IoStatus::Ready;
        let mut reads = 0;
        while reads < MAX_READS_PER_TURN {
            if self.core.state != State::Open || self.core.reading_paused || self.core.read_closed {
                break;
            }
            match self.core.stream.read(&mut buf) {
                Ok(0) => {
                    status = IoStatus::WouldBlock;
                    self.on_eof(reactor);
                    break;
                }
                Ok(n) => {
                    reads += 1;
                    self.core.bytes_received += n as u64;
                    self.invoke(reactor, |h, t| h.data_received(t, &buf[..n]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    status = IoStatus::WouldBlock;
                    break;
                }
                Err(e) => {
                    status = IoStatus::WouldBlock;
                    self.finish(reactor, DisconnectReason::from_io(e));
                    break;
                }
            }
        }
        return_scratch(buf);
        Ok(status)
    }

    fn do_write(&mut self, reactor: &mut Reactor, _id: DescriptorId) -> io::Result<IoStatus> {
        if self.core.state == State::Closed {
            return Ok(IoStatus::WouldBlock);
        }
        self.core.write_blocked = false;
        let would_block = match self.flush() {
            Ok(would_block) => would_block,
            Err(reason) => {
                self.finish(reactor, reason);
                return Ok(IoStatus::WouldBlock);
            }
        };
        if let Some(Producer::Push { paused: true }) = self.core.producer {
            if self.core.out.len() <= self.core.low_water() {
                self.core.producer = Some(Producer::Push { paused: false });
                self.invoke(reactor, |h, t| h.resume_producing(t));
            }
        }
        if would_block {
            return Ok(IoStatus::WouldBlock);
        }
        let mut idle = false;
        for _ in 0..MAX_PULLS_PER_TURN {
            if self.core.producer != Some(Producer::Pull)
                || !self.core.out.is_empty()
                || self.core.write_blocked
                || self.core.state == State::Closed
            {
                break;
            }
            let sent = self.core.bytes_sent;
            self.invoke(reactor, |h, t| h.resume_producing(t));
            if self.core.bytes_sent == sent && self.core.out.is_empty() {
                // Nothing to write now: asked again only once it writes (Twisted
                // stops writing the same way), so an idle producer costs nothing.
                idle = true;
                break;
            }
        }
        if self.core.state == State::Closed {
            return Ok(IoStatus::WouldBlock);
        }
        if !self.core.out.is_empty() || self.core.write_blocked {
            // The buffer was empty before the pulls: a write met WouldBlock.
            self.settle(reactor);
            return Ok(IoStatus::WouldBlock);
        }
        if idle || self.core.producer != Some(Producer::Pull) {
            self.core.interest(reactor, Reactor::remove_writer);
        }
        self.settle(reactor);
        // The socket has not said it would block: keep the readiness.
        Ok(IoStatus::Ready)
    }

    fn connection_lost(&mut self, reactor: &mut Reactor, _id: DescriptorId, reason: LostReason) {
        self.finish(reactor, DisconnectReason::from(reason));
    }

    fn log_prefix(&self) -> &str {
        "connection"
    }
}
