//! The `poetry-server` binary over real loopback sockets, with plain blocking clients:
//! the poems arrive byte for byte, in fast and slow mode, empty and huge; many clients
//! at once; `--max-connections`; clients that misbehave; the command line's errors.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use test_support::{tcp_state, TCP_ESTABLISHED};

use util::{
    assert_same_bytes, fetch, pseudo_random, reset, run_bounded, shared_poem, shared_poems,
    ScratchDir, Server,
};

#[test]
fn serves_each_shared_poem_byte_exact_in_fast_mode() {
    for (path, want) in shared_poems() {
        let path = path.to_str().unwrap();
        let server = Server::start(&["--delay", "0", path]);
        assert_eq!(
            util::parse_banner(&server.banner).map(|(name, _)| name),
            Some(path),
            "the start line names the poem"
        );
        for round in 0..2 {
            let got = fetch(server.port).expect("a poem");
            assert_same_bytes(&got, &want, &format!("{path}, client {round}"));
        }
        let (status, stderr) = server.stop();
        assert!(
            status.success(),
            "clean exit on SIGTERM: {status:?}\n{stderr}"
        );
        assert!(
            stderr.contains("2 poems sent whole, 0 sends cut short, 0 connections refused"),
            "{stderr}"
        );
    }
}

#[test]
fn serves_byte_exact_in_slow_mode() {
    let (path, want) = shared_poem("lighthouse.txt");
    let server = Server::start(&[
        "--delay",
        "0.001",
        "--num-bytes",
        "97",
        path.to_str().unwrap(),
    ]);
    assert_same_bytes(&fetch(server.port).unwrap(), &want, "slow mode");
}

#[test]
fn serves_the_default_poem_without_a_file() {
    let server = Server::start(&["--delay", "0"]);
    assert!(
        server.banner.starts_with("Serving the default poem"),
        "{}",
        server.banner
    );
    let poem = fetch(server.port).unwrap();
    assert_same_bytes(
        &poem,
        poetry_server::poem::DEFAULT_POEM.as_bytes(),
        "default poem",
    );
}

#[test]
fn serves_a_large_binary_poem_to_two_clients_at_once() {
    // Over the in-memory limit, so the server streams it from the file, each client at
    // its own offset: with sendfile, and copying through a buffer. NULs and every byte
    // value included.
    let dir = ScratchDir::new("large");
    let want = pseudo_random(8 * 1024 * 1024, 0x5eed);
    assert!(want.contains(&0));
    let path = dir.file("large.bin", &want);
    for copy in [false, true] {
        let mut args = vec!["--delay", "0", path.to_str().unwrap()];
        if copy {
            args.push("--no-sendfile");
        }
        let server = Server::start(&args);
        let port = server.port;
        let readers: Vec<_> = (0..2).map(|_| thread::spawn(move || fetch(port))).collect();
        for reader in readers {
            let got = reader.join().unwrap().expect("the large poem");
            assert_same_bytes(&got, &want, &format!("large binary poem, {args:?}"));
        }
        let (_, stderr) = server.stop();
        assert!(stderr.contains("2 poems sent whole"), "{stderr}");
    }
}

#[test]
fn serves_from_several_reactors_on_one_port() {
    const CLIENTS: usize = 100;
    let (path, want) = shared_poem("crlf.txt");
    let server = Server::start(&[
        "--reactors",
        "3",
        "--delay",
        "0.005",
        "--num-bytes",
        "100",
        path.to_str().unwrap(),
    ]);
    let port = server.port;
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| thread::spawn(move || fetch(port)))
        .collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let got = reader.join().unwrap().expect("a poem");
        assert_same_bytes(&got, &want, &format!("client {i}"));
    }
    // SIGTERM stops every reactor; the statistics are summed.
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{CLIENTS} poems sent whole, 0 sends cut short")),
        "{stderr}"
    );
}

#[test]
fn serves_an_empty_poem_as_an_immediate_clean_close() {
    let dir = ScratchDir::new("empty");
    let path = dir.file("empty.txt", b"");
    for delay in ["0", "0.01"] {
        let server = Server::start(&["--delay", delay, path.to_str().unwrap()]);
        assert_eq!(fetch(server.port).unwrap(), b"", "delay {delay}");
        let (_, stderr) = server.stop();
        assert!(stderr.contains("1 poems sent whole"), "{stderr}");
    }
}

#[test]
fn paces_a_real_slow_server_plausibly() {
    // 1489 bytes at 50 bytes every 10 ms: 30 pieces, 29 pauses, about 0.3 s.
    let (path, want) = shared_poem("lighthouse.txt");
    let pauses = want.len().div_ceil(50) - 1;
    let server = Server::start(&[
        "--delay",
        "0.01",
        "--num-bytes",
        "50",
        path.to_str().unwrap(),
    ]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(util::PATIENCE)).unwrap();
    let began = Instant::now();
    let (mut got, mut reads) = (Vec::new(), 0);
    let mut buf = [0u8; 8192];
    for _ in 0..100_000 {
        match stream.read(&mut buf).unwrap() {
            0 => break,
            n => {
                got.extend_from_slice(&buf[..n]);
                reads += 1;
            }
        }
    }
    let elapsed = began.elapsed();
    assert_same_bytes(&got, &want, "paced poem");
    assert!(
        elapsed >= Duration::from_millis(10) * (pauses as u32 - 1),
        "{pauses} pauses of 10 ms took only {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "{pauses} pauses of 10 ms took {elapsed:?}"
    );
    assert!(
        reads >= 5,
        "the poem came in {reads} reads, not piece by piece"
    );
}

#[test]
fn serves_two_hundred_clients_at_once() {
    const CLIENTS: usize = 200;
    let (path, want) = shared_poem("lighthouse.txt");
    let server = Server::start(&[
        "--delay",
        "0.01",
        "--num-bytes",
        "300",
        path.to_str().unwrap(),
    ]);
    let port = server.port;
    // Connect them all first, so every download is in flight at once.
    let streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("client {i}: {e}"))
        })
        .collect();
    let began = Instant::now();
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            thread::spawn(move || {
                stream.set_read_timeout(Some(util::PATIENCE)).unwrap();
                let mut poem = Vec::new();
                stream.read_to_end(&mut poem).map(|_| poem)
            })
        })
        .collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let got = reader.join().unwrap().expect("a poem");
        assert_same_bytes(&got, &want, &format!("client {i}"));
    }
    // Served side by side, not one after another (which would take 200 × 0.1 s).
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    let (_, stderr) = server.stop();
    assert!(
        stderr.contains(&format!("{CLIENTS} poems sent whole, 0 sends cut short")),
        "{stderr}"
    );
}

#[test]
fn max_connections_refuses_extra_clients_with_a_reset() {
    let poem: Vec<u8> = b"one two three four five six seven eight nine ten\n".repeat(4);
    let dir = ScratchDir::new("max-connections");
    let path = dir.file("poem.txt", &poem);
    let server = Server::start(&[
        "--delay",
        "0.05",
        "--num-bytes",
        "50",
        "--max-connections",
        "2",
        path.to_str().unwrap(),
    ]);
    // Two clients take both places: each has its first piece, so each was accepted.
    let mut served: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.set_read_timeout(Some(util::PATIENCE)).unwrap();
            let mut first = [0u8; 50];
            s.read_exact(&mut first).expect("the first piece");
            assert_eq!(&first[..], &poem[..50]);
            s
        })
        .collect();
    // A third is accepted by the kernel, then reset with nothing sent: a refusal must
    // not look like an empty poem.
    let refused = fetch(server.port).expect_err("a reset, not an empty poem");
    assert_eq!(refused.kind(), ErrorKind::ConnectionReset, "{refused}");
    // The two go on to the end.
    for s in &mut served {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert_same_bytes(&rest, &poem[50..], "the rest of the poem");
    }
    // Their places are free again once they leave (the server holds each until its
    // client has taken the whole poem, or closes): a bounded retry, each miss a
    // refusal.
    drop(served);
    let deadline = Instant::now() + util::PATIENCE;
    let mut refusals = 1;
    let after = loop {
        match fetch(server.port) {
            Ok(poem) => break poem,
            Err(e) if e.kind() == ErrorKind::ConnectionReset && Instant::now() < deadline => {
                refusals += 1;
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("after the two: {e}"),
        }
    };
    assert_same_bytes(&after, &poem, "after the two");
    let (_, stderr) = server.stop();
    assert!(
        stderr.contains(&format!(
            "3 poems sent whole, 0 sends cut short, {refusals} connections refused"
        )),
        "{stderr}"
    );
}

#[test]
fn survives_clients_that_talk_reset_or_leave_early() {
    let (path, want) = shared_poem("haiku.txt");
    let mut server = Server::start(&[
        "--delay",
        "0.02",
        "--num-bytes",
        "20",
        path.to_str().unwrap(),
    ]);
    // One talks (the server ignores it) and reads it all.
    let mut talker = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    talker.set_read_timeout(Some(util::PATIENCE)).unwrap();
    talker.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    // One resets after the first piece; one closes cleanly after the first piece.
    for rude in [true, false] {
        let mut leaver = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        leaver.set_read_timeout(Some(util::PATIENCE)).unwrap();
        let mut first = [0u8; 20];
        leaver.read_exact(&mut first).unwrap();
        if rude {
            reset(leaver);
        } else {
            drop(leaver);
        }
    }
    let mut got = Vec::new();
    talker.read_to_end(&mut got).unwrap();
    assert_same_bytes(&got, &want, "the talker's poem");
    assert!(server.is_running());
    assert_same_bytes(&fetch(server.port).unwrap(), &want, "a later client");
    let (status, stderr) = server.stop();
    assert!(status.success());
    assert!(
        stderr.contains("2 poems sent whole, 2 sends cut short"),
        "{stderr}"
    );
}

#[test]
fn idle_timeout_closes_a_client_that_stops_reading() {
    // A client that never reads: the socket buffers fill, the server makes no progress
    // and gives up after the idle timeout (0.2 s to 0.4 s), closing the connection.
    let dir = ScratchDir::new("idle");
    let poem = pseudo_random(16 * 1024 * 1024, 7);
    let path = dir.file("idle.bin", &poem);
    let server = Server::start(&[
        "--delay",
        "0",
        "--idle-timeout",
        "0.2",
        path.to_str().unwrap(),
    ]);
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // Wait, without reading, until the server gives up: our end leaves ESTABLISHED
    // when its reset (or close) arrives.
    let deadline = Instant::now() + util::PATIENCE;
    while tcp_state(&stalled) == TCP_ESTABLISHED {
        assert!(Instant::now() < deadline, "the idle timeout never fired");
        thread::sleep(Duration::from_millis(20));
    }
    // Now read: what the buffers held, then the end (a close or a reset), well short
    // of the whole poem.
    stalled.set_read_timeout(Some(util::PATIENCE)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match stalled.read(&mut buf) {
            Ok(0) => break "eof",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("reading a timed-out connection: {e}"),
        }
    };
    assert!(
        got.len() < poem.len(),
        "the whole poem arrived ({ended}) despite the timeout"
    );
    assert_same_bytes(&got, &poem[..got.len()], "what arrived before the timeout");
    let (_, stderr) = server.stop();
    assert!(
        stderr.contains("0 poems sent whole, 1 sends cut short"),
        "{stderr}"
    );
}

/// Runs the server with `args` expecting it to refuse them: exit 2 and one line on
/// stderr, which is returned.
#[track_caller]
fn refused(args: &[&str]) -> String {
    let mut command = Command::new(util::server_binary());
    // Names resolve in memory only: no lookup leaves the machine.
    command
        .args(args)
        .env(protocol::TEST_HOSTS_VARIABLE, "localhost=127.0.0.1,::1");
    let output = run_bounded(command, util::PATIENCE);
    test_support::one_line_error(&output, "poetry-server", 2)
}

#[test]
fn bad_command_lines_exit_2_with_one_line() {
    let dir = ScratchDir::new("usage");
    let missing = dir.path().join("no-such-poem.txt");
    assert!(refused(&[missing.to_str().unwrap()]).contains("cannot read poem"));
    assert!(refused(&[dir.path().to_str().unwrap()]).contains("is not a file"));
    assert!(refused(&["--delay", "soon"]).contains("'soon' is not a number of seconds"));
    assert!(refused(&["--delay", "-1"]).contains("out of range"));
    assert!(refused(&["--delay", "inf"]).contains("out of range"));
    assert!(refused(&["--idle-timeout", "nan"]).contains("out of range"));
    refused(&["--num-bytes", "0"]);
    refused(&["--port", "65536"]);
    refused(&["--port", "ten"]);
    refused(&["--max-connections", "0"]);
    refused(&["--no-such-option"]);
    refused(&["one.txt", "two.txt"]);
    refused(&["--reactors", "0"]);
    refused(&["--iface", "unknown.test"]);
    // Hostile, huge arguments are cut short in the one line.
    let long = "x".repeat(100_000);
    assert!(refused(&["--delay", &long]).len() < 200);
}

#[test]
fn a_port_in_use_exits_2_with_one_line() {
    let server = Server::start(&["--delay", "0"]);
    let port = server.port.to_string();
    let line = refused(&["--port", &port]);
    assert!(line.to_lowercase().contains("in use"), "{line}");
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for flag in ["--help", "--version"] {
        let mut command = Command::new(util::server_binary());
        command.arg(flag);
        let output = run_bounded(command, util::PATIENCE);
        assert!(output.status.success(), "{flag}");
        assert!(!output.stdout.is_empty(), "{flag}");
    }
}
