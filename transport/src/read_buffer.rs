//! [`ReadBuffer`]: the read buffer a thread lends to whichever connection is reading.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::connection::READ_CHUNK;

/// [`READ_CHUNK`] bytes of anonymous memory, mapped once per thread: the process pays
/// only for the pages reads have filled. A buffer from the heap is zeroed when it is
/// made, every page of it touched, even in a server that only ever reads a few bytes
/// (or an end of file) and would give back all else after a crowd of clients leaves.
/// If the mapping fails, the buffer comes from the heap.
pub(crate) struct ReadBuffer {
    memory: Memory,
}

enum Memory {
    /// `READ_CHUNK` bytes mapped for this buffer alone, unmapped on drop.
    Mapped(NonNull<u8>),
    Heap(Box<[u8]>),
}

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        // SAFETY: a fresh private anonymous mapping: no address asked for, no file;
        // nothing else can alias it.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                READ_CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let memory = match NonNull::new(address.cast::<u8>()) {
            Some(start) if address != libc::MAP_FAILED => Memory::Mapped(start),
            _ => Memory::Heap(vec![0; READ_CHUNK].into_boxed_slice()),
        };
        ReadBuffer { memory }
    }
}

impl Deref for ReadBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.memory {
            // SAFETY: `start` maps READ_CHUNK readable bytes (anonymous memory reads
            // as zeros until written), owned by this buffer until it is dropped.
            Memory::Mapped(start) => unsafe {
                std::slice::from_raw_parts(start.as_ptr(), READ_CHUNK)
            },
            Memory::Heap(bytes) => bytes,
        }
    }
}

impl DerefMut for ReadBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.memory {
            // SAFETY: as in `deref`, and writable; `&mut self` makes the borrow the
            // only one.
            Memory::Mapped(start) => unsafe {
                std::slice::from_raw_parts_mut(start.as_ptr(), READ_CHUNK)
            },
            Memory::Heap(bytes) => bytes,
        }
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if let Memory::Mapped(start) = self.memory {
            // SAFETY: the mapping made in `new`, with its length; no borrow of it can
            // outlive `self`.
            let unmapped = unsafe { libc::munmap(start.as_ptr().cast(), READ_CHUNK) };
            debug_assert_eq!(unmapped, 0, "munmap of the read buffer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_buffer_is_read_chunk_zeroed_bytes_that_keep_what_is_written() {
        let mut buffer = ReadBuffer::new();
        assert!(matches!(buffer.memory, Memory::Mapped(_)));
        assert_eq!(buffer.len(), READ_CHUNK);
        assert!(buffer.iter().all(|b| *b == 0));
        buffer[READ_CHUNK - 1] = 7;
        buffer[..3].copy_from_slice(b"abc");
        assert_eq!(&buffer[..3], b"abc");
        assert_eq!(buffer[READ_CHUNK - 1], 7);
    }
}
