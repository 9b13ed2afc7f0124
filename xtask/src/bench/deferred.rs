//! `cargo xtask bench deferred`: the deferred layer beside Twisted's Deferred and a
//! tokio oneshot on a current-thread runtime (`tokio-current`) — ns per Deferred created, fired and run through 10 callbacks, ns per
//! task woken and polled, ns per Deferred created, fired and awaited, and bytes per
//! pending Deferred. `bench/deferred` measures ours and tokio's (`deferred-bench ours`,
//! `deferred-bench tokio`), `bench/peers/twisted/deferred_bench.py` Twisted's.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use super::runner::{number, Client, RunFailure, SERVER_CPU};
use super::scenarios::{measure, Ctx};
use super::table::{format_count, Better, Table};
use crate::util::root;

/// Deferreds (tasks) per run.
fn count(ctx: &Ctx<'_>) -> u64 {
    if ctx.plan.smoke {
        1_000
    } else {
        100_000
    }
}

/// One run of `who` (ours, tokio or twisted): its `RESULT` fields.
fn run(ctx: &Ctx<'_>, who: &str) -> Result<super::result::Fields, RunFailure> {
    let count: OsString = count(ctx).to_string().into();
    let (program, args) = match who {
        "twisted" => {
            let python = ctx
                .env
                .python
                .clone()
                .ok_or_else(|| RunFailure("no Twisted".into()))?;
            let script = root().join("bench/peers/twisted/deferred_bench.py");
            (python, vec![script.into(), count])
        }
        "tokio-current" => (
            ctx.env.bin.join("deferred-bench"),
            vec!["tokio".into(), count],
        ),
        _ => (ctx.env.bin.join("deferred-bench"), vec![who.into(), count]),
    };
    let name = format!("deferred-bench {who}");
    let client = Client::spawn(ctx.env, &name, SERVER_CPU, &program, &args, None, false)?;
    client.finish(Instant::now() + Duration::from_secs(300))
}

pub(crate) fn run_scenario(ctx: &Ctx<'_>, table: &mut Table) {
    let label = format!("deferred, {} Deferreds", format_count(count(ctx)));
    let chain = [(
        "deferred.chain_ns",
        label.as_str(),
        "ns/Deferred fired through 10 callbacks",
        Better::Lower,
    )];
    let servers = ctx.servers(&["ours", "twisted"]);
    measure(ctx, table, "deferred", &servers, &chain, |who| {
        Ok(vec![number(&run(ctx, who)?, "chain_ns")?])
    });
    let figures = [
        (
            "deferred.wake_ns",
            label.as_str(),
            "ns/task woken and polled",
            Better::Lower,
        ),
        (
            "deferred.await_ns",
            label.as_str(),
            "ns/created, fired, awaited",
            Better::Lower,
        ),
        (
            "deferred.bytes",
            label.as_str(),
            "bytes/pending Deferred",
            Better::Lower,
        ),
    ];
    let servers = ctx.servers(&["ours", "tokio-current", "twisted"]);
    measure(ctx, table, "deferred", &servers, &figures, |who| {
        let fields = run(ctx, who)?;
        Ok(vec![
            number(&fields, "wake_ns")?,
            number(&fields, "await_ns")?,
            number(&fields, "bytes_per_pending")?,
        ])
    });
}
