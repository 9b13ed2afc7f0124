//! The scenarios: each runs its servers round after round, in a rotated order so no
//! server always goes first, and records one sample per figure per round.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::data::Data;
use super::machine;
use super::probe;
use super::runner::{
    number, require_ok, Client, Env, RunFailure, Server, Service, CLIENT_CPU, SERVER_CPU,
};
use super::table::{format_count, format_number, Better, FigureId, Table};

/// The scenario names, in the order they run.
pub(crate) const SCENARIOS: [&str; 11] = [
    "bulk",
    "poems",
    "echo",
    "udp",
    "stdio",
    "idle",
    "slow",
    "timers",
    "transform",
    "proxy",
    "deferred",
];

/// How big each scenario is: the issue's sizes, or tiny ones for the smoke run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) smoke: bool,
    pub(crate) rounds: usize,
    pub(crate) bulk_bytes: u64,
    pub(crate) poem_bytes: u64,
    pub(crate) poems_concurrency: u32,
    pub(crate) poems_downloads: u64,
    pub(crate) echo_connections: u32,
    pub(crate) echo_ms: u64,
    pub(crate) udp_sockets: u32,
    pub(crate) udp_window: u32,
    pub(crate) udp_size: u32,
    pub(crate) udp_ms: u64,
    pub(crate) stdio_bytes: u64,
    pub(crate) idle_sizes: Vec<u64>,
    pub(crate) slow_clients: u64,
    pub(crate) slow_delay: &'static str,
    pub(crate) timers: u64,
    /// Hash every byte received (costs loadgen CPU, so only where speed is not the
    /// point: the smoke run).
    pub(crate) check_sums: bool,
}

impl Plan {
    pub(crate) fn full(rounds: usize) -> Plan {
        Plan {
            smoke: false,
            rounds,
            bulk_bytes: 256 << 20,
            poem_bytes: 10 << 10,
            poems_concurrency: 100,
            poems_downloads: 20_000,
            echo_connections: 50,
            echo_ms: 5_000,
            udp_sockets: 8,
            udp_window: 8,
            udp_size: 64,
            udp_ms: 5_000,
            stdio_bytes: 1 << 30,
            idle_sizes: vec![10_000, 50_000],
            slow_clients: 10_000,
            slow_delay: "0.1",
            timers: 1_000_000,
            check_sums: false,
        }
    }

    pub(crate) fn smoke(rounds: usize) -> Plan {
        Plan {
            smoke: true,
            rounds,
            bulk_bytes: 4 << 20,
            poem_bytes: 10 << 10,
            poems_concurrency: 20,
            poems_downloads: 200,
            echo_connections: 10,
            echo_ms: 300,
            udp_sockets: 4,
            udp_window: 4,
            udp_size: 64,
            udp_ms: 300,
            stdio_bytes: 4 << 20,
            idle_sizes: vec![200],
            slow_clients: 50,
            slow_delay: "0.01",
            timers: 10_000,
            check_sums: true,
        }
    }

    /// How long a loadgen run may take, in seconds (its own `--timeout-s`).
    pub(super) fn timeout_s(&self, full: u64) -> u64 {
        if self.smoke {
            20
        } else {
            full
        }
    }
}

/// Everything a scenario needs.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) env: &'a Env,
    pub(crate) plan: &'a Plan,
    pub(crate) data: &'a Data,
}

impl Ctx<'_> {
    pub(super) fn loadgen(&self) -> PathBuf {
        self.env.bin.join("loadgen")
    }

    /// Runs `loadgen MODE args` on the client CPU to its end and returns its fields.
    pub(super) fn loadgen_run(
        &self,
        args: Vec<String>,
        nofile: Option<u64>,
        timeout_s: u64,
    ) -> Result<super::result::Fields, RunFailure> {
        let what = format!("loadgen {}", args[0]);
        let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        let client = Client::spawn(
            self.env,
            &what,
            CLIENT_CPU,
            &self.loadgen(),
            &args,
            nofile,
            false,
        )?;
        client.finish(Instant::now() + Duration::from_secs(timeout_s + 15))
    }

    /// The servers this run can start, of `wanted`.
    pub(super) fn servers<'s>(&self, wanted: &[&'s str]) -> Vec<&'s str> {
        wanted
            .iter()
            .copied()
            .filter(|s| *s != "twisted" || self.env.python.is_some())
            .collect()
    }
}

/// `servers` rotated by `round`: each round starts with a different server.
pub(crate) fn rotated<'s>(servers: &[&'s str], round: usize) -> Vec<&'s str> {
    let mut order = servers.to_vec();
    if !order.is_empty() {
        let n = round % order.len();
        order.rotate_left(n);
    }
    order
}

/// `256 MiB`, `4 MiB`, `10 KiB`, `100 B`.
pub(crate) fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// Runs `run` for every server in every round, recording its figures (in the order of
/// `figures`) or its failure.
pub(crate) fn measure(
    ctx: &Ctx<'_>,
    table: &mut Table,
    name: &str,
    servers: &[&str],
    figures: &[FigureId<'_>],
    mut run: impl FnMut(&str) -> Result<Vec<f64>, RunFailure>,
) {
    let rounds = ctx.plan.rounds;
    for round in 0..rounds {
        for server in rotated(servers, round) {
            let started = Instant::now();
            let outcome = run(server);
            let took = started.elapsed().as_secs_f64();
            match outcome {
                Ok(values) => {
                    let mut said = Vec::new();
                    for (figure, value) in figures.iter().zip(&values) {
                        table.record(*figure, server, *value);
                        said.push(format!("{}: {}", figure.2, format_number(*value)));
                    }
                    eprintln!(
                        "xtask: bench {name} [{}/{rounds}] {server}: {} ({took:.1}s)",
                        round + 1,
                        said.join("; ")
                    );
                }
                Err(why) => {
                    for figure in figures {
                        table.fail(*figure, server, &why.0);
                    }
                    eprintln!(
                        "xtask: bench {name} [{}/{rounds}] {server}: FAILED: {why}",
                        round + 1
                    );
                }
            }
        }
    }
}

/// The server's CPU time so far, or a failure.
pub(crate) fn cpu(server: &Server) -> Result<u64, RunFailure> {
    probe::cpu_ns(server.pid).ok_or_else(|| RunFailure("cannot read the server's CPU time".into()))
}

/// A memory line of the server's status, in bytes, or a failure.
pub(super) fn memory(server: &Server, key: &str) -> Result<f64, RunFailure> {
    probe::status_bytes(server.pid, key)
        .map(|b| b as f64)
        .ok_or_else(|| RunFailure(format!("cannot read the server's {key}")))
}

/// Many short downloads, `poems_concurrency` at a time: downloads/s and the server's
/// CPU per download.
pub(crate) fn poems(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!(
        "poems, {} × {}, {} at once",
        size_label(plan.poem_bytes),
        format_count(plan.poems_downloads),
        plan.poems_concurrency
    );
    let figures = [
        ("poems.per_s", label.as_str(), "downloads/s", Better::Higher),
        (
            "poems.cpu_us",
            label.as_str(),
            "server CPU µs/download",
            Better::Lower,
        ),
    ];
    let servers = ctx.servers(&["ours", "raw-mio", "tokio-multi", "tokio-current", "twisted"]);
    let prepared = prepare(ctx, plan.poem_bytes);
    measure(ctx, table, "poems", &servers, &figures, |server| {
        let (poem, sum) = prepared.clone()?;
        let s = ctx.env.start(server, Service::Poetry(&poem), None)?;
        let mut args = poems_args(plan, s.port, plan.poems_downloads, plan.poems_concurrency);
        args.extend(["--expect-bytes".to_owned(), plan.poem_bytes.to_string()]);
        if let Some(sum) = sum {
            args.extend(["--expect-sum".to_owned(), sum]);
        }
        downloads_and_cpu(ctx, s, "loadgen poems", args)
    });
}

/// `loadgen poems` against `port`: `downloads` in all, `concurrency` at once.
pub(crate) fn poems_args(plan: &Plan, port: u16, downloads: u64, concurrency: u32) -> Vec<String> {
    vec![
        "poems".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--concurrency".to_owned(),
        concurrency.to_string(),
        "--downloads".to_owned(),
        downloads.to_string(),
        "--timeout-s".to_owned(),
        plan.timeout_s(120).to_string(),
    ]
}

/// Runs loadgen with `args` (a `poems` run) against `server`, then stops it; returns
/// downloads/s and the server's CPU µs per download.
pub(crate) fn downloads_and_cpu(
    ctx: &Ctx<'_>,
    server: Server,
    what: &str,
    args: Vec<String>,
) -> Result<Vec<f64>, RunFailure> {
    let before = cpu(&server)?;
    let fields = ctx.loadgen_run(args, None, ctx.plan.timeout_s(120))?;
    let used = cpu(&server)?.saturating_sub(before);
    let fields = require_ok(what, fields)?;
    server.stop()?;
    let done = number(&fields, "completed")?.max(1.0);
    Ok(vec![
        number(&fields, "downloads_per_s")?,
        used as f64 / 1000.0 / done,
    ])
}

/// Request and response over `echo_connections` connections: requests/s, server CPU
/// per request, latency.
pub(crate) fn echo(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!(
        "echo, 1 KiB, {} conns, {}",
        plan.echo_connections,
        if plan.echo_ms % 1000 == 0 {
            format!("{} s", plan.echo_ms / 1000)
        } else {
            format!("{} ms", plan.echo_ms)
        }
    );
    let figures = [
        ("echo.per_s", label.as_str(), "requests/s", Better::Higher),
        (
            "echo.cpu_us",
            label.as_str(),
            "server CPU µs/request",
            Better::Lower,
        ),
        ("echo.p50_us", label.as_str(), "p50 µs", Better::Lower),
        ("echo.p99_us", label.as_str(), "p99 µs", Better::Lower),
    ];
    let servers = ctx.servers(&["ours", "raw-mio", "tokio-multi", "tokio-current", "twisted"]);
    measure(ctx, table, "echo", &servers, &figures, |server| {
        let s = ctx.env.start(server, Service::Echo, None)?;
        let args = vec![
            "echo".to_owned(),
            "--port".to_owned(),
            s.port.to_string(),
            "--connections".to_owned(),
            plan.echo_connections.to_string(),
            "--size".to_owned(),
            "1024".to_owned(),
            "--duration-ms".to_owned(),
            plan.echo_ms.to_string(),
            "--timeout-s".to_owned(),
            plan.timeout_s(60).to_string(),
        ];
        let before = cpu(&s)?;
        let fields = ctx.loadgen_run(args, None, plan.echo_ms / 1000 + plan.timeout_s(60))?;
        let used = cpu(&s)?.saturating_sub(before);
        let fields = require_ok("loadgen echo", fields)?;
        s.stop()?;
        let requests = number(&fields, "requests")?.max(1.0);
        Ok(vec![
            number(&fields, "requests_per_s")?,
            used as f64 / 1000.0 / requests,
            number(&fields, "p50_us")?,
            number(&fields, "p99_us")?,
        ])
    });
}

/// The descriptor limit (for `prlimit`) for a process holding `connections`: our
/// hard limit, or more when it is too small and prlimit can raise it.
pub(super) fn descriptors_for(env: &Env, connections: u64) -> Option<u64> {
    if !env.prlimit {
        return None;
    }
    let want = connections + 1024;
    match machine::hard_nofile() {
        Some(hard) if want <= hard || !machine::can_give_nofile(want) => Some(hard),
        _ => Some(want),
    }
}

/// Our slow server and many clients, each poem checked byte for byte: how many were
/// not exact, and the server's CPU as a share of one core.
pub(crate) fn slow(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!(
        "slow, {} clients, 10 B every {} s",
        format_count(plan.slow_clients),
        plan.slow_delay
    );
    let figures = [
        (
            "slow.not_exact",
            label.as_str(),
            "poems not byte-exact",
            Better::Lower,
        ),
        (
            "slow.cpu_pct",
            label.as_str(),
            "server CPU, % of one core",
            Better::Lower,
        ),
    ];
    let poem = &ctx.data.slow_poem;
    let expect = std::fs::metadata(poem).map(|m| m.len());
    let sum = file_sum(ctx, poem);
    let nofile = descriptors_for(ctx.env, plan.slow_clients);
    measure(ctx, table, "slow", &["ours"], &figures, |server| {
        let sum = sum.clone()?;
        let expect = expect
            .as_ref()
            .map_err(|e| RunFailure(format!("cannot read {}: {e}", poem.display())))?;
        let service = Service::Slow {
            poem,
            num_bytes: 10,
            delay: plan.slow_delay,
            max_connections: 20_000,
        };
        let s = ctx.env.start(server, service, nofile)?;
        let args = slow_args(plan, s.port, *expect, sum);
        let before = cpu(&s)?;
        let started = Instant::now();
        let fields = ctx.loadgen_run(args, nofile, plan.timeout_s(120))?;
        let wall = started.elapsed();
        let used = cpu(&s)?.saturating_sub(before);
        s.stop()?;
        let exact = number(&fields, "completed")?;
        Ok(vec![
            plan.slow_clients as f64 - exact,
            used as f64 / wall.as_nanos().max(1) as f64 * 100.0,
        ])
    });
}

/// `loadgen slow` against `port`: every client's poem checked against `expect`
/// bytes and their `sum`.
fn slow_args(plan: &Plan, port: u16, expect: u64, sum: String) -> Vec<String> {
    vec![
        "slow".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--clients".to_owned(),
        plan.slow_clients.to_string(),
        "--expect-bytes".to_owned(),
        expect.to_string(),
        "--expect-sum".to_owned(),
        sum,
        "--timeout-s".to_owned(),
        plan.timeout_s(120).to_string(),
    ]
}

/// timers-bench: the reactor's cost per timer call and per pending call.
pub(crate) fn timers(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!("timers, {} calls", format_count(plan.timers));
    let figures = [
        (
            "timers.schedule_ns",
            label.as_str(),
            "ns/schedule",
            Better::Lower,
        ),
        (
            "timers.cancel_ns",
            label.as_str(),
            "ns/cancel",
            Better::Lower,
        ),
        ("timers.fire_ns", label.as_str(), "ns/fire", Better::Lower),
        (
            "timers.bytes_per_call",
            label.as_str(),
            "bytes/pending call",
            Better::Lower,
        ),
    ];
    measure(ctx, table, "timers", &["ours"], &figures, |_| {
        let client = Client::spawn(
            ctx.env,
            "timers-bench",
            SERVER_CPU,
            &ctx.env.bin.join("timers-bench"),
            &[plan.timers.to_string().into()],
            None,
            false,
        )?;
        let fields = client.finish(Instant::now() + Duration::from_secs(120))?;
        Ok(vec![
            number(&fields, "schedule_ns")?,
            number(&fields, "cancel_ns")?,
            number(&fields, "fire_ns")?,
            number(&fields, "bytes_per_pending_call")?,
        ])
    });
}

/// The pseudo-random poem of `bytes`, and its sum when the plan checks sums.
pub(crate) fn prepare(ctx: &Ctx<'_>, bytes: u64) -> Result<(PathBuf, Option<String>), RunFailure> {
    let poem = ctx.data.poem(bytes)?;
    let sum = match ctx.plan.check_sums {
        true => Some(file_sum(ctx, &poem)?),
        false => None,
    };
    Ok((poem, sum))
}

/// `loadgen sum FILE`: the `--expect-sum` of a file.
pub(super) fn file_sum(ctx: &Ctx<'_>, file: &std::path::Path) -> Result<String, RunFailure> {
    let client = Client::spawn(
        ctx.env,
        "loadgen sum",
        CLIENT_CPU,
        &ctx.loadgen(),
        &["sum".into(), file.into()],
        None,
        false,
    )?;
    let fields = require_ok(
        "loadgen sum",
        client.finish(Instant::now() + Duration::from_secs(60))?,
    )?;
    fields
        .str("sum")
        .map(str::to_owned)
        .ok_or_else(|| RunFailure("loadgen sum printed no sum".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_servers() {
        let s = ["a", "b", "c"];
        assert_eq!(rotated(&s, 0), ["a", "b", "c"]);
        assert_eq!(rotated(&s, 1), ["b", "c", "a"]);
        assert_eq!(rotated(&s, 4), ["b", "c", "a"]);
        assert!(rotated(&[], 3).is_empty());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_label(256 << 20), "256 MiB");
        assert_eq!(size_label(10 << 10), "10 KiB");
        assert_eq!(size_label(524), "524 B");
    }

    #[test]
    fn smoke_is_small_and_full_is_the_issue() {
        let full = Plan::full(3);
        assert_eq!(full.bulk_bytes, 256 * 1024 * 1024);
        assert_eq!(full.idle_sizes, [10_000, 50_000]);
        let smoke = Plan::smoke(1);
        assert!(smoke.bulk_bytes <= 4 << 20 && smoke.echo_ms <= 300);
        assert!(smoke.udp_ms <= 300 && smoke.stdio_bytes <= 4 << 20);
        assert_eq!(full.stdio_bytes, 1 << 30);
        assert!(smoke.check_sums && !full.check_sums);
    }
}
