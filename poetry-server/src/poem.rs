//! [`Poem`]: what the server serves, from memory or read from its file as it goes.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::ServerError;

/// The poem compiled into the binary, served when no file is given.
pub const DEFAULT_POEM: &str = include_str!("default_poem.txt");
/// The name the default poem is served under.
pub const DEFAULT_POEM_NAME: &str = "the default poem (The Reactor's Song)";

/// Files up to this size are read into memory once at start and shared by every
/// connection; larger ones are read piece by piece as each connection needs them.
pub const IN_MEMORY_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
enum Body {
    Memory(Rc<[u8]>),
    /// One open file shared by every connection, read with `pread` at each
    /// connection's own offset.
    File(Rc<File>),
}

/// A poem: a name for the log and its bytes, shared by every connection.
#[derive(Debug, Clone)]
pub struct Poem {
    name: String,
    path: Option<PathBuf>,
    len: u64,
    body: Body,
    /// Whether the poem is valid UTF-8: known for poems in memory, `None` for streamed
    /// files (not read whole at start).
    utf8: Option<bool>,
}

/// What a streamed file looked like when a connection started: a send that ends with
/// the file in another state did not deliver the poem it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    len: u64,
    modified: (i64, i64),
}

impl FileState {
    fn of(file: &File) -> io::Result<FileState> {
        use std::os::unix::fs::MetadataExt;
        let metadata = file.metadata()?;
        Ok(FileState {
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
        })
    }

    /// Whether a file that was `self` and is now `now` still holds the same first
    /// `served` bytes, as far as its size and modification time tell: it may have grown
    /// (appended to; its time moves then) but not shrunk below what is served, and at
    /// an unchanged size its time must not have moved (rewritten in place).
    pub fn still_serves(&self, now: &FileState, served: u64) -> bool {
        if now.len < served || now.len < self.len {
            return false;
        }
        now.len > self.len || now.modified == self.modified
    }
}

/// Reads `file` to its end, `None` once it holds more than [`IN_MEMORY_LIMIT`]. Reads
/// go in 64 KiB steps, aligned as files such as `/proc/self/pagemap` require.
fn read_capped(file: &mut File, size_hint: u64) -> io::Result<Option<Vec<u8>>> {
    const STEP: usize = 64 * 1024;
    let mut bytes = Vec::with_capacity(size_hint.min(IN_MEMORY_LIMIT) as usize);
    let mut chunk = vec![0u8; STEP];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(Some(bytes)),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if bytes.len() as u64 > IN_MEMORY_LIMIT {
            return Ok(None);
        }
    }
}

/// Whether the byte of `file` at `offset` is in the page cache: a one-byte
/// `preadv2(RWF_NOWAIT)`, which reads only what is cached. `false` where the file
/// system cannot say.
fn cached(file: &File, offset: u64) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(offset) = libc::off_t::try_from(offset) else {
        return false;
    };
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: `iov` points at one writable byte for the length of the call; the
    // descriptor is open.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    n == 1
}

/// `posix_fadvise(2)` on `file`.
fn advise(file: &File, offset: u64, len: u64, advice: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: no pointers; the descriptor is open for the length of the call.
    match unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, advice) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

impl Poem {
    /// The poem compiled into the binary.
    pub fn default_poem() -> Poem {
        Poem::from_bytes(DEFAULT_POEM_NAME, DEFAULT_POEM.as_bytes())
    }

    /// A poem held in memory.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Poem {
        Poem {
            name: name.to_owned(),
            path: None,
            len: bytes.len() as u64,
            body: Body::Memory(Rc::from(bytes)),
            utf8: Some(std::str::from_utf8(bytes).is_ok()),
        }
    }

    /// Opens the poem at `path`: small files are read at once, large ones streamed.
    ///
    /// # Errors
    ///
    /// [`ServerError::Poem`] if the file cannot be opened or read,
    /// [`ServerError::NotAFile`] for a directory or other non-file.
    pub fn open(path: &Path) -> Result<Poem, ServerError> {
        let error = |source| ServerError::Poem {
            path: path.to_path_buf(),
            source,
        };
        // Non-blocking, so that a FIFO (which would wait for a writer) or a device is
        // opened at once and refused below; a regular file ignores the flag.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(error)?;
        let metadata = file.metadata().map_err(error)?;
        if !metadata.is_file() {
            return Err(ServerError::NotAFile(path.to_path_buf()));
        }
        let len = metadata.len();
        let body = if len <= IN_MEMORY_LIMIT {
            // Never more than the limit, whatever the size said: files of /proc read
            // as empty and may hold anything (`/proc/self/pagemap`: terabytes).
            let bytes = read_capped(&mut file, len).map_err(error)?;
            match bytes {
                Some(bytes) => Body::Memory(Rc::from(bytes)),
                None => return Err(ServerError::Unsized(path.to_path_buf())),
            }
        } else {
            // Streamed from start to end by every client: ask the kernel for its larger
            // sequential read-ahead. Advice only: a file system that takes none serves
            // as well.
            let _ = advise(&file, 0, 0, libc::POSIX_FADV_SEQUENTIAL);
            Body::File(Rc::new(file))
        };
        let (len, utf8) = match &body {
            Body::Memory(bytes) => (bytes.len() as u64, Some(std::str::from_utf8(bytes).is_ok())),
            Body::File(_) => (len, None),
        };
        Ok(Poem {
            name: path.display().to_string(),
            path: Some(path.to_path_buf()),
            len,
            body,
            utf8,
        })
    }

    /// The state of the streamed file now; `None` for poems held in memory, which
    /// cannot change.
    ///
    /// # Errors
    ///
    /// As `fstat(2)`.
    pub fn file_state(&self) -> io::Result<Option<FileState>> {
        match &self.body {
            Body::File(file) => FileState::of(file).map(Some),
            Body::Memory(_) => Ok(None),
        }
    }

    /// Where a slow-mode piece that starts at `offset` and may hold `max` bytes ends,
    /// so that it never splits a UTF-8 character: rounded down to the character
    /// boundary before `offset + max`, or up to the end of the first character when
    /// that is longer than `max`. Poems that are not UTF-8 are cut at `max` bytes.
    /// `window` holds the poem's bytes from `offset` (up to `max + 3` of them, enough
    /// to see the character the cut falls in). Returns the piece's length.
    pub fn piece_len(&self, window: &[u8], max: usize) -> usize {
        if window.len() <= max || self.utf8 == Some(false) {
            return window.len().min(max);
        }
        // A streamed poem is not known whole: round only where the bytes around the
        // cut are valid UTF-8.
        let valid = match std::str::from_utf8(window) {
            Ok(_) => window.len(),
            Err(e) => e.valid_up_to(),
        };
        if valid <= max {
            return max;
        }
        let continues = |i: usize| window[i] & 0xC0 == 0x80;
        let mut end = max;
        while end > 0 && continues(end) {
            end -= 1;
        }
        if end == 0 {
            end = 1;
            while end < valid && continues(end) {
                end += 1;
            }
        }
        debug_assert!(std::str::from_utf8(&window[..end]).is_ok());
        end
    }

    /// The name it is served under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it came from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Its length in bytes (as it was when opened).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes at `offset`, as many as fit in `buf` and remain; `Ok(0)` at the end.
    /// In-memory poems answer with a slice and no copy through `with_chunk`.
    ///
    /// # Errors
    ///
    /// The file's read error.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let want = buf.len().min((self.len - offset) as usize);
        match &self.body {
            Body::Memory(bytes) => {
                let start = offset as usize;
                buf[..want].copy_from_slice(&bytes[start..start + want]);
                Ok(want)
            }
            Body::File(file) => loop {
                match file.read_at(&mut buf[..want], offset) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => return other,
                }
            },
        }
    }

    /// Asks the kernel to start reading `len` bytes from `offset` into the page cache
    /// now (`posix_fadvise(WILLNEED)`), so that a cold file is read ahead of the sends
    /// that need it; nothing for poems held in memory, or when the range's last byte is
    /// cached already (a warm file: walking the cached pages would cost CPU for
    /// nothing). Advice only: it never waits for the disk and its failure changes
    /// nothing.
    pub fn read_ahead(&self, offset: u64, len: u64) {
        if let Body::File(file) = &self.body {
            if len > 0 && !cached(file, offset + len - 1) {
                let _ = advise(file, offset, len, libc::POSIX_FADV_WILLNEED);
            }
        }
    }

    /// The open file, for poems streamed from disk (the fast server sends it with
    /// `sendfile`); `None` for poems held in memory.
    pub fn file(&self) -> Option<Rc<File>> {
        match &self.body {
            Body::File(file) => Some(file.clone()),
            Body::Memory(_) => None,
        }
    }

    /// The in-memory bytes from `offset`, up to `max`: no copy for poems held in
    /// memory; `None` for streamed files.
    pub fn memory_chunk(&self, offset: u64, max: usize) -> Option<&[u8]> {
        match &self.body {
            Body::Memory(bytes) => {
                let start = (offset.min(self.len)) as usize;
                let end = start.saturating_add(max).min(bytes.len());
                Some(&bytes[start..end])
            }
            Body::File(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_poem_is_served_whole() {
        let poem = Poem::default_poem();
        let mut buf = vec![0u8; poem.len() as usize + 10];
        let n = poem.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..n], DEFAULT_POEM.as_bytes());
        assert_eq!(poem.read_at(poem.len(), &mut buf).unwrap(), 0);
        assert_eq!(
            poem.memory_chunk(5, 3),
            Some(&DEFAULT_POEM.as_bytes()[5..8])
        );
    }

    #[test]
    fn large_files_are_streamed_not_loaded() {
        let dir = std::env::temp_dir().join(format!("poem-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.txt");
        let data: Vec<u8> = (0..IN_MEMORY_LIMIT as usize + 4096)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let poem = Poem::open(&path).unwrap();
        assert!(poem.memory_chunk(0, 10).is_none());
        let mut buf = vec![0u8; 8192];
        let n = poem.read_at(IN_MEMORY_LIMIT, &mut buf).unwrap();
        assert_eq!(&buf[..n], &data[IN_MEMORY_LIMIT as usize..]);
        assert!(matches!(Poem::open(&dir), Err(ServerError::NotAFile(_))));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(Poem::open(&path), Err(ServerError::Poem { .. })));
    }

    /// Cuts `bytes` into slow-mode pieces of at most `max` bytes, as the server does.
    fn pieces(poem: &Poem, bytes: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut offset = 0;
        let mut out = Vec::new();
        while offset < bytes.len() {
            let window = &bytes[offset..bytes.len().min(offset + max + 3)];
            let n = poem.piece_len(window, max);
            assert!(n > 0, "an empty piece at {offset}");
            out.push(bytes[offset..offset + n].to_vec());
            offset += n;
        }
        out
    }

    #[test]
    fn slow_pieces_of_utf8_poems_end_on_character_boundaries() {
        let text = "été, Straße, море, ΘΑΛΑΣΣΑ, ’quoted’, 🌊 waves\n".repeat(3);
        let utf8 = Poem::from_bytes("utf8", text.as_bytes());
        let streamed = Poem {
            utf8: None,
            ..utf8.clone()
        };
        for poem in [&utf8, &streamed] {
            for max in 1..=12 {
                let cut = pieces(poem, text.as_bytes(), max);
                assert_eq!(cut.concat(), text.as_bytes(), "max {max}");
                for piece in &cut {
                    let piece_text = std::str::from_utf8(piece).expect("whole characters");
                    // Longer than asked only for one character longer than `max`.
                    assert!(
                        piece.len() <= max || piece_text.chars().count() == 1,
                        "max {max}: {piece_text:?}"
                    );
                }
            }
        }
        // A binary poem is cut at `max`, whatever its bytes look like.
        let binary: Vec<u8> = [b"\xff".as_slice(), "été".as_bytes()].concat().repeat(4);
        let poem = Poem::from_bytes("binary", &binary);
        let cut = pieces(&poem, &binary, 3);
        assert!(cut[..cut.len() - 1].iter().all(|p| p.len() == 3));
        assert_eq!(cut.concat(), binary);
    }

    #[test]
    fn a_fifo_is_refused_at_once_not_waited_on() {
        let dir = std::env::temp_dir().join(format!("poem-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Opening it for reading would block until a writer came, without the flag.
        assert!(matches!(Poem::open(&fifo), Err(ServerError::NotAFile(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
