//! Command-line arguments (clap derive). Every target is 127.0.0.1: there is no host
//! option on purpose.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::fnv::parse_sum;

/// `loadgen`: drive a poetry or echo server on 127.0.0.1 and print one `RESULT` line.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
pub struct Cli {
    /// What to measure.
    #[command(subcommand)]
    pub command: Command,
}

/// The load generator's modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One poetry download, as fast as it comes: bytes and MB/s.
    Bulk(BulkArgs),
    /// Many short poetry downloads, CONCURRENCY at a time: downloads/s.
    Poems(PoemsArgs),
    /// Ping-pong against an echo server: requests/s and latency.
    Echo(EchoArgs),
    /// Open many connections, write nothing, hold them: for the server's memory.
    Idle(IdleArgs),
    /// Many concurrent clients of a slow poetry server, every poem checked.
    Slow(SlowArgs),
    /// UDP echo, closed loop: datagrams/s.
    Udp(UdpArgs),
    /// Read standard input to its end: bytes and MB/s of whatever writes into it.
    Drain(DrainArgs),
    /// Print the FNV-1a 64 checksum of a file, as `--expect-sum` takes it.
    Sum(SumArgs),
}

/// Arguments of `udp`.
#[derive(Debug, Args)]
pub struct UdpArgs {
    /// Server's UDP port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Client sockets, each connected to the server.
    #[arg(long, default_value_t = 8)]
    pub sockets: usize,
    /// Datagrams each socket keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Datagram size in bytes (at least 8: a sequence number leads each one).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// How long to measure.
    #[arg(long, default_value_t = 5_000)]
    pub duration_ms: u64,
    /// Give up after this many seconds; must exceed the duration.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// Arguments of `drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Fail unless exactly this many bytes arrive.
    #[arg(long)]
    pub expect_bytes: Option<u64>,
    /// Fail unless the content has this FNV-1a 64 sum (hex); costs time per byte.
    #[arg(long, value_parser = parse_sum)]
    pub expect_sum: Option<u64>,
}

/// Arguments of `bulk`.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Fail unless exactly this many bytes arrive.
    #[arg(long)]
    pub expect_bytes: Option<u64>,
    /// Fail unless the content has this FNV-1a 64 sum (hex); costs time per byte.
    #[arg(long, value_parser = parse_sum)]
    pub expect_sum: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// Arguments of `poems`.
#[derive(Debug, Args)]
pub struct PoemsArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Downloads in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Downloads to complete in all.
    #[arg(long, default_value_t = 20_000)]
    pub downloads: u64,
    /// Count a download as corrupted unless it has exactly this many bytes.
    #[arg(long)]
    pub expect_bytes: Option<u64>,
    /// Count a download as corrupted unless its FNV-1a 64 sum (hex) is this.
    #[arg(long, value_parser = parse_sum)]
    pub expect_sum: Option<u64>,
    /// Worker threads (default: half the CPUs, at least 1, at most CONCURRENCY).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
    /// Send this file's bytes on each connection before reading the answer until the
    /// close (a request/response service, such as the transform server).
    #[arg(long)]
    pub request: Option<std::path::PathBuf>,
}

/// Arguments of `echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Connections, each with one message in flight.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// How long to measure, after every connection is established.
    #[arg(long, default_value_t = 5_000)]
    pub duration_ms: u64,
    /// Worker threads (default: half the CPUs, at least 1, at most CONNECTIONS).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Give up after this many seconds (connecting included); must exceed the duration.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// Arguments of `idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// How long to hold them once all are open.
    #[arg(long, default_value_t = 5_000)]
    pub hold_ms: u64,
    /// Also stop holding at the first line on stdin, or when stdin closes.
    #[arg(long)]
    pub until_stdin: bool,
    /// Connection attempts in flight at once; after each batch, a 1 ms pause for the
    /// server to accept (keeps its accept queue from overflowing).
    #[arg(long, default_value_t = 128)]
    pub connect_batch: usize,
    /// Give up opening connections after this many seconds (the hold is bounded by
    /// `--hold-ms`).
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// Arguments of `slow`.
#[derive(Debug, Args)]
pub struct SlowArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Concurrent clients, one download each.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Every client must get exactly this many bytes.
    #[arg(long)]
    pub expect_bytes: u64,
    /// Every client's poem must have this FNV-1a 64 sum (hex).
    #[arg(long, value_parser = parse_sum)]
    pub expect_sum: Option<u64>,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

/// Arguments of `sum`.
#[derive(Debug, Args)]
pub struct SumArgs {
    /// The file to sum.
    pub file: PathBuf,
}

/// The server's address: always loopback.
pub(crate) fn target(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `timeout_s` as a `Duration`.
pub(crate) fn seconds(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Worker threads: as asked, else half the CPUs (the server under test runs on the
/// same machine and needs the other half); at least one, never more than there is
/// work for.
pub(crate) fn threads(asked: Option<usize>, work: usize) -> usize {
    let default = std::thread::available_parallelism().map_or(1, usize::from) / 2;
    asked.unwrap_or(default).clamp(1, work.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn poems_with_defaults_and_a_sum() {
        let Command::Poems(a) = parse(&[
            "poems",
            "--port",
            "10000",
            "--expect-bytes",
            "10240",
            "--expect-sum",
            "0xff",
        ])
        .unwrap() else {
            panic!("not poems");
        };
        assert_eq!(a.port, 10000);
        assert_eq!(a.concurrency, 100);
        assert_eq!(a.downloads, 20_000);
        assert_eq!(a.expect_bytes, Some(10240));
        assert_eq!(a.expect_sum, Some(255));
        assert_eq!(a.threads, None);
    }

    #[test]
    fn echo_and_idle_parse() {
        let Command::Echo(a) = parse(&[
            "echo",
            "--port",
            "1",
            "--connections",
            "8",
            "--size",
            "1024",
            "--duration-ms",
            "200",
            "--threads",
            "2",
        ])
        .unwrap() else {
            panic!("not echo");
        };
        assert_eq!((a.connections, a.size, a.duration_ms), (8, 1024, 200));
        assert_eq!(a.threads, Some(2));
        let Command::Idle(a) = parse(&[
            "idle",
            "--port",
            "1",
            "--connections",
            "10000",
            "--hold-ms",
            "100",
            "--until-stdin",
        ])
        .unwrap() else {
            panic!("not idle");
        };
        assert_eq!(
            (a.connections, a.hold_ms, a.until_stdin),
            (10000, 100, true)
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse(&["bulk"]).is_err()); // no --port
        assert!(parse(&["bulk", "--port", "70000"]).is_err());
        assert!(parse(&["poems", "--port", "1", "--expect-sum", "zz"]).is_err());
        assert!(parse(&["slow", "--port", "1"]).is_err()); // --expect-bytes is required
        assert!(parse(&["fly"]).is_err());
    }

    #[test]
    fn thread_counts() {
        assert_eq!(threads(Some(4), 2), 2);
        assert_eq!(threads(Some(0), 10), 1);
        assert_eq!(threads(Some(3), 10), 3);
        assert!(threads(None, 1000) >= 1);
    }
}
