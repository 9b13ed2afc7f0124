//! `cargo xtask demo`: three slow poetry servers, one dead port, and the client
//! fetching from all four at once, with progress and timeline.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::TaskError;
use crate::util::{cargo, dead_port, root, run, Guarded};

/// The shared poems, when the workspace has `../shared/poetry` beside it.
fn shared_poems() -> Vec<PathBuf> {
    let dir = root().join("../shared/poetry");
    let mut poems: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "txt"))
                .collect()
        })
        .unwrap_or_default();
    poems.sort();
    poems
}

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

    // Three slow servers, each at its own pace: the default poem and two shared ones.
    let poems = shared_poems();
    let mut servings: Vec<(Option<PathBuf>, &str, &str)> = vec![(None, "20", "0.1")];
    for (poem, (bytes, delay)) in poems.iter().zip([("30", "0.1"), ("50", "0.1")]) {
        servings.push((Some(poem.clone()), bytes, delay));
    }
    while servings.len() < 3 {
        servings.push((None, "12", "0.05"));
    }
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for (poem, num_bytes, delay) in &servings {
        let mut command = Command::new(bin.join("poetry-server"));
        command.args(["--port", "0", "--num-bytes", num_bytes, "--delay", delay]);
        if let Some(poem) = poem {
            command.arg(poem);
        }
        let (server, port) =
            Guarded::start_server("poetry-server", command, Duration::from_secs(10))?;
        let what = poem
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or("the default poem".to_owned(), |n| {
                n.to_string_lossy().into_owned()
            });
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
