//! The bulk scenario, measured fairly: one client downloads the big poem from each
//! server, three ways.
//!
//! * Under the system's default congestion control (BBR on many machines, whose
//!   pacing costs a timer interrupt every few packets on loopback).
//! * With every server, ours and each peer alike, on the same loopback-neutral one
//!   ([`cc::SAME_FOR_ALL`]), applied without changing any server's code: the
//!   `tcp-cc-preload` shim (`LD_PRELOAD`) sets it on every accepted socket.
//! * From a cold page cache (system default), reported apart.
//!
//! Before each timed run the poem is read through and `fincore` confirms it is wholly
//! in the page cache (or dropped, for the cold row), and a probe connection shows, with
//! `ss -ti` on the server's side, which algorithm the server's sockets really use: a
//! run under any other algorithm than the one its row names fails instead of counting.

use std::path::Path;

use super::cc::{self, Settings, SAME_FOR_ALL};
use super::machine;
use super::runner::{number, require_ok, Env, RunFailure, Service};
use super::scenarios::{cpu, measure, memory, prepare, size_label, Ctx};
use super::table::{Better, FigureId, Table};

/// The shared object `cargo build -p tcp-cc-preload` makes.
pub(crate) const PRELOAD_LIBRARY: &str = "libtcp_cc_preload.so";

/// Every server of the bulk rows.
const SERVERS: [&str; 10] = [
    "ours",
    "ours-copy",
    "ours-kbuf",
    "raw-mio",
    "raw-mio-sendfile",
    "bare-sendfile",
    "bare-pread",
    "tokio-multi",
    "tokio-current",
    "twisted",
];

/// How one row's servers run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The system's default algorithm, a warm cache.
    Default,
    /// [`SAME_FOR_ALL`] for every server, a warm cache.
    Same,
    /// The system's default algorithm, the poem dropped from the cache first.
    Cold,
}

/// Runs the three rows and returns what the report must say about them (the
/// machine's settings, what was verified, what could not be measured).
pub(crate) fn run(ctx: &Ctx<'_>, table: &mut Table) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(settings) = Settings::read() else {
        notes.push("bulk: no /proc/sys/net/ipv4: congestion control unknown, bulk not run".into());
        return notes;
    };
    notes.push(format!("Congestion control: {}.", settings.describe()));
    if !machine::has("ss") {
        notes.push(
            "bulk: no `ss` here to read the algorithm of the servers' sockets: not run.".into(),
        );
        return notes;
    }
    notes.push(
        "Algorithm: before every timed run a probe connection showed, with `ss -ti` on the \
         server's side once it was sending, the algorithm its row names (the shim acts \
         inside `accept`, before the server's first write); the client (loadgen) keeps \
         the system default in every row."
            .to_owned(),
    );
    let warm_checked = match prepare(ctx, ctx.plan.bulk_bytes) {
        Ok((poem, _)) => cc::cached(&poem).is_some(),
        Err(_) => false,
    };
    notes.push(if warm_checked {
        "Page cache: before every warm run the poem was read through and `fincore` showed all of it resident; before every cold run the server that answered the probe was stopped, `dd iflag=nocache` dropped the poem (asked from every CPU), `fincore` showed at most 1% (or 2 MiB, one large folio) left, and a fresh server of the same build and settings was timed.".into()
    } else {
        "Page cache: no `fincore` here, so warmth was not verified and the cold row was not run.".into()
    });
    row(ctx, table, Mode::Default, &settings);
    let library = ctx.env.bin.join(PRELOAD_LIBRARY);
    if !settings.available.iter().any(|a| a == SAME_FOR_ALL) {
        notes.push(format!(
            "bulk: the kernel has no {SAME_FOR_ALL}: the same-for-all row was not run."
        ));
    } else if !library.is_file() {
        notes.push(format!(
            "bulk: no {}: the same-for-all row was not run.",
            library.display()
        ));
    } else {
        let env = Env {
            preload: Some((library, SAME_FOR_ALL.to_owned())),
            ..ctx.env.clone()
        };
        let same = Ctx { env: &env, ..*ctx };
        row(&same, table, Mode::Same, &settings);
    }
    if warm_checked {
        row(ctx, table, Mode::Cold, &settings);
    }
    notes
}

/// The figures of a row, `(name, unit, better)`: MB/s, server CPU per MB and peak RSS
/// (MB/s only when cold), and the prefix of their keys.
fn figures(mode: Mode) -> (&'static str, Vec<(&'static str, &'static str, Better)>) {
    let mb = ("mb_per_s", "MB/s", Better::Higher);
    let cpu = ("cpu_us_per_mb", "server CPU µs/MB", Better::Lower);
    let rss = ("peak_rss_mib", "server peak RSS, MiB", Better::Lower);
    match mode {
        Mode::Default => ("bulk", vec![mb, cpu, rss]),
        Mode::Same => ("bulk_same", vec![mb, cpu, rss]),
        Mode::Cold => ("bulk_cold", vec![mb]),
    }
}

/// The label of a row, naming the algorithm its servers use.
fn label(mode: Mode, bytes: u64, settings: &Settings) -> String {
    let size = size_label(bytes);
    match mode {
        Mode::Default => format!("bulk, {size}, system cc ({})", settings.default),
        Mode::Same => format!("bulk, {size}, {SAME_FOR_ALL} for every server"),
        Mode::Cold => format!("bulk, {size}, cold cache, system cc ({})", settings.default),
    }
}

fn row(ctx: &Ctx<'_>, table: &mut Table, mode: Mode, settings: &Settings) {
    let label = label(mode, ctx.plan.bulk_bytes, settings);
    let (prefix, names) = figures(mode);
    let keys: Vec<String> = names
        .iter()
        .map(|(name, _, _)| format!("{prefix}.{name}"))
        .collect();
    let figures: Vec<FigureId<'_>> = keys
        .iter()
        .zip(&names)
        .map(|(key, (_, unit, better))| (key.as_str(), label.as_str(), *unit, *better))
        .collect();
    let expected = match mode {
        Mode::Same => SAME_FOR_ALL,
        Mode::Default | Mode::Cold => settings.default.as_str(),
    };
    let servers = ctx.servers(&SERVERS);
    let prepared = prepare(ctx, ctx.plan.bulk_bytes);
    measure(ctx, table, &label, &servers, &figures, |server| {
        let (poem, sum) = prepared.clone()?;
        one_run(
            ctx,
            server,
            mode,
            &poem,
            sum.as_deref(),
            (expected, &settings.available),
        )
    });
}

/// One download from `server`: start it, check its algorithm, set the cache, time it.
fn one_run(
    ctx: &Ctx<'_>,
    server: &str,
    mode: Mode,
    poem: &Path,
    sum: Option<&str>,
    (expected, known): (&str, &[String]),
) -> Result<Vec<f64>, RunFailure> {
    let plan = ctx.plan;
    let mut s = ctx.env.start(server, Service::Poetry(poem), None)?;
    let algorithm = cc::server_algorithm(s.port, known)?;
    if algorithm != expected {
        return Err(RunFailure(format!(
            "{server}'s socket uses {algorithm}, not {expected}"
        )));
    }
    match mode {
        Mode::Cold => {
            // The probe's pages may still be held by the server that sent them (and a
            // page held pins its whole folio, up to 2 MiB): stop that server, drop
            // the poem, and time a fresh one of the same build and settings.
            s.stop()?;
            cc::cool(poem)?;
            s = ctx.env.start(server, Service::Poetry(poem), None)?;
        }
        Mode::Default | Mode::Same => {
            cc::warm(poem)?;
        }
    }
    let mut args = vec![
        "bulk".to_owned(),
        "--port".to_owned(),
        s.port.to_string(),
        "--expect-bytes".to_owned(),
        plan.bulk_bytes.to_string(),
        "--timeout-s".to_owned(),
        plan.timeout_s(60).to_string(),
    ];
    if let Some(sum) = sum {
        args.extend(["--expect-sum".to_owned(), sum.to_owned()]);
    }
    let before = cpu(&s)?;
    let fields = require_ok(
        "loadgen bulk",
        ctx.loadgen_run(args, None, plan.timeout_s(60))?,
    )?;
    let spent_ns = cpu(&s)?.saturating_sub(before);
    let peak = memory(&s, "VmHWM")?;
    s.stop()?;
    let megabytes = plan.bulk_bytes as f64 / 1e6;
    let mut values = vec![number(&fields, "mb_per_s")?];
    if mode != Mode::Cold {
        values.push(spent_ns as f64 / 1e3 / megabytes);
        values.push(peak / f64::from(1u32 << 20));
    }
    Ok(values)
}
