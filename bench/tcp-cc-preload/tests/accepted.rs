//! The shim's two wrappers, called directly: an accepted TCP socket carries the
//! algorithm asked for, read back with `getsockopt(TCP_CONGESTION)`. (One test: the
//! variable is read once per process.)

use std::ffi::c_int;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The congestion control of a socket, as the kernel reports it.
fn congestion_control(fd: c_int) -> String {
    let mut name = [0u8; 16];
    let mut len = name.len() as libc::socklen_t;
    // SAFETY: the option value points at `len` writable bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    let end = name.iter().position(|b| *b == 0).unwrap_or(len as usize);
    String::from_utf8_lossy(&name[..end]).into_owned()
}

/// An algorithm this process may pick that is not the system default: reno, which
/// Linux always has and lets anyone select (`tcp_allowed_congestion_control`).
const ASKED: &str = "reno";

#[test]
fn accepted_sockets_get_the_algorithm_asked_for() {
    // Set before the first accept, which reads it once.
    std::env::set_var(tcp_cc_preload::VARIABLE, ASKED);
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let address = listener.local_addr().expect("its address");
    for accept4 in [false, true] {
        let _client = TcpStream::connect(address).expect("connects");
        // SAFETY: a listening socket and null address pointers, as accept(2) allows.
        let fd = unsafe {
            if accept4 {
                tcp_cc_preload::accept4(
                    listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            } else {
                tcp_cc_preload::accept(
                    listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            }
        };
        assert!(fd >= 0, "accept: {}", std::io::Error::last_os_error());
        // SAFETY: accept returned a new descriptor that nothing else owns.
        let accepted = unsafe { OwnedFd::from_raw_fd(fd) };
        assert_eq!(
            congestion_control(accepted.as_raw_fd()),
            ASKED,
            "accept4: {accept4}"
        );
    }
}
