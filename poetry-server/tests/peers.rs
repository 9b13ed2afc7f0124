//! Real peers no one here wrote, as clients of our server: `nc`, and the Twisted
//! poetry client of `bench/peers/twisted`. A missing peer fails the test under
//! `CI=true` and elsewhere skips it, loudly and counted (`test_support::peer_or_skip`;
//! `.ci/run` installs both).

mod util;

use std::process::Command;

use util::{nc, run_bounded, shared_poem, shared_poems, twisted_peer, twisted_python, Server};

#[test]
fn nc_gets_the_poem_byte_exact() {
    let Some(nc) = test_support::peer_or_skip("nc", nc(), "apt-get install netcat-openbsd") else {
        return;
    };
    // -N shuts down nc's sending half when its stdin (empty) ends: a client saying at
    // once that it has nothing to send. -d reads no stdin at all.
    let half_close = Command::new(&nc)
        .arg("-h")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("-N"));
    if !half_close {
        println!("this nc has no -N: the half-close case is not checked");
    }
    let (path, want) = shared_poem("lighthouse.txt");
    for delay in ["0", "0.001"] {
        for flag in ["-d", "-N"] {
            if flag == "-N" && !half_close {
                continue;
            }
            let server = Server::start(&[
                "--delay",
                delay,
                "--num-bytes",
                "200",
                path.to_str().unwrap(),
            ]);
            let mut command = Command::new(&nc);
            command.args([flag, "127.0.0.1", &server.port.to_string()]);
            let output = run_bounded(command, util::PATIENCE);
            assert!(
                output.status.success(),
                "nc {flag} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(output.stdout.len(), want.len(), "nc {flag}, delay {delay}");
            assert!(output.stdout == want, "nc {flag} got other bytes");
            let (_, stderr) = server.stop();
            assert!(stderr.contains("1 poems sent whole"), "{stderr}");
        }
    }
}

/// Twisted's Python and the client script; `None` when the test skips (never under
/// `CI=true`, where a missing Twisted fails it).
#[track_caller]
fn twisted_client() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let script = twisted_peer("get_poetry.py")
        .expect("bench/peers/twisted/get_poetry.py is part of the repository");
    let python = test_support::peer_or_skip(
        "a Python with Twisted",
        twisted_python(),
        "set TWISTED_PYTHON, or: python3 -m venv .venv && \
         .venv/bin/pip install -r bench/peers/twisted/requirements.txt",
    )?;
    Some((python, script))
}

#[test]
fn twisted_client_gets_every_poem_from_our_servers_in_order() {
    let Some((python, script)) = twisted_client() else {
        return;
    };
    // One server per poem, fast and slow alternately, and a large binary poem too.
    let dir = util::ScratchDir::new("twisted-client");
    let large = util::pseudo_random(3 * 1024 * 1024 + 17, 99);
    let mut poems = shared_poems();
    poems.push((dir.file("large.bin", &large), large));
    let servers: Vec<Server> = poems
        .iter()
        .enumerate()
        .map(|(i, (path, _))| {
            let delay = if i % 2 == 0 { "0" } else { "0.002" };
            Server::start(&[
                "--delay",
                delay,
                "--num-bytes",
                "64",
                path.to_str().unwrap(),
            ])
        })
        .collect();
    let mut command = Command::new(python);
    command.arg(script).args(["--timeout", "20"]);
    for server in &servers {
        command.arg(format!("127.0.0.1:{}", server.port));
    }
    let output = run_bounded(command, util::PATIENCE * 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "get_poetry.py failed:\n{stderr}");
    let want: Vec<u8> = poems.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
    assert_eq!(output.stdout.len(), want.len(), "{stderr}");
    assert!(output.stdout == want, "Twisted's client got other bytes");
    for (i, (server, (_, bytes))) in servers.iter().zip(&poems).enumerate() {
        let line = format!(
            "Task {}: {} bytes from 127.0.0.1:{}",
            i + 1,
            bytes.len(),
            server.port
        );
        assert!(stderr.contains(&line), "no {line:?} in:\n{stderr}");
    }
}
