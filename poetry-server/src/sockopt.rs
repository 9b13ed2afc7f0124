//! The socket options the poetry server sets on each connection, and the kernel
//! budget that sizes its send buffers.
//!
//! The transport lends the socket (`Transport::handle`, Twisted's `getHandle`); these
//! are the server's own choices, so they live here.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

/// How large a kernel send buffer each connection may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendBuffer {
    /// Sized from the machine's TCP memory (`net.ipv4.tcp_mem`) and
    /// `max_connections`, so that that many clients that never read cannot take
    /// more than half of what the kernel allows TCP before it is under pressure
    /// (see [`budgeted_send_buffer`]).
    #[default]
    Budgeted,
    /// `SO_SNDBUF` of this many bytes (the kernel doubles it for its bookkeeping).
    Bytes(usize),
    /// The kernel's own autotuning (up to `net.ipv4.tcp_wmem`'s maximum per
    /// connection), unbounded by the server.
    Kernel,
}

/// What one connection's send queue may take beyond `2 × SO_SNDBUF`: the kernel
/// accepts one more segment (up to 64 KiB on loopback) past the limit.
const SEGMENT_SLACK: u64 = 64 * 1024;
/// The smallest `SO_SNDBUF` worth setting (the kernel's own floor is about 4.5 KiB).
const MIN_SEND_BUFFER: u64 = 8 * 1024;

/// The `SO_SNDBUF` that keeps `max_connections` full send queues within half of the
/// kernel's TCP pressure threshold, given `tcp_mem` (pages: min, pressure, max) and
/// `tcp_wmem` (bytes: min, default, max); `None` when autotuning could never exceed
/// it (few connections), so the kernel's own sizing is kept.
pub fn send_buffer_for(
    tcp_mem: [u64; 3],
    tcp_wmem: [u64; 3],
    max_connections: usize,
) -> Option<usize> {
    let budget = tcp_mem[1].saturating_mul(4096) / 2;
    let per_connection = budget / (max_connections.max(1) as u64);
    if per_connection >= 2 * tcp_wmem[2] + SEGMENT_SLACK {
        return None;
    }
    let size = (per_connection.saturating_sub(SEGMENT_SLACK) / 2).max(MIN_SEND_BUFFER);
    Some(size as usize)
}

fn read_triple(path: &str) -> Option<[u64; 3]> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// [`send_buffer_for`] with this machine's `tcp_mem` and `tcp_wmem`; when they cannot
/// be read, the most conservative choice (the floor).
pub fn budgeted_send_buffer(max_connections: usize) -> Option<usize> {
    match (
        read_triple("/proc/sys/net/ipv4/tcp_mem"),
        read_triple("/proc/sys/net/ipv4/tcp_wmem"),
    ) {
        (Some(mem), Some(wmem)) => send_buffer_for(mem, wmem, max_connections),
        _ => Some(MIN_SEND_BUFFER as usize),
    }
}

/// Whether closing the socket resets the connection (`SO_LINGER` {on, 0}) or ends
/// it gracefully (linger off). A poem that is not yet whole is reset whoever closes
/// it, the process's own death included: the kernel then sends a reset, not a FIN.
pub(crate) fn reset_on_close(fd: BorrowedFd<'_>, reset: bool) -> io::Result<()> {
    SockRef::from(&fd).set_linger(reset.then_some(Duration::ZERO))
}

/// `TCP_CORK`: hold partial segments until uncorked.
pub(crate) fn set_cork(fd: BorrowedFd<'_>, cork: bool) -> io::Result<()> {
    SockRef::from(&fd).set_cork(cork)
}

/// `TCP_CONGESTION`.
pub(crate) fn set_congestion(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    SockRef::from(&fd).set_tcp_congestion(name.as_bytes())
}

/// Whether this process may use congestion control `name`: set on a fresh socket, as
/// it will be on every connection (unknown: `ENOENT`; not allowed: `EPERM`).
///
/// # Errors
///
/// The error setting it gave.
pub fn check_congestion(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() >= 16 || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a congestion control name",
        ));
    }
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_tcp_congestion(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's figures when the budget was written: tcp_mem 287898 383866
    /// 575796 pages, tcp_wmem 4096 16384 4194304.
    const MEM: [u64; 3] = [287_898, 383_866, 575_796];
    const WMEM: [u64; 3] = [4096, 16_384, 4_194_304];

    #[test]
    fn the_cap_of_never_readers_fits_in_half_the_pressure_threshold() {
        for max in [1, 16, 64, 100, 1000, 4096, 100_000, 1_000_000] {
            let worst = match send_buffer_for(MEM, WMEM, max) {
                Some(size) => 2 * size as u64 + SEGMENT_SLACK,
                None => 2 * WMEM[2] + SEGMENT_SLACK,
            };
            let total = worst * max as u64;
            let floor = (2 * MIN_SEND_BUFFER + SEGMENT_SLACK) * max as u64;
            assert!(
                total <= MEM[1] * 4096 / 2 || total == floor,
                "{max} connections could queue {total} bytes"
            );
        }
        assert_eq!(send_buffer_for(MEM, WMEM, 4096), Some(63_198));
        assert_eq!(send_buffer_for(MEM, WMEM, 64), None);
        assert_eq!(
            send_buffer_for(MEM, WMEM, 1_000_000),
            Some(MIN_SEND_BUFFER as usize)
        );
    }

    #[test]
    fn congestion_names_are_checked_before_use() {
        assert!(check_congestion("no-such-algorithm").is_err());
        assert!(check_congestion("").is_err());
        assert!(check_congestion("x\0y").is_err());
        assert!(check_congestion(&"r".repeat(40)).is_err());
        // Every Linux kernel builds reno in, and unprivileged processes may use it.
        check_congestion("reno").unwrap();
    }
}
