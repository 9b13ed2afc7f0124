//! `cargo xtask bench [--smoke] [--rounds N] [SCENARIO...]`: the stack against its
//! peers and the physical limit, side by side.
//!
//! Builds what it needs in release mode, runs every scenario against several servers
//! in the same run (rotating their order each round), and prints one table of medians
//! and spreads with ours ÷ each peer, then the goals met or not. A full run replaces
//! `docs/benchmarks.md`; `--smoke` runs tiny sizes once on the debug binaries (what
//! `cargo xtask ci` does last) and writes nothing.
//!
//! Loopback only. Every wait is bounded, and every process started is stopped when its
//! run ends, however it ends (`util::Guarded`). Servers run on CPU 0 and clients on
//! CPU 1 when `taskset` exists; `prlimit` raises descriptor limits for the idle runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::error::TaskError;
use crate::util::{cargo, root, run};

mod bulk;
mod cc;
mod data;
mod deferred;
mod goals;
mod idle;
mod machine;
mod probe;
pub(crate) mod result;
mod runner;
mod scenarios;
mod services;
mod stats;
mod table;
mod transports;

use data::Data;
use runner::Env;
use scenarios::{Ctx, Plan, SCENARIOS};
use table::Table;

/// The command line, understood.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    smoke: bool,
    rounds: usize,
    scenarios: Vec<String>,
}

pub(crate) fn parse_args(args: &[String]) -> Result<Options, TaskError> {
    let mut smoke = false;
    let mut rounds = None;
    let mut scenarios = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--rounds" => {
                rounds = Some(
                    args.next()
                        .and_then(|s| s.parse().ok())
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            TaskError::Usage("bench: --rounds takes a number from 1 to 100".into())
                        })?,
                );
            }
            name if SCENARIOS.contains(&name) => {
                if !scenarios.iter().any(|s| s == name) {
                    scenarios.push(name.to_owned());
                }
            }
            other => {
                return Err(TaskError::Usage(format!(
                    "bench: unknown argument {other} (scenarios: {})",
                    SCENARIOS.join(", ")
                )))
            }
        }
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    }
    Ok(Options {
        smoke,
        rounds: rounds.unwrap_or(if smoke { 1 } else { 3 }),
        scenarios,
    })
}

/// The smoke run `cargo xtask ci` ends with.
pub(crate) fn smoke() -> Result<(), TaskError> {
    main(&["--smoke".to_owned()])
}

/// `cargo xtask bench [--smoke] [--rounds N] [SCENARIO...]`: builds, runs the chosen
/// scenarios, prints the table (and, for a full run, judges the goals and writes the
/// report to `docs/`).
pub(crate) fn main(args: &[String]) -> Result<(), TaskError> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        say(&usage());
        return Ok(());
    }
    let options = parse_args(args)?;
    let started = Instant::now();
    let load_before = machine::load_average();
    if let Some(load) = load_before.filter(|l| *l > 0.5) {
        eprintln!(
            "xtask: bench: the machine is busy (load average {load:.2}): expect noisy figures"
        );
    }
    let plan = if options.smoke {
        Plan::smoke(options.rounds)
    } else {
        Plan::full(options.rounds)
    };
    let bin = build(&options)?;
    let source = machine::source_state();
    let python = twisted_if_wanted(&options);
    let (env, data) = environment(bin, &python)?;
    let ctx = Ctx {
        env: &env,
        plan: &plan,
        data: &data,
    };
    let (table, notes) = run_scenarios(&ctx, &options);
    let took = started.elapsed().as_secs();
    if options.smoke {
        print_table(&table, &[]);
        say(&format!(
            "Smoke run ({took} s): debug builds and tiny sizes, so no goals judged and docs/benchmarks.md left alone."
        ));
    } else {
        let goals = goals::check(&table);
        print_table(&table, &goals);
        let partial = options.scenarios.len() < SCENARIOS.len();
        let report = Report {
            command: command_line(args),
            machine: machine::Machine::read(),
            pinned: env.pin,
            twisted: python.map(|(_, version)| version),
            rounds: plan.rounds,
            took_s: took,
            load: (load_before, machine::load_average()),
            source,
            scenarios: partial.then(|| options.scenarios.clone()),
            notes,
        };
        write_report(&report, &table, &goals)?;
    }
    fail_on_failed_runs(&table)
}

/// Twisted's Python and version, when a chosen scenario has a Twisted peer.
fn twisted_if_wanted(options: &Options) -> Option<(PathBuf, String)> {
    let with_twisted = [
        "bulk",
        "poems",
        "echo",
        "idle",
        "transform",
        "proxy",
        "deferred",
    ];
    let wanted = options
        .scenarios
        .iter()
        .any(|s| with_twisted.contains(&s.as_str()));
    if wanted {
        twisted(options.smoke)
    } else {
        None
    }
}

/// How servers are started (pinned when the machine allows), and where data and logs
/// go.
fn environment(bin: PathBuf, python: &Option<(PathBuf, String)>) -> Result<(Env, Data), TaskError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cores >= 2 && machine::has("taskset");
    if !pin {
        eprintln!("xtask: bench: not pinning (needs taskset and 2 CPUs)");
    }
    let data_dir = root().join("target/bench-data");
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(TaskError::Io)?;
    let env = Env {
        bin,
        pin,
        prlimit: machine::has("prlimit"),
        python: python.as_ref().map(|(p, _)| p.clone()),
        logs,
        preload: None,
    };
    let data = Data {
        dir: data_dir,
        slow_poem: root().join("poetry-server/src/default_poem.txt"),
    };
    Ok((env, data))
}

/// Runs the chosen scenarios in the fixed order; returns the figures and the notes
/// the scenarios left.
fn run_scenarios(ctx: &Ctx<'_>, options: &Options) -> (Table, Vec<String>) {
    let mut table = Table::default();
    let mut notes = Vec::new();
    let wants = |s: &str| options.scenarios.iter().any(|x| x == s);
    for name in SCENARIOS.iter().filter(|s| wants(s)) {
        eprintln!("xtask: bench {name}");
        match *name {
            "bulk" => notes.extend(bulk::run(ctx, &mut table)),
            "poems" => scenarios::poems(ctx, &mut table),
            "echo" => scenarios::echo(ctx, &mut table),
            "udp" => transports::udp(ctx, &mut table),
            "stdio" => transports::stdio(ctx, &mut table),
            "idle" => idle::run(ctx, &mut table),
            "slow" => scenarios::slow(ctx, &mut table),
            "timers" => scenarios::timers(ctx, &mut table),
            "transform" => services::transform(ctx, &mut table),
            "proxy" => services::proxy(ctx, &mut table),
            "deferred" => deferred::run_scenario(ctx, &mut table),
            _ => unreachable!("SCENARIOS lists the names matched here"),
        }
    }
    (table, notes)
}

/// Prints the figures, their legend, and the goals if judged.
fn print_table(table: &Table, goals: &[goals::Goal]) {
    say(&format!("\n{}", table.to_markdown()));
    say("Median (min–max) over the rounds; ×r = ours ÷ that server; * = spread over a quarter of the median.\n");
    if !goals.is_empty() {
        say(&goals::to_markdown(goals));
    }
}

/// Prints a line. A closed standard output (`| head`) must not stop the report being
/// written to `docs/`, so a failed write is ignored.
fn say(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Prints the notes and writes the report to `docs/`.
fn write_report(report: &Report, table: &Table, goals: &[goals::Goal]) -> Result<(), TaskError> {
    for note in &report.notes {
        say(note);
    }
    let file = report.file_name();
    let docs = root().join("docs");
    std::fs::create_dir_all(&docs).map_err(TaskError::Io)?;
    std::fs::write(docs.join(&file), report.to_markdown(table, goals)).map_err(TaskError::Io)?;
    say(&format!("Written to docs/{file} ({} s).", report.took_s));
    Ok(())
}

/// An error naming how many runs failed, if any did (their notes on stderr).
fn fail_on_failed_runs(table: &Table) -> Result<(), TaskError> {
    let failures = table.failures();
    if failures == 0 {
        return Ok(());
    }
    for note in table.failure_notes() {
        eprintln!("xtask: bench: {note}");
    }
    Err(TaskError::Io(std::io::Error::other(format!(
        "bench: {failures} runs failed (servers' stderr in target/bench-data/logs)"
    ))))
}

/// What `cargo xtask bench --help` prints.
fn usage() -> String {
    format!(
        "usage: cargo xtask bench [--smoke] [--rounds N] [SCENARIO...]\n\
         --smoke: debug builds and tiny sizes, one round, no goals judged (what `cargo xtask ci` runs)\n\
         --rounds N: rounds per figure, 1 to 100 (default 3)\n\
         scenarios (default: all): {}",
        SCENARIOS.join(", ")
    )
}

/// `cargo xtask bench` and the arguments as given.
fn command_line(args: &[String]) -> String {
    std::iter::once("cargo xtask bench".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The packages (and the protocol example) the chosen scenarios run.
fn needed(scenarios: &[String]) -> (Vec<&'static str>, bool) {
    let wants = |names: &[&str]| scenarios.iter().any(|s| names.contains(&s.as_str()));
    let mut packages = Vec::new();
    if wants(&[
        "bulk",
        "poems",
        "echo",
        "udp",
        "stdio",
        "idle",
        "slow",
        "transform",
        "proxy",
    ]) {
        packages.push("loadgen");
    }
    if wants(&["udp", "stdio"]) {
        packages.push("layered-bench");
    }
    if wants(&["bulk", "poems", "slow", "proxy"]) {
        packages.push("poetry-server");
    }
    if wants(&["transform"]) {
        packages.push("poetry-transform");
    }
    if wants(&["proxy"]) {
        packages.push("poetry-proxy");
    }
    if wants(&["bulk"]) {
        packages.push("tcp-cc-preload");
    }
    if wants(&["bulk", "poems", "echo", "udp", "idle"]) {
        packages.extend(["raw-mio-server", "tokio-server"]);
    }
    if wants(&["timers"]) {
        packages.push("timers-bench");
    }
    if wants(&["deferred"]) {
        packages.push("deferred-bench");
    }
    (packages, wants(&["echo", "idle"]))
}

/// The file a package builds into the profile's directory.
fn artifact(package: &str) -> &str {
    match package {
        "tcp-cc-preload" => bulk::PRELOAD_LIBRARY,
        "poetry-transform" => "poetry-transform-server",
        "layered-bench" => "udp-echo-server",
        binary => binary,
    }
}

/// Builds what the run needs and returns the directory of the binaries: release for a
/// real run; for the smoke run the debug binaries `cargo test` already built, building
/// only those missing (so CI never compiles a second profile).
fn build(options: &Options) -> Result<PathBuf, TaskError> {
    let (packages, echo_example) = needed(&options.scenarios);
    let profile = if options.smoke { "debug" } else { "release" };
    let bin = root().join("target").join(profile);
    let missing = |package: &str| !bin.join(artifact(package)).is_file();
    let packages: Vec<&str> = packages
        .into_iter()
        .filter(|p| !options.smoke || missing(p))
        .collect();
    let example = echo_example && (!options.smoke || missing("examples/echo_server"));
    let release: &[&str] = if options.smoke { &[] } else { &["--release"] };
    if !packages.is_empty() {
        let mut command = cargo();
        command.args(["build", "-q"]).args(release);
        for p in &packages {
            command.args(["-p", p]);
        }
        run(
            &format!("build {} ({profile})", packages.join(", ")),
            command,
        )?;
    }
    if example {
        let mut command = cargo();
        command.args(["build", "-q"]).args(release).args([
            "-p",
            "protocol",
            "--example",
            "echo_server",
        ]);
        run(
            &format!("build the echo_server example ({profile})"),
            command,
        )?;
    }
    Ok(bin)
}

/// The workspace's Python with Twisted and its version line, creating the venv from
/// the pinned requirements if need be (not in a smoke run); `None`, said aloud, when
/// there is none: the Twisted column is skipped.
fn twisted(smoke: bool) -> Option<(PathBuf, String)> {
    let python = root().join(".venv/bin/python");
    let version = |python: &Path| {
        let out = Command::new(python)
            .args([
                "-c",
                "import sys, twisted; print('Twisted %s on Python %s' % (twisted.__version__, sys.version.split()[0]))",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    if let Some(v) = version(&python) {
        return Some((python, v));
    }
    if smoke {
        eprintln!("xtask: bench: skipping Twisted (no .venv with Twisted; .ci/run or bench/README.md says how to make one)");
        return None;
    }
    let mut venv = Command::new("python3");
    venv.current_dir(root()).args(["-m", "venv", ".venv"]);
    let mut pip = Command::new(root().join(".venv/bin/pip"));
    pip.current_dir(root()).args([
        "install",
        "-q",
        "-r",
        "bench/peers/twisted/requirements.txt",
    ]);
    let made = run("python3 -m venv .venv", venv)
        .and_then(|()| run("pip install Twisted (bench/peers/twisted)", pip));
    match (made, version(&python)) {
        (Ok(()), Some(v)) => Some((python, v)),
        (made, _) => {
            let why = made
                .err()
                .map_or("it does not import twisted".to_owned(), |e| e.to_string());
            eprintln!("xtask: bench: skipping Twisted: cannot make .venv ({why})");
            None
        }
    }
}

/// What docs/benchmarks.md says about the run, beside the tables.
#[derive(Debug)]
struct Report {
    command: String,
    machine: machine::Machine,
    pinned: bool,
    twisted: Option<String>,
    rounds: usize,
    took_s: u64,
    /// The one-minute load average when the run started and when it ended.
    load: (Option<f64>, Option<f64>),
    /// What the binaries were built from.
    source: String,
    /// The scenarios run, when not all of them were.
    scenarios: Option<Vec<String>>,
    /// What the scenarios said about the machine and what they verified.
    notes: Vec<String>,
}

impl Report {
    /// `benchmarks.md` for a full run; `benchmarks-bulk.md` (say) for a partial one, so
    /// that the last full run's file stays whole.
    fn file_name(&self) -> String {
        match &self.scenarios {
            None => "benchmarks.md".to_owned(),
            Some(names) => format!("benchmarks-{}.md", names.join("-")),
        }
    }

    fn to_markdown(&self, table: &Table, goals: &[goals::Goal]) -> String {
        let mut md = self.header();
        md += "## Results\n\n";
        md += RESULTS_NOTES;
        md += &table.to_markdown();
        md += "\n## Goals\n\n";
        md += &goals::to_markdown(goals);
        let notes = table.failure_notes();
        if !notes.is_empty() {
            md += "\n## Failed runs\n\n";
            for note in notes {
                md += &format!("- {note}\n");
            }
        }
        md += "\n## The scenarios\n\n";
        md += SCENARIO_NOTES;
        md
    }

    /// The title, what the file is, and how and where the run was made.
    fn header(&self) -> String {
        let m = &self.machine;
        let pinning = if self.pinned {
            "servers (and timers-bench) on CPU 0, loadgen on CPU 1, with `taskset -c`; \
             tokio-multi therefore runs one worker"
        } else {
            "none (no taskset, or fewer than 2 CPUs)"
        };
        let twisted = self
            .twisted
            .as_deref()
            .unwrap_or("not run (no Python with Twisted; see bench/README.md)");
        let mut md = String::new();
        match &self.scenarios {
            None => md += "# Benchmarks\n\n",
            Some(names) => {
                md += &format!("# Benchmarks: {} only\n\n", names.join(", "));
                md += "A partial run: docs/benchmarks.md holds the last full run.\n\n";
            }
        }
        md += "The layered stack (\"ours\") against its peers and the physical limit, side by side.\n";
        md += match &self.scenarios {
            None => "Written by `cargo xtask bench`, which replaces this file on every full run: do not edit it\n",
            Some(_) => "Written by the command below, which replaces this file whenever it runs: do not edit it\n",
        };
        md += "by hand. bench/README.md describes the load generator and the peers; docs/performance.md\n";
        md += "(written by hand) explains each goal not met, with the measurements behind it.\n\n";
        md += &format!("- Command: `{}`\n", self.command);
        md += &format!("- Date: {}\n", m.date);
        md += &format!("- Built from: {}\n", self.source);
        md += &format!(
            "- Machine: {} cores (available_parallelism), {}, Linux {}\n",
            m.cores, m.cpu, m.kernel
        );
        md += &format!("- Pinning: {pinning}\n");
        md += &format!("- Twisted: {twisted}\n");
        md += &format!(
            "- Rounds: {}, the servers' order rotated each round; the whole run took {} min {} s\n",
            self.rounds,
            self.took_s / 60,
            self.took_s % 60
        );
        let load = |l: Option<f64>| l.map_or("?".to_owned(), |l| format!("{l:.2}"));
        md += &format!(
            "- Load average (1 min) at the start and the end: {} and {} (other work on the machine \
             shows here, not in the figures)\n\n",
            load(self.load.0),
            load(self.load.1)
        );
        for note in &self.notes {
            md += &format!("- {note}\n");
        }
        if !self.notes.is_empty() {
            md += "\n";
        }
        md
    }
}

/// What the results table shows, above it in the report.
const RESULTS_NOTES: &str = "\
Each cell is the median over the rounds, (min–max), and ×r where r is ours ÷ that
server's median. ↑: higher is better (r > 1: ours is ahead); ↓: lower is better
(r < 1: ours is ahead). \"ours\" is poetry-server in bulk, poems and slow, the
protocol crate's `echo_server` example in echo and idle, and the reactor in timers;
ours-copy is poetry-server `--no-sendfile` (written from a mapping of the file),
ours-kbuf poetry-server `--send-buffer kernel` (the kernel's send-buffer autotuning
for every connection; the default's budget gives it to a lone download too, so the
two should agree); raw-mio-sendfile is the kernel's zero-copy figure from a mio loop,
bare-sendfile and bare-pread the same file sent with no event loop at all (blocking,
one client at a time: sendfile in 4 MiB asks with `TCP_CORK`; `pread` into one 1 MiB
buffer + `write`), the kernel's own cost of each way, references rather than peers.
A `*` marks a spread wider than a quarter of the median: other work on the machine,
or a figure that varies by nature (memory kept after close).

";

const SCENARIO_NOTES: &str = "\
- **bulk**: one client (`loadgen bulk`) downloads a 256 MiB pseudo-random poem
  (`target/bench-data`); MB/s is 10^6 B/s. Three rows: under the system's default
  congestion control; with every server on reno, set on each accepted socket by the
  `tcp-cc-preload` shim (`LD_PRELOAD`, no server's code changed) and checked with
  `ss -ti` before each run; and from a cold page cache (`dd iflag=nocache`, checked
  with `fincore`; it matters only to the servers that read the file as they send:
  ours, ours-copy, ours-kbuf, raw-mio-sendfile, bare-sendfile, bare-pread). Server CPU
  per MB as in poems, over the download. Peak RSS is the server's `VmHWM` after the
  download (raw-mio, tokio and Twisted read the poem whole at start). The peers of the
  bulk goals are raw-mio, tokio and Twisted; raw-mio-sendfile (sendfile from a mio
  loop) and bare-sendfile and bare-pread (`raw-mio-server bare`: no event loop,
  blocking calls, one client at a time) are references rather than peers: what the
  kernel's own path costs.
- **udp**: UDP echo. `loadgen udp` keeps 8 datagrams of 64 B in flight on each of 8
  connected sockets for 5 s (closed loop: each reply is checked and answered by the
  next datagram; a socket that hears nothing for 100 ms counts its window lost and
  sends a new one). Ours is `udp-echo-server` (bench/layered: a `DatagramProtocol`
  on `listen_udp`), against raw-mio-server `udp-echo` (one hand-written mio loop) and
  tokio-server `udp-echo` (`UdpSocket::recv_from`/`send_to`). Server CPU per datagram
  echoed as in poems.
- **stdio**: a 1 GiB pseudo-random file (`target/bench-data`, never committed) on the
  program's standard input, its standard output a pipe into `loadgen drain` (on the
  other CPU), which counts the bytes from the first one to the end. Ours is
  `stdio-pass` (bench/layered: a pass-through protocol on `standard_io`, its own
  transport's streaming producer), against `cat`. The program's CPU is its whole
  life's, read from `/proc` once it has exited, before it is reaped.
- **poems**: a 10 KiB poem, 100 downloads in flight until 20,000 are done, each
  checked for length. Server CPU is the sum over its threads of
  `/proc/PID/task/*/schedstat` (time on CPU) across the loadgen run, per download.
- **echo**: 50 connections each send 1 KiB and wait for it back, for 5 s; server CPU
  per request as above; latency percentiles from loadgen.
- **idle**: connections that send nothing. The server's `VmRSS` is read before, while
  they are all held (once the server holds all their descriptors), and after they close
  (once it holds none). B/connection = (held − before) / connections; KiB kept =
  after − before; \"given back\" means at most a tenth of the growth (or 64 KiB) kept.
  50,000 is capped by what the machine allows, as the row says: one client address
  opens at most `ip_local_port_range` connections to one port (less 1,000 kept
  spare), and each side needs a descriptor per connection (the hard limit, unless
  `prlimit` may raise it).
- **slow**: poetry-server `--num-bytes 10 --delay 0.1 --max-connections 20000` and
  10,000 clients at once (`loadgen slow`), each poem checked byte for byte (length and
  FNV-1a sum from `loadgen sum`); CPU as a share of one core over the run.
- **timers**: `timers-bench 1000000`: call_later a million times, cancel every other
  call, fire the rest on a manual clock; bytes per pending call from RSS.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn help_names_every_option_and_scenario() {
        assert!(
            main(&args(&["--smoke", "--help"])).is_ok(),
            "help runs nothing"
        );
        let usage = usage();
        for word in ["--smoke", "--rounds"]
            .into_iter()
            .chain(SCENARIOS.iter().copied())
        {
            assert!(usage.contains(word), "{word} missing from {usage}");
        }
    }

    #[test]
    fn defaults_are_every_scenario_three_rounds() {
        let o = parse_args(&[]).unwrap();
        assert!(!o.smoke);
        assert_eq!(o.rounds, 3);
        assert_eq!(o.scenarios, SCENARIOS);
    }

    #[test]
    fn smoke_defaults_to_one_round_and_scenarios_can_be_chosen() {
        let o = parse_args(&args(&["--smoke", "echo", "bulk", "echo"])).unwrap();
        assert!(o.smoke);
        assert_eq!(o.rounds, 1);
        assert_eq!(o.scenarios, ["echo", "bulk"]);
        let o = parse_args(&args(&["--rounds", "5", "timers"])).unwrap();
        assert_eq!((o.rounds, o.scenarios.len()), (5, 1));
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["--rounds"][..],
            &["--rounds", "0"],
            &["--rounds", "x"],
            &["nope"],
        ] {
            assert!(
                matches!(parse_args(&args(bad)), Err(TaskError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn needed_follows_the_scenarios() {
        assert_eq!(needed(&args(&["timers"])), (vec!["timers-bench"], false));
        let (packages, example) = needed(&args(&["idle"]));
        assert_eq!(packages, ["loadgen", "raw-mio-server", "tokio-server"]);
        assert!(example);
        assert!(needed(&args(&["slow"])).0.contains(&"poetry-server"));
        assert_eq!(
            needed(&args(&["transform"])).0,
            ["loadgen", "poetry-transform"]
        );
        assert_eq!(
            needed(&args(&["proxy"])).0,
            ["loadgen", "poetry-server", "poetry-proxy"]
        );
        assert_eq!(artifact("poetry-transform"), "poetry-transform-server");
    }

    #[test]
    fn report_has_machine_command_and_tables() {
        let mut t = Table::default();
        t.record(
            (
                "timers.schedule_ns",
                "timers",
                "ns/schedule",
                table::Better::Lower,
            ),
            "ours",
            40.0,
        );
        let report = Report {
            command: command_line(&args(&["--rounds", "3"])),
            machine: machine::Machine {
                cores: 2,
                kernel: "6.18".into(),
                cpu: "Xeon".into(),
                date: "Mon Jan  1 00:00:00 UTC 2024".into(),
            },
            pinned: true,
            twisted: Some("Twisted 25.5.0 on Python 3.11.9".into()),
            rounds: 3,
            took_s: 125,
            load: (Some(0.25), None),
            source: "commit abc1234".into(),
            scenarios: None,
            notes: vec!["Congestion control: system default bbr.".into()],
        };
        let md = report.to_markdown(&t, &goals::check(&t));
        assert!(md.starts_with("# Benchmarks\n"));
        assert!(md.contains("- Command: `cargo xtask bench --rounds 3`"));
        assert!(md.contains("2 cores (available_parallelism), Xeon, Linux 6.18"));
        assert!(md.contains("took 2 min 5 s"));
        assert!(md.contains("- Built from: commit abc1234\n"));
        assert!(md.contains("at the start and the end: 0.25 and ?"));
        assert!(md.contains("| timers   | ns/schedule ↓ |"), "{md}");
        assert!(md.contains("| timers: ≤ 100 ns per schedule"), "{md}");
        assert!(!md.contains("Failed runs"));
        assert!(
            md.contains("- Congestion control: system default bbr.\n"),
            "{md}"
        );
        assert_eq!(report.file_name(), "benchmarks.md");
        let partial = Report {
            scenarios: Some(vec!["bulk".into()]),
            ..report
        };
        assert_eq!(partial.file_name(), "benchmarks-bulk.md");
        assert!(partial
            .to_markdown(&t, &goals::check(&t))
            .starts_with("# Benchmarks: bulk only\n"));
    }
}
