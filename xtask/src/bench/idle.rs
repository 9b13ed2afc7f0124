//! The idle scenario: many connections that send nothing, and what they cost the
//! server in resident memory while held and after they close.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use super::machine;
use super::probe;
use super::runner::{number, require_ok, Client, RunFailure, Server, Service, CLIENT_CPU};
use super::scenarios::{descriptors_for, measure, memory, Ctx};
use super::table::{format_count, Better, Table};

/// How many idle connections this machine lets one client open to one server port:
/// the ephemeral port range (less a margin for everything else on the machine) and,
/// when it cannot be raised, our descriptor limit.
pub(crate) fn idle_possible(asked: u64, ports: Option<u64>, fd_cap: Option<u64>) -> u64 {
    let mut n = asked;
    if let Some(ports) = ports {
        n = n.min(ports.saturating_sub(1_000));
    }
    if let Some(fds) = fd_cap {
        n = n.min(fds.saturating_sub(64));
    }
    n
}

/// Polls `check` every 10 ms until it holds or `within` passes.
fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Many connections that send nothing: the server's RSS per connection while they are
/// held, and what it keeps after they close.
pub(crate) fn run(ctx: &Ctx<'_>, table: &mut Table) {
    let plan = ctx.plan;
    let hard = machine::hard_nofile();
    for (i, &asked) in plan.idle_sizes.iter().enumerate() {
        let ports = machine::ephemeral_ports();
        let by_ports = idle_possible(asked, ports, None);
        // Descriptors: the server and loadgen each need one per connection, and a
        // margin. Beyond our hard limit only prlimit with CAP_SYS_RESOURCE can help.
        let raise = by_ports + 1024 > hard.unwrap_or(u64::MAX);
        let raised = raise && ctx.env.prlimit && machine::can_give_nofile(by_ports + 1024);
        let fd_cap = if raise && !raised { hard } else { None };
        let n = idle_possible(asked, ports, fd_cap);
        let nofile = descriptors_for(ctx.env, n);
        let label = if n < asked {
            let mut why = Vec::new();
            if by_ports < asked {
                why.push(format!(
                    "ip_local_port_range gives one client address {} ports to one server port",
                    format_count(ports.unwrap_or(0))
                ));
            }
            if fd_cap.is_some() {
                why.push(format!(
                    "the hard descriptor limit is {} and cannot be raised here (prlimit needs CAP_SYS_RESOURCE)",
                    format_count(hard.unwrap_or(0))
                ));
            }
            eprintln!(
                "xtask: bench idle: {} connections asked, {} possible here: {}",
                format_count(asked),
                format_count(n),
                why.join("; ")
            );
            format!(
                "idle, {} asked, {} possible",
                format_count(asked),
                format_count(n)
            )
        } else {
            format!("idle, {}", format_count(n))
        };
        let keys = [
            format!("idle.{i}.held"),
            format!("idle.{i}.bytes_per_conn"),
            format!("idle.{i}.kept_kib"),
        ];
        let figures = [
            (
                keys[0].as_str(),
                label.as_str(),
                "connections held",
                Better::Higher,
            ),
            (
                keys[1].as_str(),
                label.as_str(),
                "server RSS B/connection",
                Better::Lower,
            ),
            (
                keys[2].as_str(),
                label.as_str(),
                "server RSS KiB kept after close",
                Better::Lower,
            ),
        ];
        let servers = ctx.servers(&["ours", "raw-mio", "tokio-multi", "tokio-current", "twisted"]);
        let timeout_s = plan.timeout_s(60);
        measure(ctx, table, "idle", &servers, &figures, |server| {
            let s = ctx.env.start(server, Service::Echo, nofile)?;
            std::thread::sleep(Duration::from_millis(200));
            let fds = |s: &Server| probe::open_fds(s.pid).unwrap_or(0);
            let base_fds = fds(&s);
            let before = memory(&s, "VmRSS")?;
            let args: Vec<OsString> = [
                "idle".to_owned(),
                "--port".to_owned(),
                s.port.to_string(),
                "--connections".to_owned(),
                n.to_string(),
                "--until-stdin".to_owned(),
                "--hold-ms".to_owned(),
                "120000".to_owned(),
                "--timeout-s".to_owned(),
                timeout_s.to_string(),
            ]
            .into_iter()
            .map(OsString::from)
            .collect();
            let mut client = Client::spawn(
                ctx.env,
                "loadgen idle",
                CLIENT_CPU,
                &ctx.loadgen(),
                &args,
                nofile,
                true,
            )?;
            let line = client.wait_for_line(
                "idle: ",
                Instant::now() + Duration::from_secs(timeout_s + 15),
            )?;
            let open: u64 = line
                .trim_start_matches("idle: ")
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| RunFailure(format!("loadgen said {line:?}")))?;
            // On loopback a connect completes before the server accepts: wait until
            // the server holds them all, then let it settle.
            let target = base_fds + open as usize;
            if !wait_until(Duration::from_secs(30), || fds(&s) >= target) {
                return Err(RunFailure(format!(
                    "the server holds {} of {open} connections after 30 s",
                    fds(&s).saturating_sub(base_fds)
                )));
            }
            std::thread::sleep(Duration::from_millis(300));
            let held = memory(&s, "VmRSS")?;
            client.say("close")?;
            let fields = require_ok(
                "loadgen idle",
                client.finish(Instant::now() + Duration::from_secs(30))?,
            )?;
            if !wait_until(Duration::from_secs(30), || fds(&s) <= base_fds) {
                return Err(RunFailure(format!(
                    "the server still holds {} connections 30 s after they closed",
                    fds(&s).saturating_sub(base_fds)
                )));
            }
            std::thread::sleep(Duration::from_millis(300));
            let after = memory(&s, "VmRSS")?;
            s.stop()?;
            let established = number(&fields, "established")?.max(1.0);
            Ok(vec![
                established,
                (held - before) / established,
                (after - before) / 1024.0,
            ])
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connections_are_capped_by_ports_and_descriptors() {
        assert_eq!(idle_possible(10_000, Some(28_232), None), 10_000);
        assert_eq!(idle_possible(50_000, Some(28_232), None), 27_232);
        assert_eq!(idle_possible(50_000, None, Some(20_000)), 19_936);
        assert_eq!(idle_possible(50_000, None, None), 50_000);
    }
}
