//! Parsing the client's addresses: `PORT`, `HOST:PORT` or `[IPV6]:PORT`.

use std::error::Error;
use std::fmt;
use std::str::FromStr;

use poetry_cli::shorten;

/// Where to fetch a poem from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoemAddress {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for PoemAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why an address argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// The port is not a number (the tutorial's `Ports must be integers.`).
    PortNotInteger,
    /// The port is 0 or above 65535.
    PortOutOfRange(String),
    /// Nothing before the colon, an unclosed `[`, an IPv6 address without its
    /// brackets, a host name longer than DNS allows (253) or with characters no host
    /// name has.
    BadHost(String),
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::PortNotInteger => f.write_str("Ports must be integers."),
            AddressError::PortOutOfRange(port) => {
                write!(f, "Port {port} is out of range (1-65535).")
            }
            AddressError::BadHost(arg) => write!(
                f,
                "Bad address '{arg}': expected PORT, HOST:PORT or [IPV6]:PORT."
            ),
        }
    }
}

impl Error for AddressError {}

/// The longest host name DNS allows, in text form.
const MAX_HOST_LEN: usize = 253;

fn parse_port(text: &str) -> Result<u16, AddressError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::PortNotInteger);
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(AddressError::PortOutOfRange(shorten(text))),
    }
}

impl FromStr for PoemAddress {
    type Err = AddressError;

    /// As [`parse_address`] (so `clap` takes a `PoemAddress` argument as it is).
    fn from_str(arg: &str) -> Result<Self, AddressError> {
        parse_address(arg)
    }
}

/// Parses one address argument, as the tutorial's `parse_args`: a bare port means
/// `127.0.0.1`.
///
/// # Errors
///
/// [`AddressError`] naming what is wrong; a non-numeric port is
/// [`AddressError::PortNotInteger`].
///
/// # Examples
///
/// ```
/// use poetry_client::{parse_address, AddressError};
///
/// assert_eq!(parse_address("10000").unwrap().to_string(), "127.0.0.1:10000");
/// assert_eq!(parse_address("[::1]:10001").unwrap().host, "::1");
/// assert_eq!(parse_address("localhost:ten"), Err(AddressError::PortNotInteger));
/// ```
pub fn parse_address(arg: &str) -> Result<PoemAddress, AddressError> {
    let bad = || AddressError::BadHost(shorten(arg));
    let (host, port) = if let Some(rest) = arg.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = after.strip_prefix(':').ok_or_else(bad)?;
        (host, port)
    } else {
        match arg.rsplit_once(':') {
            // An IPv6 address needs its brackets: `::1:10000` is ambiguous.
            Some((host, _)) if host.contains(':') => return Err(bad()),
            Some((host, port)) => (host, port),
            None => ("127.0.0.1", arg),
        }
    };
    let port = parse_port(port)?;
    // Host names, IPv4 and IPv6 literals (with a `%zone`) use no other characters;
    // refusing the rest keeps every accepted address printable and parsable again.
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%');
    if host.is_empty() || host.len() > MAX_HOST_LEN || !host.chars().all(host_char) {
        return Err(bad());
    }
    Ok(PoemAddress {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_forms() {
        let a = parse_address("10000").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 10000));
        let b = parse_address("example.org:79").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("example.org", 79));
        let c = parse_address("[::1]:10002").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 10002));
        assert_eq!(c.to_string(), "[::1]:10002");
        assert_eq!("example.org:79".parse::<PoemAddress>(), Ok(b));
    }

    #[test]
    fn refuses_bad_ports_and_hosts() {
        assert_eq!(parse_address("abc"), Err(AddressError::PortNotInteger));
        assert_eq!(parse_address("host:"), Err(AddressError::PortNotInteger));
        assert_eq!(parse_address("host:-1"), Err(AddressError::PortNotInteger));
        assert_eq!(parse_address("host:+5"), Err(AddressError::PortNotInteger));
        assert!(matches!(
            parse_address("0"),
            Err(AddressError::PortOutOfRange(_))
        ));
        assert!(matches!(
            parse_address("65536"),
            Err(AddressError::PortOutOfRange(_))
        ));
        assert!(
            matches!(parse_address(&"9".repeat(10_000)), Err(AddressError::PortOutOfRange(p)) if p.len() < 50)
        );
        assert!(matches!(
            parse_address(":10000"),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            parse_address("[::1:10000"),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            parse_address("[::1]10000"),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            parse_address("a b:1"),
            Err(AddressError::BadHost(_))
        ));
        // An unbracketed IPv6 address, a host name longer than DNS allows, a newline.
        assert!(matches!(
            parse_address("::1:10000"),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            parse_address(&format!("{}:1", "a".repeat(254))),
            Err(AddressError::BadHost(_))
        ));
        assert!(parse_address(&format!("{}:1", "a".repeat(253))).is_ok());
        let newline = parse_address("a\nb:1").unwrap_err().to_string();
        assert!(!newline.contains('\n'), "{newline:?}");
        assert_eq!(
            parse_address("PortNotInteger").unwrap_err().to_string(),
            "Ports must be integers."
        );
    }
}
