//! The proxy's one argument: where the poem comes from.

use std::error::Error;
use std::fmt;

/// The poetry server a proxy fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why the upstream argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamParseError(String);

impl fmt::Display for UpstreamParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad upstream '{}': expected PORT, HOST:PORT or [IPV6]:PORT with a port from 1 to 65535",
            self.0
        )
    }
}

impl Error for UpstreamParseError {}

impl std::str::FromStr for Upstream {
    type Err = UpstreamParseError;

    /// `PORT` (on 127.0.0.1, as the tutorial's proxy takes it), `HOST:PORT` or
    /// `[IPV6]:PORT`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || UpstreamParseError(poetry_cli::shorten(text));
        let (host, port) = match text.rsplit_once(':') {
            None => ("127.0.0.1", text),
            Some((host, port)) => {
                let host = match host.strip_prefix('[') {
                    Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
                    None if host.contains(':') => return Err(bad()),
                    None => host,
                };
                (host, port)
            }
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        let port: u16 = port.parse().map_err(|_| bad())?;
        if !valid_host || port == 0 {
            return Err(bad());
        }
        Ok(Upstream {
            host: host.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_shapes_and_the_bad_ones() {
        let parse = |s: &str| s.parse::<Upstream>();
        assert_eq!(parse("10000").unwrap().to_string(), "127.0.0.1:10000");
        assert_eq!(parse("localhost:1").unwrap().to_string(), "localhost:1");
        assert_eq!(parse("[::1]:10000").unwrap().to_string(), "[::1]:10000");
        for bad in [
            "", "0", "70000", "x", ":1", "::1:5", "[::1:5", "a b:1", "h:-1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let message = parse(&"\n".repeat(100)).unwrap_err().to_string();
        assert!(!message.contains('\n') && message.len() < 200, "{message}");
    }
}
