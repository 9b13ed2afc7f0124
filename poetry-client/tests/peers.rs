//! Our client against servers no one here wrote: the Twisted poetry server of
//! `bench/peers/twisted`. Without Twisted it fails under `CI=true` and elsewhere skips,
//! loudly and counted (`test_support::peer_or_skip`; `.ci/run` installs Twisted).

mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use util::{assert_same_bytes, run_client, twisted_peer, twisted_python, ChildGuard};

/// `poetry_server.py --port 0 FILE`, running: killed on drop.
struct TwistedServer {
    _child: ChildGuard,
    port: u16,
}

impl TwistedServer {
    fn start(python: &Path, script: &Path, poem: &Path) -> TwistedServer {
        let mut child = ChildGuard(
            Command::new(python)
                .arg(script)
                .args(["--port", "0"])
                .arg(poem)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python starts"),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (line, banner) = mpsc::channel();
        thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = line.send(first);
        });
        let banner = banner
            .recv_timeout(util::PATIENCE)
            .expect("Twisted's server announces its port");
        let port = banner
            .trim_end()
            .strip_suffix('.')
            .and_then(|l| l.rsplit_once(" on port "))
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("not a start line: {banner:?}"));
        TwistedServer {
            _child: child,
            port,
        }
    }
}

#[test]
fn gets_every_poem_from_twisted_servers_in_order() {
    let script = twisted_peer("poetry_server.py")
        .expect("bench/peers/twisted/poetry_server.py is part of the repository");
    let Some(python) = test_support::peer_or_skip(
        "a Python with Twisted",
        twisted_python(),
        "set TWISTED_PYTHON, or: python3 -m venv .venv && \
         .venv/bin/pip install -r bench/peers/twisted/requirements.txt",
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("poetry-client-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let large = util::pseudo_random(3 * 1024 * 1024 + 5, 42);
    let large_path = dir.join("large.bin");
    std::fs::write(&large_path, &large).unwrap();
    let mut poems = util::poems();
    poems.push((large_path, large));
    let servers: Vec<TwistedServer> = poems
        .iter()
        .map(|(path, _)| TwistedServer::start(&python, &script, path))
        .collect();
    let addresses: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let run = run_client(&addresses);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let want: Vec<u8> = poems.iter().flat_map(|(_, p)| p.clone()).collect();
    assert_same_bytes(&run.stdout, &want, "poems from Twisted");
    for (i, ((_, poem), address)) in poems.iter().zip(&addresses).enumerate() {
        let header = format!(
            "Task {}: {} bytes of poetry from {address}",
            i + 1,
            poem.len()
        );
        assert!(
            run.stderr.contains(&header),
            "no {header:?} in:\n{}",
            run.stderr
        );
    }
}
