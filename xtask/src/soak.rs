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
use std::time::{Duration, Instant};

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

    let mut server_command = with_prefix(&limit, &bin.join("poetry-server"));
    server_command
        .args(["--port", "0", "--max-connections"])
        .arg(
            (options.concurrency + SPARE_DESCRIPTORS)
                .max(4096)
                .to_string(),
        )
        .args(if options.slow {
            ["--delay", "0.01", "--num-bytes", "1024"]
        } else {
            ["--delay", "0", "--num-bytes", "10"]
        })
        .arg(&poem)
        .env("RUST_LOG", "error")
        .stderr(Stdio::piped());
    let (mut server, port) =
        Guarded::start_server("poetry-server", server_command, Duration::from_secs(30))?;
    let stop_line = last_line_with(server.child.stderr.take(), "stopped;");
    let pid = server.child.id();
    let rss_start = memory_kib(pid, "VmRSS")?;
    eprintln!(
        "xtask: soak: {} downloads of a {POEM_BYTES}-byte poem, {} at a time, {} mode, \
         server pid {pid} on port {port} ({rss_start} KiB resident)",
        options.downloads,
        options.concurrency,
        if options.slow { "slow" } else { "fast" },
    );

    let mut load = with_prefix(&limit, &loadgen);
    load.arg("poems")
        .args(["--port", &port.to_string()])
        .args(["--concurrency", &options.concurrency.to_string()])
        .args(["--downloads", &options.downloads.to_string()])
        .args(["--expect-bytes", &POEM_BYTES.to_string()])
        .args(["--expect-sum", &sum])
        .args(["--timeout-s", &(600 + options.downloads / 500).to_string()])
        .stderr(Stdio::inherit());
    let began = Instant::now();
    let output = load.output().map_err(|e| TaskError::Spawn {
        what: "loadgen poems".into(),
        source: e,
    })?;
    let wall = began.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| {
            failure(format!(
                "loadgen printed no RESULT line (exit status {:?})",
                output.status.code()
            ))
        })?
        .to_owned();
    let rss_end = memory_kib(pid, "VmRSS")?;
    let rss_peak = memory_kib(pid, "VmHWM")?;
    server.stop(Duration::from_secs(10));
    let status = server.child.wait().map_err(TaskError::Io)?;
    let server_counts = stop_line
        .recv_timeout(Duration::from_secs(5))
        .ok()
        .and_then(|line| counts(&line));

    let field = |key: &str| number_field(&result, key);
    let completed = field("completed").unwrap_or(0);
    let failures = field("failures").unwrap_or(0);
    let corrupted = field("corrupted").unwrap_or(0);
    let unfinished = field("unfinished").unwrap_or(0);
    let never_attempted = options
        .downloads
        .saturating_sub(completed + failures + corrupted);
    let lost = failures + never_attempted;
    let elapsed_s = float_field(&result, "elapsed_s").unwrap_or(wall.as_secs_f64());
    let rate = float_field(&result, "downloads_per_s").unwrap_or(0.0);
    let p99 = float_field(&result, "p99_ms").unwrap_or(f64::NAN);
    let max = float_field(&result, "max_ms").unwrap_or(f64::NAN);

    println!(
        "soak: {} downloads of a {POEM_BYTES}-byte poem, {} at a time, {} mode",
        options.downloads,
        options.concurrency,
        if options.slow { "slow" } else { "fast" }
    );
    println!(
        "  completed {completed}, corrupted {corrupted}, lost {lost} \
         (failures {failures}, unfinished at the deadline {unfinished}, never attempted \
         {never_attempted})"
    );
    match server_counts {
        Some((whole, cut, refused)) => println!(
            "  server: {whole} poems sent whole, {cut} sends cut short, {refused} connections \
             refused; exit status {}",
            status.code().map_or("a signal".into(), |c| c.to_string())
        ),
        None => println!("  server: no stop line (exit status {status:?})"),
    }
    println!(
        "  server VmRSS: {rss_start} KiB at start, {rss_end} KiB at end (+{} KiB); peak \
         VmHWM {rss_peak} KiB",
        rss_end.saturating_sub(rss_start)
    );
    println!(
        "  elapsed {elapsed_s:.1} s ({rate:.0} downloads/s; p99 {p99:.1} ms, max {max:.1} ms)"
    );

    let mut problems = Vec::new();
    if corrupted > 0 {
        problems.push(format!("{corrupted} downloads corrupted"));
    }
    if lost > 0 {
        problems.push(format!("{lost} downloads lost"));
    }
    match server_counts {
        Some((whole, cut, refused)) if (whole, cut, refused) != (completed, 0, 0) => {
            problems.push(format!(
                "the server counts {whole} whole, {cut} cut short, {refused} refused; loadgen \
                 {completed} whole"
            ))
        }
        Some(_) => {}
        None => problems.push("the server did not say what it sent".into()),
    }
    if !status.success() {
        problems.push(format!("the server exited with {status:?}"));
    }
    if rss_end > rss_start + MAX_GROWTH_KIB {
        problems.push(format!(
            "the server grew from {rss_start} to {rss_end} KiB (allowed: {MAX_GROWTH_KIB} KiB)"
        ));
    }
    if problems.is_empty() {
        println!("  ok: nothing corrupted, nothing lost, memory bounded");
        Ok(())
    } else {
        Err(failure(format!("soak: {}", problems.join("; "))))
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
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|json| string_field(json, "sum"))
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

/// The raw text of `"key":value` in a flat JSON object.
fn raw_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern)? + pattern.len();
    let rest = json[start..].trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn number_field(json: &str, key: &str) -> Option<u64> {
    raw_field(json, key)?.parse().ok()
}

fn float_field(json: &str, key: &str) -> Option<f64> {
    raw_field(json, key)?.parse().ok()
}

fn string_field(json: &str, key: &str) -> Option<String> {
    let raw = raw_field(json, key)?;
    Some(raw.strip_prefix('"')?.strip_suffix('"')?.to_owned())
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
        let json = r#"{"mode":"poems","ok":true,"problem":null,"completed":20000,"failures":0,"corrupted":3,"expect_sum":"cbf29ce484222325","elapsed_s":1.25,"timed_out":false}"#;
        assert_eq!(number_field(json, "completed"), Some(20000));
        assert_eq!(number_field(json, "corrupted"), Some(3));
        assert_eq!(float_field(json, "elapsed_s"), Some(1.25));
        assert_eq!(
            string_field(json, "expect_sum").as_deref(),
            Some("cbf29ce484222325")
        );
        assert_eq!(number_field(json, "missing"), None);
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
