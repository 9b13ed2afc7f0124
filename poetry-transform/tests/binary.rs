//! `poetry-transform-server` as a program: its start line, bad arguments, and real
//! requests over loopback, from a plain socket, `nc` and Twisted's `NetstringReceiver`.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use test_support::{
    nc_or_skip, run_bounded, run_bounded_from, twisted_peer, twisted_python_or_skip, ScratchFile,
};
use util::{transform_server, PATIENCE};

/// Sends `request` on a fresh connection and reads until the server closes.
fn try_ask(port: u16, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(PATIENCE))?;
    socket.write_all(request)?;
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply)?;
    Ok(reply)
}

/// As [`try_ask`], which must work.
fn ask(port: u16, request: &[u8]) -> Vec<u8> {
    try_ask(port, request).expect("a request and its reply")
}

#[test]
fn it_announces_its_port_and_answers() {
    let server = transform_server(&[]);
    assert_eq!(
        server.banner,
        format!("Serving transforms on port {}.", server.port)
    );
    assert_eq!(
        ask(server.port, b"27:cummingsify.HERE IS MY POEM,"),
        b"15:here is my poem,"
    );
    assert_eq!(
        ask(server.port, b"9:unknown.X,"),
        b"",
        "an unknown transform gets no reply"
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("no transform called 'unknown'"),
        "the refusal is logged: {stderr}"
    );
    assert!(
        stderr.contains("1 requests answered, 1 closed without a reply"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: [&[&str]; 6] = [
        &["--port", "70000"],
        &["--port", "x"],
        &["--max-connections", "0"],
        &["--idle-timeout", "-1"],
        &["--iface", "192.0.2.1"],
        &["extra"],
    ];
    for args in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_poetry-transform-server"));
        command.args(args);
        let output = run_bounded(command, PATIENCE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.starts_with("poetry-transform-server: "), "{stderr}");
    }
}

#[test]
fn a_port_in_use_exits_2() {
    let first = transform_server(&[]);
    let port = first.port.to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_poetry-transform-server"));
    command.args(["--port", &port]);
    let output = run_bounded(command, PATIENCE);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&output.stderr).lines().count(), 1);
}

#[test]
fn the_connection_cap_refuses_with_a_clean_close() {
    let server = transform_server(&["--max-connections", "1"]);
    // One client holds the only slot with half a request.
    let mut holder = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    holder.write_all(b"100:cummingsify.").unwrap();
    // The kernel hands connections over in order: the holder is accepted first. The
    // refused one sends nothing (a close with unread bytes would be a reset).
    let mut refused = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    refused.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut nothing = Vec::new();
    refused
        .read_to_end(&mut nothing)
        .expect("a clean close, not a reset");
    assert!(nothing.is_empty(), "refused while the slot is taken");
    drop(holder);
    // Once it leaves, the next client is served (the server may see the leaving late).
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if try_ask(server.port, b"13:cummingsify.A,").is_ok_and(|reply| reply == b"1:a,") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never served after the slot was freed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn nc_with_the_tutorials_request() {
    let Some(nc) = nc_or_skip() else { return };
    let server = transform_server(&[]);
    let request = ScratchFile::new("nc-request", b"27:cummingsify.HERE IS MY POEM,");
    let mut command = Command::new(nc);
    command.args(["127.0.0.1", &server.port.to_string()]);
    let output = run_bounded_from(command, &request.0, PATIENCE);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"15:here is my poem,");
}

#[test]
fn twisted_netstring_client_gets_every_poem_transformed() {
    let Some(python) = twisted_python_or_skip() else {
        return;
    };
    let script = twisted_peer("transform_client.py").expect("a peer script of the repository");
    let server = transform_server(&[]);
    let address = format!("127.0.0.1:{}", server.port);
    let mut poems: Vec<(String, Vec<u8>)> = ["lighthouse.txt", "ete.txt", "crlf.txt", "haiku.txt"]
        .iter()
        .map(|name| {
            (
                name.to_string(),
                std::fs::read(test_support::workspace().join("poems").join(name)).unwrap(),
            )
        })
        .collect();
    // A poem of 90 KB: many reads each way, under the 99,999-byte limit.
    let big: Vec<u8> = "ÉTÉ À LA MER, ".repeat(5_000).into_bytes();
    poems.push(("big".to_owned(), big));
    for (name, poem) in &poems {
        let file = ScratchFile::new(&format!("twisted-{name}"), poem);
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .args([&address, "cummingsify"])
            .arg(&file.0);
        let output = run_bounded(command, PATIENCE);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let want = String::from_utf8(poem.clone())
            .unwrap()
            .to_lowercase()
            .into_bytes();
        assert!(
            output.stdout == want,
            "{name}: Twisted's client got other bytes"
        );
    }
    // A refusal is a close without a reply, which Twisted's client sees as a failure.
    let file = ScratchFile::new("twisted-unknown", b"x");
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .args([&address, "no-such-transform"])
        .arg(&file.0);
    let output = run_bounded(command, PATIENCE);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
}

/// `--max-request-bytes` reaches the protocol: at 13 the 13-byte `cummingsify.A` is
/// answered, a 14-byte request is closed with no reply as soon as its length prefix
/// shows it (the payload is never sent), and the log line says why.
#[test]
fn max_request_bytes_refuses_a_longer_request_at_its_length() {
    let server = transform_server(&["--max-request-bytes", "13"]);
    assert_eq!(ask(server.port, b"13:cummingsify.A,"), b"1:a,");
    assert_eq!(
        ask(server.port, b"14:"),
        b"",
        "closed with no reply, on the prefix alone"
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("netstring is longer than the maximum of 13 bytes"),
        "the refusal is logged: {stderr}"
    );
    assert!(
        stderr.contains("1 requests answered, 1 closed without a reply"),
        "{stderr}"
    );
}
