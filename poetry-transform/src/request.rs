//! The request a client sends, inside one netstring: `<transform>.<poem>`, split at
//! the first `.` (Twisted's `request.split('.', 1)`), and why one is refused.

use std::error::Error;
use std::fmt;

use protocol::basic::NetstringError;

use crate::transforms::TransformError;

/// One parsed request: which transform, and the poem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The transform's name (bytes before the first `.`; may be empty).
    pub transform: &'a [u8],
    /// The poem (everything after the first `.`; may contain more dots).
    pub poem: &'a [u8],
}

/// Parses a request's payload (the netstring's contents).
///
/// # Errors
///
/// [`RequestError::NoDot`] if there is no `.` to end the transform's name.
///
/// # Examples
///
/// ```
/// use poetry_transform::{parse_request, RequestError};
///
/// let request = parse_request(b"cummingsify.HERE IS MY POEM.").unwrap();
/// assert_eq!(request.transform, b"cummingsify");
/// assert_eq!(request.poem, b"HERE IS MY POEM.");
/// assert_eq!(parse_request(b"cummingsify"), Err(RequestError::NoDot));
/// ```
pub fn parse_request(payload: &[u8]) -> Result<Request<'_>, RequestError> {
    let dot = payload
        .iter()
        .position(|b| *b == b'.')
        .ok_or(RequestError::NoDot)?;
    Ok(Request {
        transform: &payload[..dot],
        poem: &payload[dot + 1..],
    })
}

/// Writes the request for `transform` on `poem`: the netstring payload a client
/// sends (the tutorial's `sendRequest`).
pub fn request_payload(transform: &str, poem: &[u8]) -> Vec<u8> {
    [transform.as_bytes(), b".", poem].concat()
}

/// Why the server closed a connection without a reply (the original closes in each
/// case without saying why; here the server logs it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The payload has no `.` between the transform's name and the poem.
    NoDot,
    /// No transform of that name is offered.
    UnknownTransform {
        /// The name asked for, made printable and cut short.
        name: String,
    },
    /// The transform failed on this poem.
    Failed {
        /// The transform.
        name: String,
        /// Why.
        error: TransformError,
    },
    /// The bytes were not a netstring, or one longer than the server's limit.
    Netstring(NetstringError),
    /// The client closed its side before sending a whole request.
    Incomplete,
}

impl RequestError {
    /// The error for an unknown transform called `name` (shortened, control
    /// characters escaped: a hostile name stays one short log line).
    pub fn unknown(name: &[u8]) -> Self {
        RequestError::UnknownTransform {
            name: printable(name),
        }
    }
}

/// `name` as a short printable string: lossy UTF-8, controls escaped, 40 characters.
pub(crate) fn printable(name: &[u8]) -> String {
    poetry_cli::shorten(&String::from_utf8_lossy(name))
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NoDot => f.write_str("the request has no '.' after the transform name"),
            RequestError::UnknownTransform { name } => write!(f, "no transform called '{name}'"),
            RequestError::Failed { name, error } => write!(f, "transform {name} failed: {error}"),
            RequestError::Netstring(e) => write!(f, "bad request: {e}"),
            RequestError::Incomplete => {
                f.write_str("the client closed before sending a whole request")
            }
        }
    }
}

impl Error for RequestError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RequestError::Failed { error, .. } => Some(error),
            RequestError::Netstring(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_dot_only() {
        let r = parse_request(b"a.b.c").unwrap();
        assert_eq!((r.transform, r.poem), (&b"a"[..], &b"b.c"[..]));
        let r = parse_request(b".").unwrap();
        assert_eq!((r.transform, r.poem), (&b""[..], &b""[..]));
        assert_eq!(parse_request(b""), Err(RequestError::NoDot));
        assert_eq!(request_payload("x", b"y.z"), b"x.y.z");
    }

    #[test]
    fn hostile_names_stay_short_and_printable() {
        let long = [b'\n'; 500];
        let message = RequestError::unknown(&long).to_string();
        assert!(!message.contains('\n') && message.len() < 200, "{message}");
    }
}
