//! The two binaries as the bench runs them: `stdio-pass` between a file and a pipe,
//! `udp-echo-server` on loopback. Bounded: every child is killed if it overstays.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child on drop, so a failed assertion never leaves it running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the child's exit, at most `limit`.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the child ran longer than {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn stdio_pass_copies_a_file_to_a_pipe_byte_for_byte() {
    let path = std::env::temp_dir().join(format!("stdio-pass-{}.bin", std::process::id()));
    // Several read chunks, and a pipe far smaller: the flow control must act.
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_stdio-pass"))
            .stdin(std::fs::File::open(&path).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::fs::remove_file(&path).unwrap();
    let mut out = Vec::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    let status = wait(&mut child.0, Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(out == data, "{} bytes out of {}", out.len(), data.len());
}

#[test]
fn stdio_pass_takes_no_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_stdio-pass"))
        .arg("x")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn udp_echo_server_follows_the_servers_contract() {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_udp-echo-server"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim_end()
        .strip_prefix("Serving UDP echo on port ")
        .and_then(|p| p.strip_suffix('.'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for message in [&b"ping"[..], &[], &[7u8; 60_000]] {
        peer.send_to(message, ("127.0.0.1", port)).unwrap();
        let mut buf = vec![0u8; 65_536];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], message);
    }
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait(&mut child.0, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let bad = Command::new(env!("CARGO_BIN_EXE_udp-echo-server"))
        .args(["--port", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
