//! `cargo xtask demo`: three slow poetry servers, one dead port, and the client
//! fetching from all four at once, with progress and timeline.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::TaskError;
use crate::util::{cargo, dead_port, root, run, Guarded};

/// The three poems the demo serves, from the project's own `poems/` folder: three
/// different lengths, so the timeline shows them finishing at different times.
const DEMO_POEMS: [(&str, &str, &str); 3] = [
    ("haiku.txt", "8", "0.1"),
    ("ete.txt", "20", "0.1"),
    ("lighthouse.txt", "40", "0.1"),
];

pub(crate) fn main(args: &[String]) -> Result<(), TaskError> {
    let release = args.iter().any(|a| a == "--release");
    if let Some(other) = args.iter().find(|a| *a != "--release") {
        return Err(TaskError::Usage(format!(
            "demo: unknown argument {other} (only --release)"
        )));
    }
    let mut build = cargo();
    build.args(["build", "-q", "-p", "poetry-server", "-p", "poetry-client"]);
    if release {
        build.arg("--release");
    }
    run("build the poetry programs", build)?;
    let bin = root()
        .join("target")
        .join(if release { "release" } else { "debug" });

    // Three slow servers, each serving its own poem at its own pace.
    let servings: Vec<(PathBuf, &str, &str)> = DEMO_POEMS
        .iter()
        .map(|(name, bytes, delay)| (root().join("poems").join(name), *bytes, *delay))
        .collect();
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for (poem, num_bytes, delay) in &servings {
        let mut command = Command::new(bin.join("poetry-server"));
        command.args(["--port", "0", "--num-bytes", num_bytes, "--delay", delay]);
        command.arg(poem);
        let (server, port) =
            Guarded::start_server("poetry-server", command, Duration::from_secs(10))?;
        let what = poem
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        eprintln!("xtask: serving {what} on port {port}, {num_bytes} bytes every {delay}s");
        servers.push(server);
        ports.push(port.to_string());
    }
    let dead = dead_port()?;
    eprintln!("xtask: port {dead} has no server: that download must fail, and the others go on");
    ports.push(dead.to_string());

    let mut client = Command::new(bin.join("poetry-client"));
    client
        .args(["--timeline", "--progress", "--timeout", "60"])
        .args(&ports);
    eprintln!(
        "xtask: poetry-client --timeline --progress --timeout 60 {}",
        ports.join(" ")
    );
    let status = client.status().map_err(|e| TaskError::Spawn {
        what: "poetry-client".into(),
        source: e,
    })?;
    for server in &mut servers {
        server.stop(Duration::from_secs(5));
    }
    // One address is dead on purpose: the client reports it and exits 1.
    match status.code() {
        Some(0) | Some(1) => {
            eprintln!("xtask: demo done; the servers are stopped");
            Ok(())
        }
        code => Err(TaskError::Failed {
            what: "poetry-client".into(),
            status: code,
        }),
    }
}
