//! `bulk`: one connection, one big poem, read as fast as it comes.
//!
//! A blocking socket is the fastest reader for a single stream: one `read` per
//! buffer-full, no readiness round trips.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::cli::{seconds, target, BulkArgs};
use crate::fnv::{format_sum, Fnv1a64};
use crate::json::Object;
use crate::report::problems;
use crate::stats::rate;
use crate::{Error, Report};

use super::{check_expected, secs};

const BUF: usize = 256 * 1024;

pub(crate) fn run(args: &BulkArgs) -> Result<Report, Error> {
    let addr = target(args.port);
    let start = Instant::now();
    let deadline = start + seconds(args.timeout_s);
    let mut stream =
        TcpStream::connect_timeout(&addr, seconds(args.timeout_s).max(Duration::from_millis(1)))
            .map_err(|source| Error::Connect { addr, source })?;
    // Wake at least once a second to look at the deadline.
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(Error::setup("set a read timeout"))?;
    let mut hasher = args.expect_sum.map(|_| Fnv1a64::new());
    let mut found = Vec::new();
    let (bytes, timed_out) = read_all(&mut stream, deadline, &mut hasher, &mut found);
    if timed_out {
        found.push(format!("timed out after {}s", args.timeout_s));
    }
    let elapsed = start.elapsed();
    let sum = hasher.map(|h| h.finish());
    check_expected(&mut found, (bytes, sum), args.expect_bytes, args.expect_sum);
    let mut fields = Object::new();
    fields
        .field("bytes", bytes)
        .field("expect_bytes", args.expect_bytes)
        .field("sum", sum.map(format_sum))
        .field("elapsed_s", secs(elapsed))
        .field("mb_per_s", rate(bytes as f64 / 1e6, secs(elapsed)))
        .field("mib_per_s", rate(bytes as f64 / 1048576.0, secs(elapsed)))
        .field("timed_out", timed_out);
    Ok(Report::new("bulk", problems(found), fields))
}

/// Reads until the end of the stream, an error (noted in `found`) or `deadline`;
/// returns the bytes read and whether the deadline passed.
fn read_all(
    stream: &mut TcpStream,
    deadline: Instant,
    hasher: &mut Option<Fnv1a64>,
    found: &mut Vec<String>,
) -> (u64, bool) {
    let mut buf = vec![0u8; BUF];
    let mut bytes = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (bytes, false),
            Ok(n) => {
                bytes += n as u64;
                if let Some(h) = hasher {
                    h.update(&buf[..n]);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                found.push(format!("read failed after {bytes} bytes: {e}"));
                return (bytes, false);
            }
        }
        if Instant::now() >= deadline {
            return (bytes, true);
        }
    }
}
