//! One module per mode, plus the small socket helpers they share.

pub(crate) mod bulk;
pub(crate) mod download;
pub(crate) mod drain;
pub(crate) mod echo;
pub(crate) mod idle;
pub(crate) mod sum;
pub(crate) mod udp;

use std::io;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::fnv::format_sum;
use crate::Error;

/// Waits for every worker thread, in order: a worker that could not be spawned, or
/// that panicked, is an error in its place.
pub(crate) fn join_workers<T>(
    handles: Vec<io::Result<ScopedJoinHandle<'_, Result<T, Error>>>>,
) -> Vec<Result<T, Error>> {
    handles
        .into_iter()
        .map(|h| {
            h.map_err(Error::setup("spawn a worker thread"))?
                .join()
                .map_err(|_| Error::WorkerPanicked)?
        })
        .collect()
}

/// Notes in `found` how the `bytes` read (and their `sum`, if computed) differ from
/// what `--expect-bytes` and `--expect-sum` asked for.
pub(crate) fn check_expected(
    found: &mut Vec<String>,
    (bytes, sum): (u64, Option<u64>),
    expect_bytes: Option<u64>,
    expect_sum: Option<u64>,
) {
    if let Some(expect) = expect_bytes.filter(|e| *e != bytes) {
        found.push(format!("expected {expect} bytes, got {bytes}"));
    }
    if let (Some(expect), Some(sum)) = (expect_sum, sum) {
        if expect != sum {
            found.push(format!(
                "expected sum {}, got {}",
                format_sum(expect),
                format_sum(sum)
            ));
        }
    }
}

/// Polls until `deadline` at the latest; `EINTR` is a normal wake-up. Returns `false`
/// once the deadline has passed (without polling).
pub(crate) fn poll_until(
    poll: &mut Poll,
    events: &mut Events,
    deadline: Instant,
) -> io::Result<bool> {
    let now = Instant::now();
    if now >= deadline {
        return Ok(false);
    }
    match poll.poll(events, Some(deadline - now)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Seconds as a float, for reports.
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Microseconds, saturating at `u32::MAX` (71 minutes: beyond any timeout here).
pub(crate) fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Splits `total` as evenly as possible over `parts` (earlier parts get the rest).
pub(crate) fn split(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_even_and_complete() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(0, 1), vec![0]);
        assert_eq!(split(100, 2).iter().sum::<usize>(), 100);
    }

    #[test]
    fn micros_saturates() {
        assert_eq!(micros(Duration::from_millis(2)), 2000);
        assert_eq!(micros(Duration::from_secs(u64::MAX / 2)), u32::MAX);
    }
}
