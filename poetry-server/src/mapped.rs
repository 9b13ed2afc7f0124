//! A window of the poem file mapped read-only into memory: the copying fast path
//! (`--no-sendfile`) writes from it, so the kernel copies each byte once, from the
//! page cache to the socket, instead of twice through a buffer.
//!
//! A window lives for one write: mapped, handed to the kernel, unmapped, so the
//! server's resident memory grows by at most one window however many clients stall.
//! The process never reads the mapping itself: its bytes are only handed to the
//! kernel (`Transport::write_now`, which buffers nothing). A file truncated under the
//! mapping then fails that write with `EFAULT`, and the connection is reset, where a
//! read in user space would have killed the process with `SIGBUS`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// The most bytes mapped at once, as much as one write is offered (the socket
/// takes what it has room for: up to a few MiB when the kernel autotunes it).
pub(crate) const WINDOW: u64 = 1024 * 1024;
/// Mappings start on a page; every page size divides this.
const PAGE: u64 = 64 * 1024;

/// `[start, start + len)` of a file, mapped read-only; unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Window {
    base: NonNull<u8>,
    start: u64,
    len: usize,
}

impl Window {
    /// Maps the window of `file` from `offset` (rounded down to a page boundary) up
    /// to `max` (at most [`WINDOW`]) bytes past `offset`, but not past `file_len`, its
    /// pages read in now (`MAP_POPULATE`: one system call instead of a fault per few
    /// pages).
    ///
    /// # Safety
    ///
    /// The window's bytes must never be read by this process, only handed to the
    /// kernel (a socket's `write`): the file may be truncated under the mapping, which
    /// makes a read in user space raise `SIGBUS`, or changed, which a `&[u8]` must
    /// not see.
    ///
    /// # Errors
    ///
    /// `mmap`'s error (`ENODEV`: a file system that cannot map files), or
    /// `InvalidInput` if `offset` is not before `file_len` or `max` is zero.
    pub(crate) unsafe fn map(
        file: &File,
        offset: u64,
        file_len: u64,
        max: u64,
    ) -> io::Result<Window> {
        if offset >= file_len || max == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let start = offset - offset % PAGE;
        let len = usize::try_from(file_len.min(offset + max.min(WINDOW)) - start)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let file_offset = libc::off_t::try_from(start)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh read-only shared mapping of an open file; the kernel picks
        // the address, so nothing else is affected. It is unmapped in `drop`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap at 0"))?;
        Ok(Window { base, start, len })
    }

    /// Whether `offset` of the file lies in the window.
    fn holds(&self, offset: u64) -> bool {
        offset >= self.start && offset - self.start < self.len as u64
    }

    /// The mapped bytes from file offset `offset` to the window's end, to be handed
    /// to the kernel only (see the module's documentation).
    ///
    /// # Panics
    ///
    /// If the window does not hold `offset` (a caller bug).
    pub(crate) fn bytes_from(&self, offset: u64) -> &[u8] {
        assert!(self.holds(offset), "offset {offset} outside the window");
        let skip = (offset - self.start) as usize;
        // SAFETY: the mapping is `len` bytes from `base`, readable, and lives as long
        // as `self`; `skip < len`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(skip), self.len - skip) }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are the mapping made in `map`, unmapped only here.
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap: {}", io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// [`Window::map`] for a file that never changes while mapped, so the test may
    /// read the windows.
    fn map(file: &File, offset: u64, file_len: u64, max: u64) -> io::Result<Window> {
        // SAFETY: the test's file is written before and removed after, never changed
        // while a window is mapped, so reading it cannot fault or see a change.
        unsafe { Window::map(file, offset, file_len, max) }
    }

    #[test]
    fn a_window_starts_on_a_page_and_ends_one_window_on_or_at_the_files_end() {
        let path = std::env::temp_dir().join(format!("mapped-test-{}", std::process::id()));
        let data: Vec<u8> = (0..3 * WINDOW as usize + 1000)
            .map(|i| (i % 253) as u8)
            .collect();
        File::create(&path).unwrap().write_all(&data).unwrap();
        let file = File::open(&path).unwrap();
        let len = data.len() as u64;
        let first = map(&file, 10, len, WINDOW).unwrap();
        assert!(first.holds(0) && first.holds(WINDOW + 9) && !first.holds(WINDOW + 10));
        assert_eq!(first.bytes_from(10), &data[10..WINDOW as usize + 10]);
        // At most `max` past the offset: a bounded socket's room.
        let middle = map(&file, PAGE + 5, len, 100).unwrap();
        assert!(!middle.holds(PAGE - 1) && middle.holds(PAGE));
        assert_eq!(middle.bytes_from(PAGE + 5).len(), 100);
        let last = map(&file, len - 7, len, WINDOW).unwrap();
        assert_eq!(last.bytes_from(len - 7), &data[len as usize - 7..]);
        assert!(!last.holds(len));
        assert_eq!(
            map(&file, len, len, WINDOW).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        std::fs::remove_file(&path).unwrap();
    }
}
