//! The later parts' services: the transform server (netstring request and reply for a
//! poem, `cummingsify`) and the caching proxy serving from its cache, ours beside
//! Twisted's (`bench/peers/twisted/transform_server.py`, `poetry_proxy.py`).

use std::path::PathBuf;

use super::runner::{require_ok, RunFailure, Service};
use super::scenarios::{downloads_and_cpu, measure, poems_args, prepare, size_label, Ctx};
use super::table::{format_count, Better, Table};

/// A text poem of `bytes` ASCII bytes in upper case, and the transform request for it
/// (`<len>:cummingsify.<poem>,`): the request file and the reply's length.
fn transform_request(ctx: &Ctx<'_>, bytes: u64) -> Result<(PathBuf, u64), RunFailure> {
    let mut poem = Vec::with_capacity(bytes as usize + 64);
    let mut line = 0;
    while (poem.len() as u64) < bytes {
        line += 1;
        poem.extend_from_slice(format!("HERE IS MY POEM, AND THIS IS LINE {line}.\n").as_bytes());
    }
    poem.truncate(bytes as usize);
    let payload = [b"cummingsify.".as_slice(), &poem].concat();
    let request = [format!("{}:", payload.len()).as_bytes(), &payload, b","].concat();
    let path = ctx.data.dir.join(format!(
        "transform-request-{}.bin",
        size_label(bytes).replace(' ', "")
    ));
    std::fs::write(&path, request).map_err(|e| RunFailure(format!("{}: {e}", path.display())))?;
    let reply = format!("{bytes}:").len() as u64 + bytes + 1;
    Ok((path, reply))
}

/// Many transform requests, `poems_concurrency` at a time, each on its own connection:
/// requests/s and the server's CPU per request.
pub(crate) fn transform(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!(
        "transform, {} poem × {}, {} at once",
        size_label(plan.poem_bytes),
        format_count(plan.poems_downloads),
        plan.poems_concurrency
    );
    let figures = [
        (
            "transform.per_s",
            label.as_str(),
            "requests/s",
            Better::Higher,
        ),
        (
            "transform.cpu_us",
            label.as_str(),
            "server CPU µs/request",
            Better::Lower,
        ),
    ];
    let servers = ctx.servers(&["ours", "twisted"]);
    let prepared = transform_request(ctx, plan.poem_bytes);
    measure(ctx, table, "transform", &servers, &figures, |server| {
        let (request, reply) = prepared.clone()?;
        let s = ctx.env.start(server, Service::Transform, None)?;
        let mut args = poems_args(plan, s.port, plan.poems_downloads, plan.poems_concurrency);
        args.extend([
            "--expect-bytes".to_owned(),
            reply.to_string(),
            "--request".to_owned(),
            request.display().to_string(),
        ]);
        downloads_and_cpu(ctx, s, "loadgen poems --request", args)
    });
}

/// Many downloads from a proxy whose cache already holds the poem (one download from
/// our fast poetry server fills it first): downloads/s and the proxy's CPU per
/// download.
pub(crate) fn proxy(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!(
        "proxy from its cache, {} × {}, {} at once",
        size_label(plan.poem_bytes),
        format_count(plan.poems_downloads),
        plan.poems_concurrency
    );
    let figures = [
        ("proxy.per_s", label.as_str(), "downloads/s", Better::Higher),
        (
            "proxy.cpu_us",
            label.as_str(),
            "proxy CPU µs/download",
            Better::Lower,
        ),
    ];
    let servers = ctx.servers(&["ours", "twisted"]);
    let prepared = prepare(ctx, plan.poem_bytes);
    measure(ctx, table, "proxy", &servers, &figures, |server| {
        let (poem, sum) = prepared.clone()?;
        let upstream = ctx.env.start("ours", Service::Poetry(&poem), None)?;
        let s = ctx.env.start(
            server,
            Service::Proxy {
                upstream: upstream.port,
            },
            None,
        )?;
        let args = |downloads: u64, concurrency: u32| {
            let mut args = poems_args(plan, s.port, downloads, concurrency);
            args.extend(["--expect-bytes".to_owned(), plan.poem_bytes.to_string()]);
            if let Some(sum) = &sum {
                args.extend(["--expect-sum".to_owned(), sum.clone()]);
            }
            args
        };
        let fill = ctx.loadgen_run(args(1, 1), None, plan.timeout_s(120))?;
        require_ok("loadgen poems (filling the cache)", fill)?;
        let args = args(plan.poems_downloads, plan.poems_concurrency);
        let figures = downloads_and_cpu(ctx, s, "loadgen poems (from the cache)", args)?;
        upstream.stop()?;
        Ok(figures)
    });
}
