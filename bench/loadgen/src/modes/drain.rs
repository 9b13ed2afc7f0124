//! `drain`: reads standard input to its end in one reused buffer and reports how fast
//! the bytes came: the consuming end of a pipe whose producer is measured (the `stdio`
//! scenario puts a program between a file and this).

use std::io::{ErrorKind, Read};
use std::time::Instant;

use crate::cli::DrainArgs;
use crate::fnv::{format_sum, Fnv1a64};
use crate::json::Object;
use crate::report::problems;
use crate::stats::rate;
use crate::{Error, Report};

use super::{check_expected, secs};

const BUF: usize = 256 * 1024;

pub(crate) fn run(args: &DrainArgs) -> Result<Report, Error> {
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; BUF];
    let mut hasher = args.expect_sum.map(|_| Fnv1a64::new());
    let mut bytes = 0u64;
    let start = Instant::now();
    let mut first = None;
    let mut found = Vec::new();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                bytes += n as u64;
                if let Some(h) = &mut hasher {
                    h.update(&buf[..n]);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                found.push(format!("read failed after {bytes} bytes: {e}"));
                break;
            }
        }
    }
    // From the first byte: the producer's start-up is not its throughput.
    let elapsed = first.unwrap_or(start).elapsed();
    let sum = hasher.map(|h| h.finish());
    check_expected(&mut found, (bytes, sum), args.expect_bytes, args.expect_sum);
    let mut fields = Object::new();
    fields
        .field("bytes", bytes)
        .field("sum", sum.map(format_sum))
        .field("elapsed_s", secs(elapsed))
        .field("mb_per_s", rate(bytes as f64 / 1e6, secs(elapsed)))
        .field(
            "waited_s",
            secs(first.map_or(start.elapsed(), |f| f - start)),
        );
    Ok(Report::new("drain", problems(found), fields))
}
