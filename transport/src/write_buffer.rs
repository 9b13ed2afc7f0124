//! [`WriteBuffer`]: the bytes written but not yet accepted by the socket.

/// A FIFO of bytes kept in one contiguous allocation, consumed from the front.
///
/// Memory: nothing is allocated until the first byte that the socket did not take at
/// once; a large allocation is given back as soon as the buffer empties, so an idle
/// connection holds none.
#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    bytes: Vec<u8>,
    start: usize,
}

/// Capacity above which an emptied buffer gives its memory back.
const KEEP_CAPACITY: usize = 64 * 1024;

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Drops the first `n` bytes (the socket took them).
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.bytes.len());
        if self.start == self.bytes.len() {
            self.clear();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.start = 0;
        if self.bytes.capacity() > KEEP_CAPACITY {
            self.bytes = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_partial_consumption() {
        let mut b = WriteBuffer::default();
        b.push(b"hello ");
        b.consume(3);
        b.push(b"world");
        assert_eq!(b.as_slice(), b"lo world");
        b.consume(8);
        assert!(b.is_empty());
    }

    #[test]
    fn gives_large_allocations_back_when_empty() {
        let mut b = WriteBuffer::default();
        b.push(&vec![1u8; 1 << 20]);
        b.consume(1 << 20);
        assert_eq!(b.bytes.capacity(), 0);
    }
}
