//! The two programs as a user runs them: the server on a free loopback port, the
//! client asking it, and the usage errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The server process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on port 0 and reads the port it chose from its first line.
fn start_server() -> (Server, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upper-echo-server"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server says where it listens");
    let port = line
        .trim_end()
        .trim_end_matches('.')
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (server, port)
}

#[test]
fn the_client_gets_its_lines_back_in_upper_case() {
    let (_server, port) = start_server();
    let output = Command::new(env!("CARGO_BIN_EXE_upper-echo-client"))
        .args([&port.to_string(), "hello", "Twisted world"])
        .output()
        .expect("the client runs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"HELLO\nTWISTED WORLD\n");
}

#[test]
fn bad_arguments_are_usage_errors() {
    for (program, args) in [
        (env!("CARGO_BIN_EXE_upper-echo-server"), &["70000"][..]),
        (env!("CARGO_BIN_EXE_upper-echo-server"), &["1", "2"][..]),
        (env!("CARGO_BIN_EXE_upper-echo-client"), &[][..]),
        (env!("CARGO_BIN_EXE_upper-echo-client"), &["port"][..]),
    ] {
        let output = Command::new(program).args(args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{program} {args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}
