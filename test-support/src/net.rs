//! Loopback sockets as tests need them.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Closes `stream` with a reset (`SO_LINGER` {on, 0}) instead of a FIN.
///
/// # Panics
///
/// If the option cannot be set.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

/// `tcpi_state` of an established connection (Linux's `TCP_ESTABLISHED`).
pub const TCP_ESTABLISHED: u8 = 1;

/// The kernel's TCP state of our end of `stream` (`tcpi_state`), read without touching
/// the data.
///
/// # Panics
///
/// If `getsockopt(TCP_INFO)` fails.
pub fn tcp_state(stream: &TcpStream) -> u8 {
    use std::os::fd::AsRawFd;
    // struct tcp_info begins with the one-byte state; the kernel fills what fits.
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt TCP_INFO");
    info[0]
}

/// A loopback port with nothing listening on it (bound, then released).
///
/// # Panics
///
/// If loopback cannot be bound.
pub fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("a local address").port()
}

/// The number after `on port ` in a start line (`Serving x on port 10000.`).
pub fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("on port ")? + "on port ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_port_in_a_start_line() {
        assert_eq!(
            parse_port("Serving lighthouse.txt on port 10000."),
            Some(10000)
        );
        assert_eq!(parse_port("Serving echo on port 7"), Some(7));
        assert_eq!(parse_port("no port here"), None);
        assert_eq!(parse_port("on port 99999"), None);
    }
}
