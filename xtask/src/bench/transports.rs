//! The scenarios of issue 15's transports: `udp` (datagrams echoed, ours on
//! `listen_udp` against a hand-written mio loop and tokio's `UdpSocket`) and `stdio`
//! (a file through a pass-through protocol on `standard_io`, against `cat`).

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::probe;
use super::runner::{number, require_ok, Client, RunFailure, Service, CLIENT_CPU, SERVER_CPU};
use super::scenarios::{cpu, measure, size_label, Ctx};
use super::table::{Better, Table};
use crate::util::Guarded;

/// UDP echo: `udp_sockets` client sockets keep `udp_window` datagrams each in flight
/// for `udp_ms`; datagrams echoed per second and the server's CPU per datagram.
pub(crate) fn udp(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!(
        "udp echo, {} B, {} sockets × {} in flight, {}",
        plan.udp_size,
        plan.udp_sockets,
        plan.udp_window,
        duration_label(plan.udp_ms)
    );
    let figures = [
        ("udp.per_s", label.as_str(), "datagrams/s", Better::Higher),
        (
            "udp.cpu_ns",
            label.as_str(),
            "server CPU ns/datagram",
            Better::Lower,
        ),
        ("udp.lost", label.as_str(), "datagrams lost", Better::Lower),
    ];
    let servers = ctx.servers(&["ours", "raw-mio", "tokio-multi", "tokio-current"]);
    measure(ctx, table, "udp", &servers, &figures, |server| {
        let s = ctx.env.start(server, Service::UdpEcho, None)?;
        let args = vec![
            "udp".to_owned(),
            "--port".to_owned(),
            s.port.to_string(),
            "--sockets".to_owned(),
            plan.udp_sockets.to_string(),
            "--window".to_owned(),
            plan.udp_window.to_string(),
            "--size".to_owned(),
            plan.udp_size.to_string(),
            "--duration-ms".to_owned(),
            plan.udp_ms.to_string(),
            "--timeout-s".to_owned(),
            plan.timeout_s(60).to_string(),
        ];
        let before = cpu(&s)?;
        let fields = ctx.loadgen_run(args, None, plan.udp_ms / 1000 + plan.timeout_s(60))?;
        let used = cpu(&s)?.saturating_sub(before);
        let fields = require_ok("loadgen udp", fields)?;
        s.stop()?;
        let echoed = number(&fields, "echoed")?.max(1.0);
        Ok(vec![
            number(&fields, "datagrams_per_s")?,
            used as f64 / echoed,
            number(&fields, "lost")?,
        ])
    });
}

/// A file of `stdio_bytes` through the program on its standard input and output,
/// into `loadgen drain` on the other CPU: MB/s, and the program's CPU per MB.
pub(crate) fn stdio(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let label = format!(
        "stdio, {} file → program → pipe",
        size_label(plan.stdio_bytes)
    );
    let figures = [
        ("stdio.mb_per_s", label.as_str(), "MB/s", Better::Higher),
        (
            "stdio.cpu_us_per_mb",
            label.as_str(),
            "program CPU µs/MB",
            Better::Lower,
        ),
    ];
    let prepared = ctx.data.poem(plan.stdio_bytes);
    measure(ctx, table, "stdio", &["ours", "cat"], &figures, |program| {
        let input = prepared.clone()?;
        let (mb_per_s, cpu_ns) = pass_through(ctx, program, &input)?;
        Ok(vec![
            mb_per_s,
            cpu_ns / 1000.0 / (plan.stdio_bytes as f64 / 1e6),
        ])
    });
}

/// `5 s`, `300 ms`.
fn duration_label(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// Runs `program < input | loadgen drain`, the program on the server CPU: the drain's
/// MB/s and the program's CPU time (ns), read once it has exited and before it is
/// reaped, so that it is the program's whole life.
fn pass_through(ctx: &Ctx<'_>, program: &str, input: &Path) -> Result<(f64, f64), RunFailure> {
    let plan = ctx.plan;
    let binary = match program {
        "ours" => ctx.env.bin.join("stdio-pass"),
        _ => "cat".into(),
    };
    let log = ctx.env.logs.join(format!("stdio-{program}.log"));
    let file =
        |path: &Path| File::open(path).map_err(|e| RunFailure(format!("{}: {e}", path.display())));
    let stderr = File::create(&log).map_err(|e| RunFailure(format!("{}: {e}", log.display())))?;
    let mut command: Command = ctx.env.command(Some(SERVER_CPU), None, &binary, &[]);
    command
        .stdin(file(input)?)
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut producer = Guarded {
        child: command
            .spawn()
            .map_err(|e| RunFailure(format!("cannot start {program}: {e}")))?,
        name: program.to_owned(),
    };
    let pipe = producer.child.stdout.take().expect("stdout was piped");
    let mut args = vec![
        "drain".into(),
        "--expect-bytes".into(),
        plan.stdio_bytes.to_string().into(),
    ];
    if plan.check_sums {
        let sum = super::scenarios::file_sum(ctx, input)?;
        args.extend(["--expect-sum".into(), sum.into()]);
    }
    let drain = Client::spawn_reading(
        ctx.env,
        "loadgen drain",
        CLIENT_CPU,
        &ctx.loadgen(),
        &args,
        Stdio::from(pipe),
    )?;
    let deadline = Instant::now() + Duration::from_secs(plan.timeout_s(120) + 15);
    let fields = require_ok("loadgen drain", drain.finish(deadline)?)?;
    let pid = producer.child.id();
    let used = exited_cpu_ns(pid, deadline)
        .ok_or_else(|| RunFailure(format!("{program} did not end with its input")))?;
    let status = producer
        .child
        .wait()
        .map_err(|e| RunFailure(format!("waiting for {program}: {e}")))?;
    if !status.success() {
        return Err(RunFailure(format!(
            "{program} exited with {status} (its stderr: {})",
            log.display()
        )));
    }
    Ok((number(&fields, "mb_per_s")?, used as f64))
}

/// Once process `pid` (our child, not yet reaped) has exited, its whole CPU time in
/// ns: a zombie's `/proc` entry still holds it. `None` if it runs past `deadline`.
fn exited_cpu_ns(pid: u32, deadline: Instant) -> Option<u64> {
    while Instant::now() < deadline {
        if probe::state(pid) == Some('Z') {
            return probe::cpu_ns(pid);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}
