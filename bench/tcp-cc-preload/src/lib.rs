//! An `LD_PRELOAD` shim that gives every accepted TCP socket the congestion control
//! named by `TWISTIER_TCP_CC`.
//!
//! The bulk benchmark compares servers written in Rust, Python and against different
//! runtimes. Loopback throughput depends heavily on the congestion control (BBR's
//! pacing costs a timer interrupt every few packets), so a fair comparison runs every
//! server under the same one, without changing the peers' code:
//!
//! ```text
//! LD_PRELOAD=target/release/libtcp_cc_preload.so TWISTIER_TCP_CC=reno SERVER ARGS...
//! ```
//!
//! The shim wraps `accept(2)` and `accept4(2)`: it calls the C library's own (found
//! with `dlsym(RTLD_NEXT, ...)`), then, when the new descriptor is a TCP socket, sets
//! `TCP_CONGESTION` on it. A failure (an algorithm the kernel does not have or does not
//! let this user pick) is said once on stderr and the socket is returned unchanged:
//! `cargo xtask bench` checks every server's socket from outside (`ss -ti`) and
//! refuses figures taken under another algorithm. Without `TWISTIER_TCP_CC` it changes
//! nothing.

use std::ffi::{c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use libc::{sockaddr, socklen_t};

/// The environment variable naming the algorithm (`reno`, `cubic`, `bbr`, ...).
pub const VARIABLE: &str = "TWISTIER_TCP_CC";

type AcceptFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
type Accept4Fn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;

/// The algorithm asked for, read once.
fn wanted() -> Option<&'static CString> {
    static WANTED: OnceLock<Option<CString>> = OnceLock::new();
    WANTED
        .get_or_init(|| {
            let name = std::env::var(VARIABLE).ok()?;
            CString::new(name).ok().filter(|n| !n.is_empty())
        })
        .as_ref()
}

/// The next definition of `name` after this object's (the C library's).
fn next_symbol(name: &'static std::ffi::CStr) -> usize {
    // SAFETY: `name` is a valid C string; RTLD_NEXT asks the dynamic linker for the next
    // definition in lookup order, which is a plain query with no other effect.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
}

/// Sets the wanted algorithm on `fd` if it is a TCP socket; says once if it cannot.
fn apply(fd: c_int) {
    let Some(name) = wanted() else {
        return;
    };
    if fd < 0 || !is_tcp(fd) {
        return;
    }
    let bytes = name.as_bytes();
    // SAFETY: `fd` is a descriptor the caller just received; the option value is
    // `bytes.len()` readable bytes that live for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            bytes.as_ptr().cast(),
            bytes.len() as socklen_t,
        )
    };
    if rc != 0 {
        static SAID: AtomicBool = AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            let error = std::io::Error::last_os_error();
            eprintln!(
                "tcp-cc-preload: cannot set congestion control {:?}: {error}",
                name.to_string_lossy()
            );
        }
    }
}

/// Whether `fd` is a TCP socket.
fn is_tcp(fd: c_int) -> bool {
    let mut protocol: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: the option value points at a c_int of the length given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PROTOCOL,
            (&mut protocol as *mut c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && protocol == libc::IPPROTO_TCP
}

/// `accept(2)`, then the congestion control on the new socket.
///
/// # Safety
///
/// As the C library's `accept`: `addr` and `len` are null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    static REAL: OnceLock<usize> = OnceLock::new();
    let real = *REAL.get_or_init(|| next_symbol(c"accept"));
    if real == 0 {
        // SAFETY: errno is thread-local and always writable.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    }
    // SAFETY: `real` is the C library's `accept`, which has this signature; the caller
    // upholds its contract for the arguments.
    let new = unsafe { std::mem::transmute::<usize, AcceptFn>(real)(fd, addr, len) };
    apply(new);
    new
}

/// `accept4(2)`, then the congestion control on the new socket.
///
/// # Safety
///
/// As the C library's `accept4`: `addr` and `len` are null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    static REAL: OnceLock<usize> = OnceLock::new();
    let real = *REAL.get_or_init(|| next_symbol(c"accept4"));
    if real == 0 {
        // SAFETY: errno is thread-local and always writable.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    }
    // SAFETY: `real` is the C library's `accept4`, which has this signature; the caller
    // upholds its contract for the arguments.
    let new = unsafe { std::mem::transmute::<usize, Accept4Fn>(real)(fd, addr, len, flags) };
    apply(new);
    new
}
