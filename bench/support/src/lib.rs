//! What the benchmark programs (the load generator and the peers) share, written once:
//! raising the descriptor limit so thousands of connections fit, and, for their
//! tests, running a server binary as a bounded subprocess on loopback.
//!
//! # Example
//!
//! ```
//! let limit = bench_support::raise_fd_limit()?;
//! assert!(limit > 0);
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod served;

use std::io;

/// Raises this process's soft limit on open files to its hard limit and returns the new
/// soft limit.
///
/// # Errors
///
/// The error of `getrlimit` or `setrlimit`.
///
/// # Examples
///
/// ```
/// let limit = bench_support::raise_fd_limit()?;
/// assert!(limit > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid `rlimit`; the kernel only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}
