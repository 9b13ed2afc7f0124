//! [`Address`]: where a transport's end is (Twisted's `IPv4Address`, `IPv6Address`,
//! `UNIXAddress`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One end of a stream connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP end, IPv4 or IPv6 (Twisted's `IPv4Address` / `IPv6Address`).
    Tcp(SocketAddr),
    /// A Unix-domain socket end; `None` for an unnamed socket (Twisted's `UNIXAddress`).
    Unix(Option<PathBuf>),
    /// One end of an in-memory stream pair, numbered for logs.
    Memory(u64),
    /// Standard input and output, or a child process's pipes (Twisted's
    /// `PipeAddress`).
    Pipe,
}

impl Address {
    /// The TCP socket address, if this is a TCP end.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The port of a TCP end.
    pub fn port(&self) -> Option<u16> {
        self.tcp().map(|a| a.port())
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Tcp(addr)
    }
}

impl From<std::os::unix::net::SocketAddr> for Address {
    fn from(addr: std::os::unix::net::SocketAddr) -> Self {
        Address::Unix(addr.as_pathname().map(|p| p.to_path_buf()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
            Address::Memory(n) => write!(f, "memory:{n}"),
            Address::Pipe => f.write_str("pipe"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_host_port() {
        let v4: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let v6: SocketAddr = "[::1]:8001".parse().unwrap();
        assert_eq!(Address::from(v4).to_string(), "127.0.0.1:8000");
        assert_eq!(Address::from(v6).to_string(), "[::1]:8001");
        assert_eq!(Address::from(v6).port(), Some(8001));
        assert_eq!(Address::Unix(None).to_string(), "unix:(unnamed)");
        assert_eq!(Address::Memory(3).port(), None);
    }
}
