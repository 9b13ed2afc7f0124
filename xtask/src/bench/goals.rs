//! The goals from the issue, checked against the medians: met, not met, or not
//! measured (a scenario not run, or a server that failed).

use super::table::{format_number, render_aligned, Table};

/// Whether a goal was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Met,
    NotMet,
    NotMeasured,
}

/// One goal and what the run found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Goal {
    pub(crate) goal: String,
    pub(crate) figure: String,
    pub(crate) status: Status,
}

impl Goal {
    fn new(goal: &str, figure: String, met: bool) -> Goal {
        Goal {
            goal: goal.to_owned(),
            figure,
            status: if met { Status::Met } else { Status::NotMet },
        }
    }

    fn unmeasured(goal: &str) -> Goal {
        Goal {
            goal: goal.to_owned(),
            figure: "not measured".to_owned(),
            status: Status::NotMeasured,
        }
    }
}

/// Bytes kept after close that still count as "given back": a tenth of what the
/// connections took, or 64 KiB (a few pages of allocator slack), whichever is more.
pub(crate) fn kept_allowance_kib(growth_kib: f64) -> f64 {
    (growth_kib / 10.0).max(64.0)
}

/// `ours` against `factor × peer`, for a figure where higher is better (`at_least`)
/// or lower is better.
fn against_peer(
    table: &Table,
    goal: &str,
    key: &str,
    peer: &str,
    factor: f64,
    at_least: bool,
) -> Goal {
    let (Some(ours), Some(theirs)) = (table.median(key, "ours"), table.median(key, peer)) else {
        return Goal::unmeasured(goal);
    };
    let ratio = if theirs == 0.0 {
        f64::NAN
    } else {
        ours / theirs
    };
    let met = if at_least {
        ours >= factor * theirs
    } else {
        ours <= factor * theirs
    };
    Goal::new(
        goal,
        format!(
            "{} vs {peer} {}: ×{ratio:.2}",
            format_number(ours),
            format_number(theirs)
        ),
        met,
    )
}

/// `ours` against the better of the two tokio runtimes.
fn against_tokio(table: &Table, goal: &str, key: &str, at_least: bool) -> Goal {
    let tokio: Vec<(&str, f64)> = ["tokio-multi", "tokio-current"]
        .into_iter()
        .filter_map(|s| Some((s, table.median(key, s)?)))
        .collect();
    let best = tokio.iter().copied().reduce(|a, b| match at_least {
        true if b.1 > a.1 => b,
        false if b.1 < a.1 => b,
        _ => a,
    });
    let (Some(ours), Some((peer, theirs))) = (table.median(key, "ours"), best) else {
        return Goal::unmeasured(goal);
    };
    let met = if at_least {
        ours >= theirs
    } else {
        ours <= theirs
    };
    Goal::new(
        goal,
        format!(
            "{} vs {peer} {} (the better tokio)",
            format_number(ours),
            format_number(theirs)
        ),
        met,
    )
}

/// The peers of the bulk rows: every server that is not ours and not the kernel's
/// bare zero-copy loop (raw-mio-sendfile, a reference rather than a peer).
const BULK_PEERS: [&str; 4] = ["raw-mio", "tokio-multi", "tokio-current", "twisted"];

/// `ours` against `factor ×` the best of the bulk peers measured (highest when
/// `at_least`, lowest otherwise).
fn against_best_peer(table: &Table, goal: &str, key: &str, factor: f64, at_least: bool) -> Goal {
    let best = BULK_PEERS
        .into_iter()
        .filter_map(|s| Some((s, table.median(key, s)?)))
        .reduce(|a, b| match at_least {
            true if b.1 > a.1 => b,
            false if b.1 < a.1 => b,
            _ => a,
        });
    let (Some(ours), Some((peer, theirs))) = (table.median(key, "ours"), best) else {
        return Goal::unmeasured(goal);
    };
    let met = if at_least {
        ours >= factor * theirs
    } else {
        ours <= factor * theirs
    };
    Goal::new(
        goal,
        format!(
            "{} vs {peer} {} (the best peer): ×{:.2}",
            format_number(ours),
            format_number(theirs),
            ours / theirs
        ),
        met,
    )
}

/// `ours-copy` (`--no-sendfile`) against `ours` in the same row: MB/s at least
/// `factor ×`, and its peak RSS within `rss_mib`.
fn copy_against_sendfile(
    table: &Table,
    goal: &str,
    prefix: &str,
    factor: f64,
    rss_mib: f64,
) -> Goal {
    let mb = format!("{prefix}.mb_per_s");
    let rss = format!("{prefix}.peak_rss_mib");
    let (Some(copy), Some(sendfile), Some(peak)) = (
        table.median(&mb, "ours-copy"),
        table.median(&mb, "ours"),
        table.median(&rss, "ours-copy"),
    ) else {
        return Goal::unmeasured(goal);
    };
    Goal::new(
        goal,
        format!(
            "{} vs sendfile {}: ×{:.2}; peak RSS {} MiB",
            format_number(copy),
            format_number(sendfile),
            copy / sendfile,
            format_number(peak)
        ),
        copy >= factor * sendfile && peak <= rss_mib,
    )
}

/// `ours` against a fixed bound.
fn bound(table: &Table, goal: &str, key: &str, limit: f64, unit: &str, at_most: bool) -> Goal {
    let Some(ours) = table.median(key, "ours") else {
        return Goal::unmeasured(goal);
    };
    let met = if at_most {
        ours <= limit
    } else {
        ours >= limit
    };
    Goal::new(goal, format!("{} {unit}", format_number(ours)), met)
}

/// Every goal, in the order.
pub(crate) fn check(table: &Table) -> Vec<Goal> {
    let mut goals = bulk_goals(table);
    goals.extend(bulk_same_cc_goals(table));
    goals.extend(per_request_goals(table));
    goals.extend(idle_goals(table));
    goals.push(slow_goal(table));
    goals.extend(timer_and_deferred_goals(table));
    goals
}

/// The bulk download under the system's congestion control: throughput and memory.
fn bulk_goals(table: &Table) -> Vec<Goal> {
    vec![
        against_peer(
            table,
            "bulk: MB/s ≥ 0.95 × raw-mio",
            "bulk.mb_per_s",
            "raw-mio",
            0.95,
            true,
        ),
        against_peer(
            table,
            "bulk: MB/s ≥ 0.9 × the kernel zero-copy figure (raw-mio-sendfile)",
            "bulk.mb_per_s",
            "raw-mio-sendfile",
            0.9,
            true,
        ),
        bound(
            table,
            "bulk: server peak RSS ≤ 16 MiB",
            "bulk.peak_rss_mib",
            16.0,
            "MiB",
            true,
        ),
        against_best_peer(
            table,
            "bulk, system cc: MB/s ≥ the best peer",
            "bulk.mb_per_s",
            1.0,
            true,
        ),
    ]
}

/// The bulk download with every server on the same congestion control.
fn bulk_same_cc_goals(table: &Table) -> Vec<Goal> {
    vec![
        against_best_peer(
            table,
            "bulk, same cc for all: MB/s ≥ 1.5 × the best peer",
            "bulk_same.mb_per_s",
            1.5,
            true,
        ),
        against_best_peer(
            table,
            "bulk, same cc for all: server CPU µs/MB ≤ 0.6 × the best peer",
            "bulk_same.cpu_us_per_mb",
            0.6,
            false,
        ),
        bound(
            table,
            "bulk, same cc for all: server peak RSS ≤ 16 MiB",
            "bulk_same.peak_rss_mib",
            16.0,
            "MiB",
            true,
        ),
        copy_against_sendfile(
            table,
            "bulk, same cc for all: --no-sendfile MB/s ≥ 0.75 × sendfile, peak RSS ≤ 16 MiB",
            "bulk_same",
            0.75,
            16.0,
        ),
    ]
}

/// Poems, echo, UDP and stdio against their peers.
fn per_request_goals(table: &Table) -> Vec<Goal> {
    vec![
        against_peer(
            table,
            "poems: server CPU µs/download ≤ 1.05 × raw-mio",
            "poems.cpu_us",
            "raw-mio",
            1.05,
            false,
        ),
        against_tokio(table, "poems: downloads/s ≥ tokio", "poems.per_s", true),
        against_peer(
            table,
            "echo: server CPU µs/request ≤ 1.05 × raw-mio",
            "echo.cpu_us",
            "raw-mio",
            1.05,
            false,
        ),
        against_tokio(table, "echo: p99 ≤ tokio", "echo.p99_us", false),
        against_peer(
            table,
            "udp: datagrams/s ≥ 0.95 × raw-mio",
            "udp.per_s",
            "raw-mio",
            0.95,
            true,
        ),
        against_peer(
            table,
            "udp: server CPU ns/datagram ≤ 1.05 × raw-mio",
            "udp.cpu_ns",
            "raw-mio",
            1.05,
            false,
        ),
        against_peer(
            table,
            "stdio: MB/s ≥ 0.9 × cat",
            "stdio.mb_per_s",
            "cat",
            0.9,
            true,
        ),
        against_peer(
            table,
            "stdio: program CPU µs/MB ≤ 1.1 × cat",
            "stdio.cpu_us_per_mb",
            "cat",
            1.1,
            false,
        ),
    ]
}

/// One goal per idle scenario measured (one unmeasured goal if none was).
fn idle_goals(table: &Table) -> Vec<Goal> {
    let mut goals = Vec::new();
    let idle_rows = table
        .rows
        .iter()
        .filter(|r| r.key.starts_with("idle.") && r.key.ends_with(".bytes_per_conn"));
    for row in idle_rows {
        let prefix = row.key.trim_end_matches(".bytes_per_conn");
        let goal = format!(
            "{}: ≤ 256 B per connection, given back after close",
            row.scenario
        );
        let per = table.median(&row.key, "ours");
        let held = table.median(&format!("{prefix}.held"), "ours");
        let kept = table.median(&format!("{prefix}.kept_kib"), "ours");
        let (Some(per), Some(held), Some(kept)) = (per, held, kept) else {
            goals.push(Goal::unmeasured(&goal));
            continue;
        };
        let allowance = kept_allowance_kib(per * held / 1024.0);
        goals.push(Goal::new(
            &goal,
            format!(
                "{} B/connection over {} connections; {} KiB kept after close (allowed {})",
                format_number(per),
                format_number(held),
                format_number(kept),
                format_number(allowance)
            ),
            per <= 256.0 && kept <= allowance,
        ));
    }
    if goals.is_empty() {
        goals.push(Goal::unmeasured(
            "idle: ≤ 256 B per connection, given back after close",
        ));
    }
    goals
}

/// The slow mode: byte-exact poems at a bounded CPU cost.
fn slow_goal(table: &Table) -> Goal {
    let slow_goal = "slow: every poem byte-exact, server CPU < 50% of one core";
    let not_exact = table
        .summary("slow.not_exact", "ours")
        .map(|s| (s.max, s.count));
    let slow_failures = table
        .row("slow.not_exact")
        .and_then(|r| r.cell("ours"))
        .map_or(0, |c| c.failures);
    match (not_exact, table.median("slow.cpu_pct", "ours")) {
        (Some((worst, rounds)), Some(cpu)) => Goal::new(
            slow_goal,
            format!(
                "{} poems not byte-exact in the worst of {rounds} rounds; CPU {}% of a core",
                format_number(worst),
                format_number(cpu)
            ),
            worst == 0.0 && slow_failures == 0 && cpu < 50.0,
        ),
        _ => Goal::unmeasured(slow_goal),
    }
}

/// The timer wheel and the deferred layer against their bounds and peers.
fn timer_and_deferred_goals(table: &Table) -> Vec<Goal> {
    vec![
        bound(
            table,
            "timers: ≤ 100 ns per schedule",
            "timers.schedule_ns",
            100.0,
            "ns",
            true,
        ),
        bound(
            table,
            "timers: ≤ 100 ns per cancel",
            "timers.cancel_ns",
            100.0,
            "ns",
            true,
        ),
        against_peer(
            table,
            "deferred: a Deferred through 10 callbacks ≥ 20× Twisted's",
            "deferred.chain_ns",
            "twisted",
            1.0 / 20.0,
            false,
        ),
        against_peer(
            table,
            "deferred: a task woken and polled ≤ 2× a tokio oneshot's",
            "deferred.wake_ns",
            "tokio-current",
            2.0,
            false,
        ),
    ]
}

/// The goals as a markdown table.
pub(crate) fn to_markdown(goals: &[Goal]) -> String {
    let mut lines = vec![vec![
        "goal".to_owned(),
        "figure".to_owned(),
        "met".to_owned(),
    ]];
    for g in goals {
        let met = match g.status {
            Status::Met => "yes",
            Status::NotMet => "**no**",
            Status::NotMeasured => "not measured",
        };
        lines.push(vec![g.goal.clone(), g.figure.clone(), met.to_owned()]);
    }
    render_aligned(&lines, &[false, false, false])
}

#[cfg(test)]
mod tests {
    use super::super::table::Better;
    use super::*;

    fn status(goals: &[Goal], starts: &str) -> Status {
        goals
            .iter()
            .find(|g| g.goal.starts_with(starts))
            .unwrap_or_else(|| panic!("no goal {starts}"))
            .status
    }

    #[test]
    fn goals_follow_the_medians() {
        let mut t = Table::default();
        let bulk = ("bulk.mb_per_s", "bulk", "MB/s", Better::Higher);
        for (server, v) in [
            ("ours", 1900.0),
            ("raw-mio", 2100.0),
            ("raw-mio-sendfile", 2000.0),
        ] {
            t.record(bulk, server, v);
        }
        let poems = ("poems.per_s", "poems", "downloads/s", Better::Higher);
        t.record(poems, "ours", 60_000.0);
        t.record(poems, "tokio-multi", 50_000.0);
        t.record(poems, "tokio-current", 61_000.0);
        let p99 = ("echo.p99_us", "echo", "p99 µs", Better::Lower);
        t.record(p99, "ours", 240.0);
        t.record(p99, "tokio-multi", 3000.0);
        t.record(p99, "tokio-current", 245.0);
        let goals = check(&t);
        // 1900 < 0.95 × 2100 = 1995; 1900 ≥ 0.9 × 2000 = 1800.
        assert_eq!(status(&goals, "bulk: MB/s ≥ 0.95"), Status::NotMet);
        assert_eq!(status(&goals, "bulk: MB/s ≥ 0.9 "), Status::Met);
        assert_eq!(status(&goals, "bulk: server peak"), Status::NotMeasured);
        assert_eq!(status(&goals, "bulk, same cc"), Status::NotMeasured);
        // Against the better tokio: current's 61,000.
        assert_eq!(status(&goals, "poems: downloads/s"), Status::NotMet);
        assert_eq!(status(&goals, "echo: p99"), Status::Met);
        assert_eq!(status(&goals, "idle"), Status::NotMeasured);
        let md = to_markdown(&goals);
        assert!(md.contains("| **no**"), "{md}");
        assert!(md.contains("×0.90"), "{md}");
    }

    #[test]
    fn idle_goal_needs_small_growth_and_memory_given_back() {
        let mut t = Table::default();
        let per = ("idle.0.bytes_per_conn", "idle, 10,000", "B", Better::Lower);
        let held = ("idle.0.held", "idle, 10,000", "held", Better::Higher);
        let kept = ("idle.0.kept_kib", "idle, 10,000", "KiB kept", Better::Lower);
        t.record(per, "ours", 200.0);
        t.record(held, "ours", 10_000.0);
        t.record(kept, "ours", 100.0); // allowance: 200 × 10,000 / 1024 / 10 = 195 KiB
        assert_eq!(status(&check(&t), "idle, 10,000"), Status::Met);
        t.record(kept, "ours", 400.0);
        t.record(kept, "ours", 400.0);
        assert_eq!(status(&check(&t), "idle, 10,000"), Status::NotMet);
    }

    #[test]
    fn slow_goal_wants_every_poem_exact_in_every_round() {
        let mut t = Table::default();
        let exact = ("slow.not_exact", "slow", "not exact", Better::Lower);
        let cpu = ("slow.cpu_pct", "slow", "CPU %", Better::Lower);
        t.record(exact, "ours", 0.0);
        t.record(cpu, "ours", 12.0);
        assert_eq!(status(&check(&t), "slow"), Status::Met);
        t.record(exact, "ours", 1.0);
        assert_eq!(status(&check(&t), "slow"), Status::NotMet);
    }

    #[test]
    fn bulk_goals_take_the_best_peer_and_the_copy_against_sendfile() {
        let mut t = Table::default();
        let mb = ("bulk_same.mb_per_s", "bulk", "MB/s", Better::Higher);
        let cpu = ("bulk_same.cpu_us_per_mb", "bulk", "µs/MB", Better::Lower);
        let rss = ("bulk_same.peak_rss_mib", "bulk", "MiB", Better::Lower);
        for (server, m, c, r) in [
            ("ours", 8000.0, 100.0, 0.3),
            ("ours-copy", 6500.0, 130.0, 3.0),
            ("raw-mio", 5000.0, 170.0, 258.0),
            ("tokio-multi", 5400.0, 160.0, 515.0),
            ("raw-mio-sendfile", 9500.0, 99.0, 0.1),
        ] {
            t.record(mb, server, m);
            t.record(cpu, server, c);
            t.record(rss, server, r);
        }
        let goals = check(&t);
        // 8000 < 1.5 × 5400 = 8100 (tokio-multi, the best peer; raw-mio-sendfile is no peer).
        assert_eq!(
            status(&goals, "bulk, same cc for all: MB/s"),
            Status::NotMet
        );
        // 100 ≤ 0.6 × 160 = 96? No.
        assert_eq!(
            status(&goals, "bulk, same cc for all: server CPU"),
            Status::NotMet
        );
        assert_eq!(
            status(&goals, "bulk, same cc for all: server peak"),
            Status::Met
        );
        // 6500 ≥ 0.75 × 8000 = 6000, at 3 MiB.
        assert_eq!(
            status(&goals, "bulk, same cc for all: --no-sendfile"),
            Status::Met
        );
        assert_eq!(status(&goals, "bulk, system cc"), Status::NotMeasured);
        t.record(cpu, "ours", 90.0);
        t.record(cpu, "ours", 90.0);
        assert_eq!(
            status(&check(&t), "bulk, same cc for all: server CPU"),
            Status::Met
        );
    }

    #[test]
    fn allowance_has_a_floor() {
        assert_eq!(kept_allowance_kib(10.0), 64.0);
        assert_eq!(kept_allowance_kib(10_000.0), 1000.0);
    }
}
