//! The bare references of the bulk scenario: no event loop at all. One client at a
//! time, blocking calls, the poem sent whole, then the next client. What is left is
//! the kernel's own cost of each way to move a file to a socket, the figures a
//! server with any design can at best approach (issue 16's C references).

use std::fs::File;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use socket2::SockRef;

/// How the bare server moves the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareMode {
    /// `sendfile(2)` in asks of [`SENDFILE_ASK`], corked (`TCP_CORK`) until the end.
    Sendfile,
    /// `pread` into one reused buffer of [`PREAD_BUFFER`], then `write` it all.
    Pread,
}

/// Bytes asked of one `sendfile` call.
pub const SENDFILE_ASK: usize = 4 * 1024 * 1024;
/// The one buffer of the `pread` mode.
pub const PREAD_BUFFER: usize = 1024 * 1024;

/// A blocking listener on `addr` with the servers' contract backlog of 1024.
///
/// # Errors
///
/// The socket's, `bind`'s or `listen`'s error.
pub fn bind_bare(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    crate::server::std_listener(addr, false)
}

/// Serves `file` to each client of `listener` in turn, for ever. A client that
/// leaves early ends its send; the next one is served.
///
/// # Errors
///
/// `accept`'s error, or reading the file's size.
pub fn serve_bare(listener: &TcpListener, file: &File, mode: BareMode) -> io::Result<()> {
    let len = file.metadata()?.len();
    let mut buffer = match mode {
        BareMode::Pread => vec![0u8; PREAD_BUFFER],
        BareMode::Sendfile => Vec::new(),
    };
    loop {
        let (stream, _) = listener.accept()?;
        // A client that left early (the harness's probe) is no failure of the server.
        let _ = match mode {
            BareMode::Sendfile => send_with_sendfile(&stream, file, len),
            BareMode::Pread => send_with_pread(&stream, file, len, &mut buffer),
        };
    }
}

fn send_with_sendfile(stream: &TcpStream, file: &File, len: u64) -> io::Result<()> {
    let socket = SockRef::from(stream);
    socket.set_cork(true)?;
    let mut offset: libc::off_t = 0;
    while (offset as u64) < len {
        let want = (len - offset as u64).min(SENDFILE_ASK as u64) as usize;
        // SAFETY: both descriptors are open for the call; `offset` is a valid,
        // exclusive pointer.
        let sent =
            unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, want) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else if sent == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    socket.set_cork(false)
}

fn send_with_pread(
    mut stream: &TcpStream,
    file: &File,
    len: u64,
    buffer: &mut [u8],
) -> io::Result<()> {
    let mut offset = 0u64;
    while offset < len {
        let want = (len - offset).min(buffer.len() as u64) as usize;
        let got = file.read_at(&mut buffer[..want], offset)?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        stream.write_all(&buffer[..got])?;
        offset += got as u64;
    }
    Ok(())
}
