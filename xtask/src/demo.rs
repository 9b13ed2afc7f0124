//! `cargo xtask demo`: three slow poetry servers, one dead port, and the client
//! fetching from all four at once, with progress and timeline.
//!
//! `--all` runs the later parts' programs together instead (`demo_all.rs`: the proxy
//! and its cache, the transform service, client 6.0).
//!
//! `--quick` (run by `cargo xtask ci`) serves ten times faster and checks the result:
//! the three poems byte-exact in address order on stdout, the dead port reported once,
//! exit status 1. Whatever happens, every process the demo starts is stopped: the
//! servers and the client are guarded (SIGTERM, then SIGKILL, on every path out), and
//! the client has a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::util::{cargo, dead_port, root, run, Guarded};

/// The three poems the demo serves, from the project's own `poems/` folder: three
/// different lengths, so the timeline shows them finishing at different times.
const DEMO_POEMS: [(&str, &str); 3] = [
    ("haiku.txt", "8"),
    ("ete.txt", "20"),
    ("lighthouse.txt", "40"),
];

/// The longest the client may take before the demo gives up on it.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// `cargo xtask demo [--all] [--release] [--quick]`: three slow servers and a dead
/// port, downloaded at once by the client (`--quick`: faster, output checked).
pub(crate) fn main(args: &[String]) -> Result<(), TaskError> {
    let (release, quick, all) = parse_demo_args(args)?;
    if all {
        return crate::demo_all::main(release, quick);
    }
    let bin = build_programs(release)?;
    let delay = if quick { "0.01" } else { "0.1" };
    let (mut servers, mut ports, want) = start_servers(&bin, delay)?;
    let dead = dead_port()?;
    eprintln!("xtask: port {dead} has no server: that download must fail, and the others go on");
    ports.push(dead.to_string());
    let (client, outputs) = client_command(&bin, &ports, quick)?;
    let status = run_client(client);
    for server in &mut servers {
        server.stop(Duration::from_secs(5));
    }
    let code = status?;
    match outputs {
        Some((out_path, err_path)) => {
            let got = std::fs::read(&out_path).map_err(TaskError::Io);
            let said = std::fs::read_to_string(&err_path).map_err(TaskError::Io);
            let _ = (
                std::fs::remove_file(&out_path),
                std::fs::remove_file(&err_path),
            );
            let said = said?;
            eprint!("{said}");
            check_quick(code, &got?, &want, &said, dead)?;
            eprintln!("xtask: demo --quick: three poems byte-exact, the dead port reported");
        }
        // One address is dead on purpose: the client reports it and exits 1.
        None if !matches!(code, Some(0) | Some(1)) => {
            return Err(TaskError::Failed {
                what: "poetry-client".into(),
                status: code,
            });
        }
        None => {}
    }
    eprintln!("xtask: demo done; the servers are stopped");
    Ok(())
}

/// `--release`, `--quick` and `--all`, in that order.
fn parse_demo_args(args: &[String]) -> Result<(bool, bool, bool), TaskError> {
    let (mut release, mut quick, mut all) = (false, false, false);
    for arg in args {
        match arg.as_str() {
            "--release" => release = true,
            "--quick" => quick = true,
            "--all" => all = true,
            other => {
                return Err(TaskError::Usage(format!(
                    "demo: unknown argument {other} (only --all, --release, --quick)"
                )))
            }
        }
    }
    Ok((release, quick, all))
}

/// Builds the server and the client; returns where they are.
fn build_programs(release: bool) -> Result<PathBuf, TaskError> {
    let mut build = cargo();
    build.args(["build", "-q", "-p", "poetry-server", "-p", "poetry-client"]);
    if release {
        build.arg("--release");
    }
    run("build the poetry programs", build)?;
    Ok(target_dir().join(if release { "release" } else { "debug" }))
}

/// The demo's servers (stopped on drop), their ports, and the poems they serve one
/// after the other (what the client must print).
type Servers = (Vec<Guarded>, Vec<String>, Vec<u8>);

/// Three slow servers, each serving its own poem at its own pace.
fn start_servers(bin: &Path, delay: &str) -> Result<Servers, TaskError> {
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    let mut want = Vec::new();
    for (name, num_bytes) in DEMO_POEMS {
        let poem = root().join("poems").join(name);
        want.extend(std::fs::read(&poem).map_err(TaskError::Io)?);
        let (server, port) = start_server(bin, &poem, num_bytes, delay)?;
        eprintln!("xtask: serving {name} on port {port}, {num_bytes} bytes every {delay}s");
        servers.push(server);
        ports.push(port.to_string());
    }
    Ok((servers, ports, want))
}

/// The client over `ports`, with its timeline and progress; with `quick`, its output
/// and errors go to scratch files (returned) to be checked.
fn client_command(
    bin: &Path,
    ports: &[String],
    quick: bool,
) -> Result<(Command, Option<(PathBuf, PathBuf)>), TaskError> {
    let flags = ["--timeline", "--progress", "--timeout", "60"];
    eprintln!(
        "xtask: poetry-client {} {}",
        flags.join(" "),
        ports.join(" ")
    );
    let mut client = Command::new(bin.join("poetry-client"));
    client.args(flags).args(ports).stdin(Stdio::null());
    if !quick {
        return Ok((client, None));
    }
    let scratch = std::env::temp_dir().join(format!("xtask-demo-{}", std::process::id()));
    let (out_path, err_path) = (scratch.with_extension("out"), scratch.with_extension("err"));
    client.stdout(std::fs::File::create(&out_path).map_err(TaskError::Io)?);
    client.stderr(std::fs::File::create(&err_path).map_err(TaskError::Io)?);
    Ok((client, Some((out_path, err_path))))
}

/// Where cargo puts its builds.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root().join("target"), |dir| root().join(dir))
}

fn start_server(
    bin: &Path,
    poem: &Path,
    num_bytes: &str,
    delay: &str,
) -> Result<(Guarded, u16), TaskError> {
    let mut command = Command::new(bin.join("poetry-server"));
    command.args(["--port", "0", "--num-bytes", num_bytes, "--delay", delay]);
    command.arg(poem);
    Guarded::start_server("poetry-server", command, Duration::from_secs(10))
}

/// Runs the client to its end, or kills it at the deadline.
fn run_client(mut command: Command) -> Result<Option<i32>, TaskError> {
    let child = command.spawn().map_err(|e| TaskError::Spawn {
        what: "poetry-client".into(),
        source: e,
    })?;
    let mut client = Guarded {
        child,
        name: "poetry-client".into(),
    };
    let deadline = Instant::now() + CLIENT_DEADLINE;
    loop {
        if let Some(status) = client.child.try_wait().map_err(TaskError::Io)? {
            return Ok(status.code());
        }
        if Instant::now() >= deadline {
            return Err(TaskError::Failed {
                what: format!("poetry-client (still running after {CLIENT_DEADLINE:?})"),
                status: None,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The quick demo's verdict: exit 1 (the dead port, told once), the three poems
/// byte-exact.
fn check_quick(
    code: Option<i32>,
    got: &[u8],
    want: &[u8],
    said: &str,
    dead: u16,
) -> Result<(), TaskError> {
    let told = said
        .matches(&format!("Failed to connect to: 127.0.0.1:{dead} "))
        .count();
    if told != 1 {
        return Err(TaskError::Check(format!(
            "demo: the dead port was reported {told} times, not once"
        )));
    }
    if code != Some(1) {
        return Err(TaskError::Failed {
            what: "poetry-client (the demo expects exit 1, for the dead port)".into(),
            status: code,
        });
    }
    if got != want {
        return Err(TaskError::Check(format!(
            "demo: the client printed {} bytes, not the {} bytes of the three poems",
            got.len(),
            want.len()
        )));
    }
    Ok(())
}
