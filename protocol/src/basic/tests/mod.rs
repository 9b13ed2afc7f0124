//! Tests of the framings: every input replayed at every chunk size, Twisted's
//! `test_basic.py` cases in our own words, and property tests that cut one stream at
//! random places.

mod int_prefixed;
mod line;
mod netstring;
mod parsers;

use std::time::Duration;

/// What a test protocol saw, kept in its "factory" so a test can read it after the
/// connection is gone.
#[derive(Debug, Default)]
struct Log {
    made: usize,
    /// Lines or strings, in order.
    received: Vec<Vec<u8>>,
    /// What `line_length_exceeded` got, or the lengths `length_limit_exceeded` got.
    exceeded: Vec<Vec<u8>>,
    limits: Vec<usize>,
    /// One entry per `connection_lost`: whether clean, and the receiver's error.
    lost: Vec<(bool, Option<String>)>,
}

impl Log {
    fn received(&self) -> Vec<&[u8]> {
        self.received.iter().map(Vec::as_slice).collect()
    }
}

const SECOND: Duration = Duration::from_secs(1);

/// Cuts `input` at the (sorted, deduplicated) `cuts`.
fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(&input[start..point]);
        start = point;
    }
    chunks.push(&input[start..]);
    chunks.retain(|c| !c.is_empty());
    chunks
}
