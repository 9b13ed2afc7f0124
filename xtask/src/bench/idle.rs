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
    for (i, &asked) in ctx.plan.idle_sizes.iter().enumerate() {
        let size = IdleSize::plan(ctx, asked);
        let keys = [
            format!("idle.{i}.held"),
            format!("idle.{i}.bytes_per_conn"),
            format!("idle.{i}.kept_kib"),
        ];
        let label = size.label.as_str();
        let figures = [
            (keys[0].as_str(), label, "connections held", Better::Higher),
            (
                keys[1].as_str(),
                label,
                "server RSS B/connection",
                Better::Lower,
            ),
            (
                keys[2].as_str(),
                label,
                "server RSS KiB kept after close",
                Better::Lower,
            ),
        ];
        let servers = ctx.servers(&["ours", "raw-mio", "tokio-multi", "tokio-current", "twisted"]);
        measure(ctx, table, "idle", &servers, &figures, |server| {
            size.measure(ctx, server)
        });
    }
}

/// One idle size as this machine allows it: how many connections, the descriptors
/// each process needs for them, and the row's label.
struct IdleSize {
    connections: u64,
    nofile: Option<u64>,
    label: String,
}

impl IdleSize {
    /// Caps `asked` by the ephemeral ports and, when it cannot be raised, the
    /// descriptor limit, and says why when it does.
    fn plan(ctx: &Ctx<'_>, asked: u64) -> IdleSize {
        let hard = machine::hard_nofile();
        let ports = machine::ephemeral_ports();
        let by_ports = idle_possible(asked, ports, None);
        // Descriptors: the server and loadgen each need one per connection, and a
        // margin. Beyond our hard limit only prlimit with CAP_SYS_RESOURCE can help.
        let raise = by_ports + 1024 > hard.unwrap_or(u64::MAX);
        let raised = raise && ctx.env.prlimit && machine::can_give_nofile(by_ports + 1024);
        let fd_cap = if raise && !raised { hard } else { None };
        let n = idle_possible(asked, ports, fd_cap);
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
        IdleSize {
            connections: n,
            nofile: descriptors_for(ctx.env, n),
            label,
        }
    }

    /// One server's figures: connections held, RSS bytes per connection while held,
    /// and KiB kept after they all closed.
    fn measure(&self, ctx: &Ctx<'_>, server: &str) -> Result<Vec<f64>, RunFailure> {
        let s = ctx.env.start(server, Service::Echo, self.nofile)?;
        std::thread::sleep(Duration::from_millis(200));
        let fds = |s: &Server| probe::open_fds(s.pid).unwrap_or(0);
        let base_fds = fds(&s);
        let before = memory(&s, "VmRSS")?;
        let (mut client, open) = self.open_all(ctx, s.port)?;
        // On loopback a connect completes before the server accepts: wait until the
        // server holds them all, then let it settle.
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
    }

    /// Starts `loadgen idle` against `port` and waits until it says how many
    /// connections it opened.
    fn open_all(&self, ctx: &Ctx<'_>, port: u16) -> Result<(Client, u64), RunFailure> {
        let timeout_s = ctx.plan.timeout_s(60);
        let args: Vec<OsString> = [
            "idle".to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--connections".to_owned(),
            self.connections.to_string(),
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
            self.nofile,
            true,
        )?;
        let line = client.wait_for_line(
            "idle: ",
            Instant::now() + Duration::from_secs(timeout_s + 15),
        )?;
        let open = line
            .trim_start_matches("idle: ")
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| RunFailure(format!("loadgen said {line:?}")))?;
        Ok((client, open))
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
