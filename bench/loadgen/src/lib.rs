//! The load generator for `cargo xtask bench`: it drives the poetry and echo servers
//! on 127.0.0.1 and prints one `RESULT {json}` line per run.
//!
//! Each mode spreads its connections over a few std threads, each running its own mio
//! poll loop (no shared state but an atomic counter), so that the generator is not the
//! bottleneck of what it measures. Every loop is bounded by a deadline (`--timeout-s`).
//!
//! | mode | what it does | what it reports |
//! |---|---|---|
//! | `bulk` | one download, read until EOF into one reused buffer | bytes, MB/s |
//! | `poems` | `--concurrency` downloads in flight until `--downloads` are done | downloads/s, failures, corrupted |
//! | `echo` | each connection sends `--size` bytes, waits for them back, repeats | requests/s, p50/p99 µs |
//! | `idle` | opens `--connections`, writes nothing, holds them | how many opened and stayed open |
//! | `slow` | `--clients` concurrent downloads from a slow server, all checked | completed, first and last finish |
//! | `udp` | `--sockets` UDP sockets each keep `--window` datagrams in flight to an echo server | datagrams/s, lost, corrupted |
//! | `drain` | reads standard input to its end (the far end of a pipe) | bytes, MB/s |
//! | `sum` | FNV-1a 64 of a file, for `--expect-sum` | the sum |
//!
//! The wire protocol is the Twisted tutorial's: a poetry client connects, sends
//! nothing, and the server's close marks the end of the poem.
//!
//! # What it does not do
//!
//! It never targets anything but 127.0.0.1, and it does not start servers: the harness
//! does, and passes the port.
//!
//! # Example
//!
//! `cargo run --release -p loadgen -- poems --port 10000 --concurrency 100 --downloads 20000 --expect-bytes 10240`
//!
//! ```no_run
//! use loadgen::cli::{Command, SumArgs};
//!
//! let report = loadgen::run(Command::Sum(SumArgs { file: "poem.txt".into() }))?;
//! println!("{}", report.result_line());
//! # Ok::<(), loadgen::Error>(())
//! ```

pub mod cli;
mod error;
pub mod fnv;
pub mod json;
mod modes;
mod report;
pub mod stats;

pub use crate::error::Error;
pub use crate::report::Report;
pub use bench_support::raise_fd_limit;

/// Runs one mode to the end and returns its report.
///
/// `idle` also prints `idle: N connections open` to stdout (flushed) once every
/// connection is open, so a harness can measure the server while they are held.
///
/// # Errors
///
/// [`Error`] when the run cannot be made at all (bad arguments, no poll, no thread,
/// `bulk`'s one connection refused). A run that was made but failed its checks is an
/// `Ok` report with `ok: false`.
pub fn run(command: cli::Command) -> Result<Report, Error> {
    use cli::Command;
    match command {
        Command::Bulk(args) => modes::bulk::run(&args),
        Command::Poems(args) => modes::download::poems(&args),
        Command::Echo(args) => modes::echo::run(&args),
        Command::Idle(args) => modes::idle::run(&args),
        Command::Slow(args) => modes::download::slow(&args),
        Command::Udp(args) => modes::udp::run(&args),
        Command::Drain(args) => modes::drain::run(&args),
        Command::Sum(args) => modes::sum::run(&args),
    }
}
