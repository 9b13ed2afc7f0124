//! Checks made once at start, before `Serving …` is printed: that no other process
//! shares the port, and that the descriptor limit leaves room for a client.

use std::collections::HashSet;

use crate::error::ServerError;

/// The inodes of this process's sockets (`/proc/self/fd/N -> socket:[inode]`).
fn own_socket_inodes() -> HashSet<u64> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// A listening TCP socket of the machine (its network namespace): local address
/// (hex, as the kernel prints it), port and inode.
#[derive(Debug, PartialEq, Eq)]
struct Listening {
    address: String,
    port: u16,
    inode: u64,
}

/// The listening sockets in a `/proc/net/tcp` or `tcp6` table.
fn listening_in(table: &str) -> Vec<Listening> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, port) = fields.get(1)?.split_once(':')?;
            if *fields.get(3)? != "0A" {
                return None;
            }
            Some(Listening {
                address: address.to_owned(),
                port: u16::from_str_radix(port, 16).ok()?,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Whether a listener on `a` and one on `b` (same port) take the same connections:
/// the same address, or either is the wildcard.
fn overlap(a: &str, b: &str) -> bool {
    let wildcard = |s: &str| s.bytes().all(|c| c == b'0');
    a == b || wildcard(a) || wildcard(b)
}

/// Refuses a port that another process listens on as well: `SO_REUSEPORT` (which
/// `--reactors N` needs) would otherwise share its connections with that process
/// silently. A listener joining after this check is that process's choice.
///
/// # Errors
///
/// [`ServerError::PortShared`] if a listening socket on `port` is not ours.
pub(crate) fn sole_listener(port: u16) -> Result<(), ServerError> {
    let ours = own_socket_inodes();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            listening.extend(listening_in(&text).into_iter().filter(|l| l.port == port));
        }
    }
    let (mine, theirs): (Vec<_>, Vec<_>) =
        listening.into_iter().partition(|l| ours.contains(&l.inode));
    let shared = theirs
        .iter()
        .any(|t| mine.iter().any(|m| overlap(&m.address, &t.address)));
    if shared {
        return Err(ServerError::PortShared(port));
    }
    Ok(())
}

/// Refuses to start when no descriptor is left for a single client: the server would
/// listen and then serve no one.
///
/// # Errors
///
/// [`ServerError::Descriptors`] when a new descriptor cannot be had.
pub(crate) fn can_serve_one() -> Result<(), ServerError> {
    // Stand-ins for an accepted client and the file a poem may need reopened never
    // are; one spare is what a client takes.
    // SAFETY: F_DUPFD_CLOEXEC on standard error (or any open descriptor) only creates a
    // new descriptor, which is closed at once.
    let spare = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 0) };
    if spare >= 0 {
        // SAFETY: `spare` was just created here and is closed once.
        unsafe { libc::close(spare) };
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EMFILE) {
        // Standard error closed: nothing to duplicate, which says nothing of the limit.
        return Ok(());
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    Err(ServerError::Descriptors {
        limit: limit.rlim_cur,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_read_from_the_kernel_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2710 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2710 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:2711 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4444 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(
            listening_in(table),
            [
                Listening {
                    address: "0100007F".into(),
                    port: 10000,
                    inode: 4242
                },
                Listening {
                    address: "00000000".into(),
                    port: 10001,
                    inode: 4444
                },
            ]
        );
        assert!(overlap("0100007F", "00000000"));
        assert!(!overlap("0100007F", "0200007F"));
    }
}
