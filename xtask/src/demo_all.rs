//! `cargo xtask demo --all`: the three programs of the later parts cooperating. A slow
//! poetry server, the caching proxy in front of it, the transform service; the
//! client fetches through the proxy twice (the second time from the cache), then the
//! client 6.0 example fetches and cummingsifies, through the proxy and straight from
//! the server.
//!
//! `--quick` serves faster and checks every step (run by `cargo xtask ci`). Every
//! process the demo starts is guarded and stopped on every path out.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::demo::target_dir;
use crate::error::TaskError;
use crate::util::{cargo, root, run, Guarded};

/// The longest any one client run may take.
const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) fn main(release: bool, quick: bool) -> Result<(), TaskError> {
    let mut build = cargo();
    build.args(["build", "-q"]);
    for package in [
        "poetry-server",
        "poetry-client",
        "poetry-transform",
        "poetry-proxy",
    ] {
        build.args(["-p", package]);
    }
    build.args(["--bins", "--example", "transformed_poetry"]);
    if release {
        build.arg("--release");
    }
    run("build the programs", build)?;
    let bin = target_dir().join(if release { "release" } else { "debug" });
    let poem_path = root().join("poems/ete.txt");
    let poem = std::fs::read(&poem_path).map_err(TaskError::Io)?;
    let delay = if quick { "0.005" } else { "0.05" };

    let mut server = Command::new(bin.join("poetry-server"));
    server
        .args(["--port", "0", "--num-bytes", "20", "--delay", delay])
        .arg(&poem_path);
    let (mut server, server_port) =
        Guarded::start_server("poetry-server", server, Duration::from_secs(10))?;
    eprintln!("xtask: poetry-server serves ete.txt on port {server_port}, 20 bytes every {delay}s");
    let mut xform = Command::new(bin.join("poetry-transform-server"));
    xform.args(["--port", "0"]);
    let (mut xform, xform_port) = Guarded::start_server_echoing(
        "poetry-transform-server",
        xform,
        Duration::from_secs(10),
        true,
    )?;
    eprintln!("xtask: poetry-transform-server on port {xform_port}");
    let mut proxy = Command::new(bin.join("poetry-proxy"));
    proxy.args(["--port", "0", &server_port.to_string()]);
    let (mut proxy, proxy_port) =
        Guarded::start_server_echoing("poetry-proxy", proxy, Duration::from_secs(10), true)?;
    eprintln!("xtask: poetry-proxy on port {proxy_port}, in front of port {server_port}");

    let outcome = scenes(&bin, &poem, [server_port, xform_port, proxy_port]);
    for guarded in [&mut proxy, &mut xform, &mut server] {
        guarded.stop(Duration::from_secs(5));
    }
    outcome?;
    eprintln!("xtask: demo --all done; every program is stopped");
    Ok(())
}

/// The demo's steps, each checked; the caller stops the programs whatever happens.
fn scenes(bin: &Path, poem: &[u8], [server, xform, proxy]: [u16; 3]) -> Result<(), TaskError> {
    for (round, note) in [
        (1, "the proxy downloads it from the server"),
        (2, "the proxy has it cached"),
    ] {
        eprintln!("xtask: fetch {round} through the proxy ({note}): poetry-client {proxy}");
        let began = Instant::now();
        let mut client = Command::new(bin.join("poetry-client"));
        client.arg(proxy.to_string());
        let output = run_bounded("poetry-client", client)?;
        eprint!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!(
            "xtask: fetch {round} took {:.2} s",
            began.elapsed().as_secs_f64()
        );
        check(
            output.status.success() && output.stdout == poem,
            "the proxied poem is the server's, byte for byte",
        )?;
    }
    eprintln!("xtask: client 6.0: transformed_poetry {xform} {proxy} {server} (cummingsify the poem via the proxy's cache and straight from the server)");
    let mut example = Command::new(bin.join("examples/transformed_poetry"));
    example.args([xform, proxy, server].map(|p| p.to_string()));
    let output = run_bounded("transformed_poetry", example)?;
    let text = String::from_utf8_lossy(&output.stdout);
    eprint!("{text}");
    let lowered = String::from_utf8_lossy(poem).to_lowercase();
    check(
        output.status.success() && text.matches(lowered.as_str()).count() == 2,
        "both poems come back cummingsified",
    )
}

fn check(ok: bool, what: &str) -> Result<(), TaskError> {
    if ok {
        Ok(())
    } else {
        Err(TaskError::Check(format!("demo --all: not so: {what}")))
    }
}

/// Runs `command` to its end with stdout captured (stderr shown), or kills it at the
/// deadline.
fn run_bounded(name: &str, mut command: Command) -> Result<Output, TaskError> {
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let child = command.spawn().map_err(|e| TaskError::Spawn {
        what: name.to_owned(),
        source: e,
    })?;
    let mut guarded = Guarded {
        child,
        name: name.to_owned(),
    };
    let mut stdout = guarded.child.stdout.take().expect("stdout was piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut bytes);
        bytes
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = guarded.child.try_wait().map_err(TaskError::Io)? {
            break status;
        }
        if Instant::now() >= deadline {
            return Err(TaskError::Failed {
                what: format!("{name} (still running after {DEADLINE:?})"),
                status: None,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr: Vec::new(),
    })
}
