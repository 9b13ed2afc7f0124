//! `cargo xtask soak [--downloads N] [--concurrency C] [--slow]`: a long run of the
//! release poetry server under `loadgen poems`, every download checked (length and
//! FNV-1a sum), to show that nothing is corrupted, nothing is lost and the server's
//! memory does not grow.
//!
//! Defaults: 1,000,000 downloads of a 10 KiB poem, 1,000 in flight, fast mode
//! (`--delay 0`). `--slow` serves it 1 KiB every 10 ms instead, so that every
//! connection lives about 0.1 s and the server holds `C` of them at once.
//!
//! The report: downloads completed, corrupted and lost (loadgen's `failures`,
//! `unfinished` and any never attempted), the server's own count of whole and cut
//! short sends, its `VmRSS` at start and end (and `VmHWM`, its peak), and the time
//! taken. The task fails if anything was corrupted or lost, the server disagrees, or
//! its memory grew by more than [`MAX_GROWTH_KIB`].

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::bench::result::Fields;
use crate::error::TaskError;
use crate::util::{cargo, root, run, Guarded};

/// How much the server's resident memory may grow over the whole run (a leak of 32
/// bytes per download would show as 30 MiB over a million).
const MAX_GROWTH_KIB: u64 = 16 * 1024;
/// The poem's size.
const POEM_BYTES: usize = 10 * 1024;
/// Descriptors each process needs beyond one per connection.
const SPARE_DESCRIPTORS: u64 = 256;

#[derive(Debug, Clone, PartialEq)]
struct Options {
    downloads: u64,
    concurrency: u64,
    slow: bool,
}

fn parse_args(args: &[String]) -> Result<Options, TaskError> {
    let mut options = Options {
        downloads: 1_000_000,
        concurrency: 1_000,
        slow: false,
    };
    let mut args = args.iter();
    let number = |value: Option<&String>, what: &str| {
        value
            .and_then(|s| s.replace(['_', ','], "").parse::<u64>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| TaskError::Usage(format!("soak: {what} takes a positive number")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--downloads" => options.downloads = number(args.next(), "--downloads")?,
            "--concurrency" => options.concurrency = number(args.next(), "--concurrency")?,
            "--slow" => options.slow = true,
            other => {
                return Err(TaskError::Usage(format!(
                    "soak: unknown argument {other} (usage: cargo xtask soak [--downloads N] \
                     [--concurrency C] [--slow])"
                )))
            }
        }
    }
    Ok(options)
}

pub(crate) fn main(args: &[String]) -> Result<(), TaskError> {
    let options = parse_args(args)?;
    let mut build = cargo();
    build.args([
        "build",
        "-q",
        "--release",
        "-p",
        "poetry-server",
        "-p",
        "loadgen",
    ]);
    run("cargo build --release -p poetry-server -p loadgen", build)?;
    let bin = root().join("target/release");
    let loadgen = bin.join("loadgen");

    let poem = write_poem()?;
    let sum = checksum(&loadgen, &poem)?;
    let limit = descriptor_prefix(options.concurrency + SPARE_DESCRIPTORS)?;
    let mut server = SoakServer::start(&options, &limit, &bin, &poem)?;
    let load = run_load(&options, &limit, &loadgen, &sum, server.port)?;
    let after = server.finish()?;
    let outcome = Outcome::new(&options, &load, server.rss_start, &after);
    outcome.print(&options, &after);
    print_timing(&load);
    outcome.verdict()
}

/// The release server under soak, with what it said and how much memory it held at
/// the start.
struct SoakServer {
    guard: Guarded,
    stop_line: mpsc::Receiver<String>,
    pid: u32,
    port: u16,
    rss_start: u64,
}

/// What the server left behind: its memory at the end and at its peak, its own
/// counts and how it exited.
struct ServerEnd {
    rss_end: u64,
    rss_peak: u64,
    counts: Option<(u64, u64, u64)>,
    status: std::process::ExitStatus,
}

impl SoakServer {
    fn start(
        options: &Options,
        limit: &[String],
        bin: &Path,
        poem: &Path,
    ) -> Result<SoakServer, TaskError> {
        let max_connections = (options.concurrency + SPARE_DESCRIPTORS).max(4096);
        let mut command = with_prefix(limit, &bin.join("poetry-server"));
        command
            .args(["--port", "0", "--max-connections"])
            .arg(max_connections.to_string())
            .args(if options.slow {
                ["--delay", "0.01", "--num-bytes", "1024"]
            } else {
                ["--delay", "0", "--num-bytes", "10"]
            })
            .arg(poem)
            .env("RUST_LOG", "error")
            .stderr(Stdio::piped());
        let (mut guard, port) =
            Guarded::start_server("poetry-server", command, Duration::from_secs(30))?;
        let stop_line = last_line_with(guard.child.stderr.take(), "stopped;");
        let pid = guard.child.id();
        let rss_start = memory_kib(pid, "VmRSS")?;
        eprintln!(
            "xtask: soak: {} downloads of a {POEM_BYTES}-byte poem, {} at a time, {} mode, \
             server pid {pid} on port {port} ({rss_start} KiB resident)",
            options.downloads,
            options.concurrency,
            mode(options),
        );
        Ok(SoakServer {
            guard,
            stop_line,
            pid,
            port,
            rss_start,
        })
    }

    /// Reads the server's memory, stops it and collects its stop line.
    fn finish(&mut self) -> Result<ServerEnd, TaskError> {
        let rss_end = memory_kib(self.pid, "VmRSS")?;
        let rss_peak = memory_kib(self.pid, "VmHWM")?;
        self.guard.stop(Duration::from_secs(10));
        let status = self.guard.child.wait().map_err(TaskError::Io)?;
        let counts = self
            .stop_line
            .recv_timeout(Duration::from_secs(5))
            .ok()
            .and_then(|line| counts(&line));
        Ok(ServerEnd {
            rss_end,
            rss_peak,
            counts,
            status,
        })
    }
}

fn mode(options: &Options) -> &'static str {
    if options.slow {
        "slow"
    } else {
        "fast"
    }
}

/// Runs `loadgen poems` against the soak server; its `RESULT` fields.
fn run_load(
    options: &Options,
    limit: &[String],
    loadgen: &Path,
    sum: &str,
    port: u16,
) -> Result<Fields, TaskError> {
    let mut load = with_prefix(limit, loadgen);
    load.arg("poems")
        .args(["--port", &port.to_string()])
        .args(["--concurrency", &options.concurrency.to_string()])
        .args(["--downloads", &options.downloads.to_string()])
        .args(["--expect-bytes", &POEM_BYTES.to_string()])
        .args(["--expect-sum", sum])
        .args(["--timeout-s", &(600 + options.downloads / 500).to_string()])
        .stderr(Stdio::inherit());
    let output = load.output().map_err(|e| TaskError::Spawn {
        what: "loadgen poems".into(),
        source: e,
    })?;
    Fields::from_output(&String::from_utf8_lossy(&output.stdout)).map_err(|e| {
        failure(format!(
            "loadgen poems (exit status {:?}): {e}",
            output.status.code()
        ))
    })
}

/// The run's duration and pace, as loadgen measured them.
fn print_timing(load: &Fields) {
    let figure = |key: &str| load.num(key).unwrap_or(f64::NAN);
    println!(
        "  elapsed {:.1} s ({:.0} downloads/s; p99 {:.1} ms, max {:.1} ms)",
        figure("elapsed_s"),
        figure("downloads_per_s"),
        figure("p99_ms"),
        figure("max_ms")
    );
}

/// The soak's figures, from loadgen's result and the server's end.
#[derive(Debug, PartialEq)]
struct Outcome {
    completed: u64,
    failures: u64,
    corrupted: u64,
    unfinished: u64,
    never_attempted: u64,
    rss_start: u64,
    problems: Vec<String>,
}

impl Outcome {
    fn new(options: &Options, load: &Fields, rss_start: u64, end: &ServerEnd) -> Outcome {
        let field = |key: &str| load.num(key).map_or(0, |n| n as u64);
        let (completed, failures, corrupted) =
            (field("completed"), field("failures"), field("corrupted"));
        let never_attempted = options
            .downloads
            .saturating_sub(completed + failures + corrupted);
        let mut outcome = Outcome {
            completed,
            failures,
            corrupted,
            unfinished: field("unfinished"),
            never_attempted,
            rss_start,
            problems: Vec::new(),
        };
        outcome.judge(end);
        outcome
    }

    fn lost(&self) -> u64 {
        self.failures + self.never_attempted
    }

    /// Everything that makes the soak fail.
    fn judge(&mut self, end: &ServerEnd) {
        if self.corrupted > 0 {
            self.problems
                .push(format!("{} downloads corrupted", self.corrupted));
        }
        if self.lost() > 0 {
            self.problems
                .push(format!("{} downloads lost", self.lost()));
        }
        match end.counts {
            Some((whole, cut, refused)) if (whole, cut, refused) != (self.completed, 0, 0) => {
                self.problems.push(format!(
                    "the server counts {whole} whole, {cut} cut short, {refused} refused; \
                     loadgen {} whole",
                    self.completed
                ))
            }
            Some(_) => {}
            None => self
                .problems
                .push("the server did not say what it sent".into()),
        }
        if !end.status.success() {
            self.problems
                .push(format!("the server exited with {:?}", end.status));
        }
        if end.rss_end > self.rss_start + MAX_GROWTH_KIB {
            self.problems.push(format!(
                "the server grew from {} to {} KiB (allowed: {MAX_GROWTH_KIB} KiB)",
                self.rss_start, end.rss_end
            ));
        }
    }

    fn print(&self, options: &Options, end: &ServerEnd) {
        println!(
            "soak: {} downloads of a {POEM_BYTES}-byte poem, {} at a time, {} mode",
            options.downloads,
            options.concurrency,
            mode(options)
        );
        println!(
            "  completed {}, corrupted {}, lost {} (failures {}, unfinished at the deadline \
             {}, never attempted {})",
            self.completed,
            self.corrupted,
            self.lost(),
            self.failures,
            self.unfinished,
            self.never_attempted
        );
        match end.counts {
            Some((whole, cut, refused)) => println!(
                "  server: {whole} poems sent whole, {cut} sends cut short, {refused} \
                 connections refused; exit status {}",
                end.status
                    .code()
                    .map_or("a signal".into(), |c| c.to_string())
            ),
            None => println!("  server: no stop line (exit status {:?})", end.status),
        }
        println!(
            "  server VmRSS: {} KiB at start, {} KiB at end (+{} KiB); peak VmHWM {} KiB",
            self.rss_start,
            end.rss_end,
            end.rss_end.saturating_sub(self.rss_start),
            end.rss_peak
        );
    }

    fn verdict(self) -> Result<(), TaskError> {
        if self.problems.is_empty() {
            println!("  ok: nothing corrupted, nothing lost, memory bounded");
            Ok(())
        } else {
            Err(failure(format!("soak: {}", self.problems.join("; "))))
        }
    }
}

fn failure(message: String) -> TaskError {
    TaskError::Io(std::io::Error::other(message))
}

/// Writes the soak's poem (numbered lines of verse, exactly [`POEM_BYTES`] long) to
/// `target/soak/poem.txt` and returns its path.
fn write_poem() -> Result<PathBuf, TaskError> {
    const VERSE: [&str; 4] = [
        "the reactor turns and every socket waits its turn",
        "a poem leaves in pieces and arrives in one",
        "no buffer grows beyond the bound it was given",
        "a million readers and not one byte astray",
    ];
    let mut poem = String::with_capacity(POEM_BYTES + 80);
    for n in 0.. {
        if poem.len() >= POEM_BYTES {
            break;
        }
        poem.push_str(&format!("{n:04} {}\n", VERSE[n % VERSE.len()]));
    }
    poem.truncate(POEM_BYTES);
    let dir = root().join("target/soak");
    std::fs::create_dir_all(&dir).map_err(TaskError::Io)?;
    let path = dir.join("poem.txt");
    std::fs::write(&path, poem).map_err(TaskError::Io)?;
    Ok(path)
}

/// The poem's FNV-1a sum, as `loadgen sum` computes it for `--expect-sum`.
fn checksum(loadgen: &Path, poem: &Path) -> Result<String, TaskError> {
    let output = Command::new(loadgen)
        .arg("sum")
        .arg(poem)
        .output()
        .map_err(|e| TaskError::Spawn {
            what: "loadgen sum".into(),
            source: e,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    Fields::from_output(&stdout)
        .ok()
        .and_then(|fields| fields.str("sum").map(str::to_owned))
        .ok_or_else(|| failure(format!("loadgen sum printed no sum: {stdout}")))
}

/// `prlimit --nofile=N:N --` when this process's hard limit on descriptors (which its
/// children inherit, and raise their soft limit to) is below `needed`; nothing
/// otherwise.
fn descriptor_prefix(needed: u64) -> Result<Vec<String>, TaskError> {
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(4)?.parse::<u64>().ok()
        });
    match hard {
        Some(hard) if hard >= needed => Ok(Vec::new()),
        _ => {
            let prlimit = Command::new("prlimit")
                .args([&format!("--nofile={needed}:{needed}"), "--", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !prlimit {
                return Err(failure(format!(
                    "soak needs {needed} descriptors per process and cannot raise the limit \
                     (hard limit {hard:?}; prlimit needs CAP_SYS_RESOURCE): lower --concurrency"
                )));
            }
            eprintln!("xtask: soak: raising the descriptor limit to {needed} with prlimit");
            Ok(vec![
                "prlimit".into(),
                format!("--nofile={needed}:{needed}"),
                "--".into(),
            ])
        }
    }
}

/// `program`, behind `prefix` (a `prlimit` that execs it, keeping its pid) if any.
fn with_prefix(prefix: &[String], program: &Path) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A memory line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
fn memory_kib(pid: u32, key: &str) -> Result<u64, TaskError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(TaskError::Io)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| failure(format!("no {key} in /proc/{pid}/status")))
}

/// Reads `stream` to its end on a thread, echoing each line to our stderr, and sends
/// the last line containing `marker`.
fn last_line_with(
    stream: Option<impl std::io::Read + Send + 'static>,
    marker: &'static str,
) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    if let Some(stream) = stream {
        std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                if line.contains(marker) {
                    last = Some(line);
                }
            }
            if let Some(line) = last {
                let _ = sender.send(line);
            }
        });
    }
    receiver
}

/// The three numbers of the server's stop line: poems sent whole, sends cut short,
/// connections refused.
fn counts(line: &str) -> Option<(u64, u64, u64)> {
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers[..] {
        [whole, cut, refused] => Some((whole, cut, refused)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_and_defaults() {
        assert_eq!(
            parse_args(&[]).unwrap(),
            Options {
                downloads: 1_000_000,
                concurrency: 1_000,
                slow: false
            }
        );
        let options = parse_args(&args(&[
            "--downloads",
            "5_000",
            "--concurrency",
            "10",
            "--slow",
        ]))
        .unwrap();
        assert_eq!(
            (options.downloads, options.concurrency, options.slow),
            (5000, 10, true)
        );
        for bad in [
            &["--downloads"][..],
            &["--downloads", "0"],
            &["--concurrency", "-1"],
            &["--fast"],
        ] {
            assert!(
                matches!(parse_args(&args(bad)), Err(TaskError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reads_loadgen_and_server_lines() {
        let json = r#"{"mode":"poems","ok":true,"problem":null,"completed":20000,"failures":0,"corrupted":3,"unfinished":1,"expect_sum":"cbf29ce484222325","elapsed_s":1.25,"timed_out":false}"#;
        let load = Fields::parse(json).unwrap();
        let options = Options {
            downloads: 20_010,
            concurrency: 10,
            slow: false,
        };
        let end = ServerEnd {
            rss_end: 2048,
            rss_peak: 4096,
            counts: Some((20000, 0, 0)),
            status: std::process::ExitStatus::default(),
        };
        let outcome = Outcome::new(&options, &load, 1024, &end);
        assert_eq!(
            (outcome.completed, outcome.corrupted, outcome.unfinished),
            (20000, 3, 1)
        );
        assert_eq!(outcome.never_attempted, 7);
        assert_eq!(outcome.lost(), 7);
        assert_eq!(
            outcome.problems,
            ["3 downloads corrupted", "7 downloads lost"]
        );
        assert_eq!(
            counts(
                "poetry-server: stopped; 12 poems sent whole, 3 sends cut short, 0 connections refused."
            ),
            Some((12, 3, 0))
        );
        assert_eq!(counts("poetry-server: something else 1"), None);
    }

    #[test]
    fn the_poem_is_exactly_its_size() {
        let path = write_poem().unwrap();
        assert_eq!(std::fs::read(path).unwrap().len(), POEM_BYTES);
    }
}
