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
    /// more than half of what the kernel allows TCP before it is under pressure; an
    /// eighth of that half lets a few bulk downloads at once keep the kernel's
    /// autotuning (see [`SendBudget`]).
    #[default]
    Budgeted,
    /// `SO_SNDBUF` of this many bytes (the kernel doubles it for its bookkeeping).
    Bytes(usize),
    /// The kernel's own autotuning (up to `net.ipv4.tcp_wmem`'s maximum per
    /// connection), unbounded by the server.
    Kernel,
}

/// What one connection's send queue may take beyond its limit: the kernel accepts
/// one more segment (up to 64 KiB on loopback) past it.
const SEGMENT_SLACK: u64 = 64 * 1024;
/// The smallest `SO_SNDBUF` worth setting (the kernel's own floor is about 4.5 KiB).
const MIN_SEND_BUFFER: u64 = 8 * 1024;
/// The share of the budget kept for autotuned connections: one eighth.
const AUTOTUNED_SHARE: u64 = 8;

/// How the server bounds the kernel memory its connections' send queues hold.
///
/// The budget is half of `tcp_mem`'s pressure threshold, for `max_connections`
/// clients that never read. A connection's queue is bounded by its send buffer: a
/// connection with `SO_SNDBUF` = *s* holds at most 2*s* plus one segment; one the
/// kernel autotunes, at most `tcp_wmem`'s maximum plus one segment. Up to an
/// eighth of the budget is kept for [`autotuned`](Self::autotuned) connections (fast
/// mode's bulk downloads) that keep the kernel's autotuning (a lone bulk download then
/// streams as fast as with `--send-buffer kernel`), but only what the other
/// connections' floor leaves; every other connection whose poem could fill more than
/// its share gets `SO_SNDBUF` = [`bounded`](Self::bounded). So however the clients
/// behave, `autotuned` autotuned queues and the rest bounded fit in the budget —
/// unless even the floor of 8 KiB for every connection does not
/// ([`over_budget`](Self::over_budget): too many `max_connections` for this machine's
/// TCP memory; the server warns at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBudget {
    /// `SO_SNDBUF` for a connection without an autotuned place; `None` when no
    /// bound is needed (the kernel's autotuning for every connection).
    pub bounded: Option<usize>,
    /// Connections that may keep the kernel's autotuning at once.
    pub autotuned: usize,
    /// Even the smallest send buffer for every connection exceeds the budget: that
    /// many clients that never read can pin more than half of `tcp_mem`'s pressure
    /// threshold.
    pub over_budget: bool,
}

impl SendBudget {
    /// No bound: the kernel's autotuning for every connection.
    pub const KERNEL: SendBudget = SendBudget {
        bounded: None,
        autotuned: usize::MAX,
        over_budget: false,
    };

    /// Every connection bounded to `SO_SNDBUF` = `bytes`.
    pub fn fixed(bytes: usize) -> SendBudget {
        SendBudget {
            bounded: Some(bytes),
            autotuned: 0,
            over_budget: false,
        }
    }

    /// The budget for `max_connections`, given `tcp_mem` (pages: min, pressure,
    /// max) and `tcp_wmem` (bytes: min, default, max).
    pub fn for_machine(tcp_mem: [u64; 3], tcp_wmem: [u64; 3], max_connections: usize) -> Self {
        let budget = tcp_mem[1].saturating_mul(4096) / 2;
        let connections = max_connections.max(1) as u64;
        let autotuned_queue = tcp_wmem[2] + SEGMENT_SLACK;
        if budget / connections >= autotuned_queue {
            return SendBudget::KERNEL;
        }
        // Places come out of what every connection's floor leaves, up to an eighth.
        let floors = connections.saturating_mul(2 * MIN_SEND_BUFFER + SEGMENT_SLACK);
        let for_places = (budget / AUTOTUNED_SHARE).min(budget.saturating_sub(floors));
        let autotuned = (for_places / autotuned_queue).min(connections);
        let per_connection = (budget - autotuned * autotuned_queue) / connections;
        let size = (per_connection.saturating_sub(SEGMENT_SLACK) / 2).max(MIN_SEND_BUFFER);
        SendBudget {
            bounded: Some(size as usize),
            autotuned: autotuned as usize,
            over_budget: floors > budget,
        }
    }

    /// [`for_machine`](Self::for_machine) with this machine's `tcp_mem` and
    /// `tcp_wmem`; when they cannot be read, the most conservative choice (the
    /// floor, no autotuned places).
    pub fn of_this_machine(max_connections: usize) -> Self {
        match (
            read_triple("/proc/sys/net/ipv4/tcp_mem"),
            read_triple("/proc/sys/net/ipv4/tcp_wmem"),
        ) {
            (Some(mem), Some(wmem)) => SendBudget::for_machine(mem, wmem, max_connections),
            // Unknown figures: the floor, no place, and nothing to warn about.
            _ => SendBudget::fixed(MIN_SEND_BUFFER as usize),
        }
    }

    /// The most a bounded connection's send queue may hold (the kernel doubles
    /// `SO_SNDBUF` and takes one segment beyond); `None` when nothing is bounded.
    pub fn bounded_queue(&self) -> Option<u64> {
        self.bounded.map(|size| 2 * size as u64 + SEGMENT_SLACK)
    }

    /// Whether a queue of `len` bytes, the whole poem, could hold more than a
    /// bounded connection may: only such connections need a place or a bound.
    pub fn could_overflow(&self, len: u64) -> bool {
        self.bounded_queue().is_some_and(|queue| len > queue)
    }
}

fn read_triple(path: &str) -> Option<[u64; 3]> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// `SO_SNDBUF`.
pub(crate) fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    SockRef::from(&fd).set_send_buffer_size(bytes)
}

/// Whether closing the socket resets the connection (`SO_LINGER` {on, 0}) or ends
/// it gracefully (linger off). A poem that is not yet whole is reset whoever closes
/// it, the process's own death included: the kernel then sends a reset, not a FIN.
pub(crate) fn reset_on_close(fd: BorrowedFd<'_>, reset: bool) -> io::Result<()> {
    SockRef::from(&fd).set_linger(reset.then_some(Duration::ZERO))
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

    /// The most a queue may hold under `budget` when its connection is autotuned
    /// or bounded.
    fn worst(budget: &SendBudget, autotuned: bool) -> u64 {
        match (autotuned, budget.bounded) {
            (false, Some(size)) => 2 * size as u64 + SEGMENT_SLACK,
            _ => WMEM[2] + SEGMENT_SLACK,
        }
    }

    #[test]
    fn the_cap_of_never_readers_fits_in_half_the_pressure_threshold() {
        for max in [
            1, 16, 64, 100, 187, 188, 1000, 4096, 8000, 10_000, 100_000, 1_000_000,
        ] {
            let budget = SendBudget::for_machine(MEM, WMEM, max);
            let places = budget.autotuned.min(max) as u64;
            let rest = max as u64 - places;
            let total = places * worst(&budget, true) + rest * worst(&budget, false);
            let fits = total <= MEM[1] * 4096 / 2;
            // Only a cap whose floor alone overflows may exceed it, then with no
            // place and the flag the server warns with.
            assert!(
                fits || (budget.over_budget && places == 0),
                "{max} connections could queue {total} bytes"
            );
            assert_eq!(budget.over_budget, !fits, "{max} connections");
        }
        // 4,096 connections: 23 autotuned places, the rest 51,238 B (the kernel
        // doubles it).
        let default = SendBudget::for_machine(MEM, WMEM, 4096);
        assert_eq!(default.autotuned, 23);
        assert_eq!(default.bounded, Some(51_238));
        assert_eq!(SendBudget::for_machine(MEM, WMEM, 64), SendBudget::KERNEL);
        assert_eq!(
            SendBudget::for_machine(MEM, WMEM, 1_000_000).bounded,
            Some(MIN_SEND_BUFFER as usize)
        );
    }

    #[test]
    fn places_come_only_out_of_what_the_floors_leave() {
        // An 8 GB machine's pressure threshold: 4,096 floors (336 MB) exceed its
        // 188 MB budget, so no place is kept on top of them.
        let budget = SendBudget::for_machine([69_000, 92_000, 138_000], WMEM, 4096);
        assert_eq!(budget.autotuned, 0);
        assert!(budget.over_budget);
        // 1,000 connections fit: places only out of what their floors leave.
        let budget = SendBudget::for_machine([69_000, 92_000, 138_000], WMEM, 1000);
        assert!(!budget.over_budget);
        let total = budget.autotuned as u64 * (WMEM[2] + SEGMENT_SLACK)
            + (1000 - budget.autotuned as u64)
                * (2 * budget.bounded.unwrap() as u64 + SEGMENT_SLACK);
        assert!(total <= 92_000 * 4096 / 2, "{total}");
    }

    #[test]
    fn a_small_machine_keeps_no_autotuned_place() {
        // tcp_mem of a machine with about 1 GiB: an eighth of the budget is smaller
        // than one autotuned queue.
        let small = SendBudget::for_machine([9_000, 12_000, 18_000], WMEM, 4096);
        assert_eq!(small.autotuned, 0);
        assert!(small.bounded.is_some());
        // 4,096 floors of 80 KiB are 336 MB, beyond its 24.6 MB budget: flagged.
        assert!(small.over_budget);
        // A cap it can hold: bounded, no place (its eighth is under one queue).
        let fits = SendBudget::for_machine([9_000, 12_000, 18_000], WMEM, 256);
        assert!(!fits.over_budget && fits.autotuned == 0);
        assert!(256 * (2 * fits.bounded.unwrap() as u64 + SEGMENT_SLACK) <= 12_000 * 4096 / 2);
    }

    #[test]
    fn only_poems_that_could_fill_more_than_a_bounded_queue_need_a_place() {
        let budget = SendBudget::fixed(16_384);
        assert!(!budget.could_overflow(10 * 1024));
        assert!(!budget.could_overflow(2 * 16_384 + SEGMENT_SLACK));
        assert!(budget.could_overflow(2 * 16_384 + SEGMENT_SLACK + 1));
        assert!(!SendBudget::KERNEL.could_overflow(u64::MAX));
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
