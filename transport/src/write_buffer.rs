//! [`WriteBuffer`]: the bytes written but not yet accepted by the socket.

/// A FIFO of bytes kept in one contiguous allocation, consumed from the front.
///
/// Memory: an empty buffer is one null pointer. Nothing is allocated until the first
/// byte the socket did not take at once, and everything is given back as soon as the
/// buffer empties, so an idle connection holds no buffer at all.
#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    pending: Option<Box<Pending>>,
}

#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    /// Bytes before this index have been sent.
    start: usize,
}

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.bytes.len() - p.start)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_none()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.pending.as_ref().map_or(&[], |p| &p.bytes[p.start..])
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let pending = self.pending.get_or_insert_with(|| {
            Box::new(Pending {
                bytes: Vec::with_capacity(data.len()),
                start: 0,
            })
        });
        if pending.start > 0 && pending.start >= pending.bytes.len() / 2 {
            pending.bytes.drain(..pending.start);
            pending.start = 0;
        }
        pending.bytes.extend_from_slice(data);
    }

    /// Drops the first `n` bytes (the socket took them).
    pub(crate) fn consume(&mut self, n: usize) {
        let Some(pending) = self.pending.as_mut() else {
            debug_assert_eq!(n, 0);
            return;
        };
        pending.start += n;
        debug_assert!(pending.start <= pending.bytes.len());
        if pending.start >= pending.bytes.len() {
            self.clear();
        }
    }

    /// Empties the buffer and gives its memory back.
    pub(crate) fn clear(&mut self) {
        self.pending = None;
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
    fn gives_its_memory_back_when_empty() {
        let mut b = WriteBuffer::default();
        b.push(&vec![1u8; 1 << 20]);
        b.consume(1 << 20);
        assert!(b.pending.is_none());
        assert_eq!(
            std::mem::size_of::<WriteBuffer>(),
            std::mem::size_of::<usize>()
        );
    }
}
