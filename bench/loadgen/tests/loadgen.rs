//! `loadgen` against the raw-mio server, in-process on loopback: every mode once,
//! small and bounded, plus the failure paths.

mod util;

use std::time::Duration;

use loadgen::fnv::{fnv1a64, format_sum};
use raw_mio_server::Mode;

use util::{loadgen, loadgen_reading, poem, TestServer};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn poems_are_all_downloaded_and_verified() {
    let poem = poem(10 * 1024);
    let sum = format_sum(fnv1a64(&poem));
    let server = TestServer::start(Mode::Poetry(poem));
    let port = server.port.to_string();
    let run = loadgen(
        &[
            "poems",
            "--port",
            &port,
            "--concurrency",
            "20",
            "--downloads",
            "500",
            "--expect-bytes",
            "10240",
            "--expect-sum",
            &sum,
            "--timeout-s",
            "20",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has("ok", "true"), "{run:?}");
    assert!(run.has("completed", "500"), "{run:?}");
    assert!(run.has("corrupted", "0"), "{run:?}");
}

#[test]
fn a_wrong_sum_counts_as_corrupted_and_fails() {
    let server = TestServer::start(Mode::Poetry(poem(1000)));
    let port = server.port.to_string();
    let run = loadgen(
        &[
            "poems",
            "--port",
            &port,
            "--concurrency",
            "4",
            "--downloads",
            "10",
            "--expect-sum",
            "0123456789abcdef",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.has("ok", "false"), "{run:?}");
    assert!(run.has("corrupted", "10"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
}

#[test]
fn bulk_reads_the_whole_poem() {
    let poem = poem(1 << 20);
    let sum = format_sum(fnv1a64(&poem));
    let server = TestServer::start(Mode::Poetry(poem));
    let port = server.port.to_string();
    let run = loadgen(
        &[
            "bulk",
            "--port",
            &port,
            "--expect-bytes",
            "1048576",
            "--expect-sum",
            &sum,
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has("bytes", "1048576"), "{run:?}");
}

#[test]
fn bulk_over_sendfile() {
    let path = std::env::temp_dir().join(format!("loadgen-test-{}.poem", std::process::id()));
    std::fs::write(&path, poem(300_000)).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap(); // The open descriptor keeps it readable.
    let server = TestServer::start(Mode::Sendfile(file));
    let port = server.port.to_string();
    let run = loadgen(
        &["bulk", "--port", &port, "--expect-bytes", "300000"],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn echo_measures_round_trips() {
    let server = TestServer::start(Mode::Echo);
    let port = server.port.to_string();
    let run = loadgen(
        &[
            "echo",
            "--port",
            &port,
            "--connections",
            "8",
            "--size",
            "1024",
            "--duration-ms",
            "200",
            "--threads",
            "2",
            "--timeout-s",
            "10",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has("connected", "8"), "{run:?}");
    assert!(!run.has("p50_us", "null"), "{run:?}");
}

#[test]
fn idle_opens_holds_and_closes() {
    let server = TestServer::start(Mode::Echo);
    let port = server.port.to_string();
    let run = loadgen(
        &[
            "idle",
            "--port",
            &port,
            "--connections",
            "200",
            "--hold-ms",
            "100",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.starts_with("idle: 200 connections open\n"),
        "{run:?}"
    );
    assert!(run.has("established", "200"), "{run:?}");
    assert!(run.has("dropped", "0"), "{run:?}");
}

#[test]
fn idle_until_stdin_ends_at_once_when_stdin_is_closed() {
    let server = TestServer::start(Mode::Echo);
    let port = server.port.to_string();
    // stdin is /dev/null: the hold ends long before its 20 s.
    let run = loadgen(
        &[
            "idle",
            "--port",
            &port,
            "--connections",
            "10",
            "--hold-ms",
            "20000",
            "--until-stdin",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn slow_clients_all_verified() {
    let poem = poem(5000);
    let sum = format_sum(fnv1a64(&poem));
    let server = TestServer::start(Mode::Poetry(poem));
    let port = server.port.to_string();
    let run = loadgen(
        &[
            "slow",
            "--port",
            &port,
            "--clients",
            "50",
            "--expect-bytes",
            "5000",
            "--expect-sum",
            &sum,
            "--timeout-s",
            "20",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has("completed", "50"), "{run:?}");
}

#[test]
fn a_closed_port_fails_with_a_result() {
    // Bind then drop, so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let run = loadgen(
        &[
            "poems",
            "--port",
            &port,
            "--concurrency",
            "2",
            "--downloads",
            "4",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.has("failures", "4"), "{run:?}");
    let run = loadgen(&["bulk", "--port", &port], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .starts_with("loadgen: cannot connect to 127.0.0.1:"),
        "{run:?}"
    );
}

#[test]
fn bad_arguments_give_one_line_and_exit_2() {
    for args in [
        &["poems", "--port", "x"][..],
        &["poems"][..],
        &["warp", "--port", "1"][..],
    ] {
        let run = loadgen(args, LIMIT);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(run.stderr.starts_with("loadgen: "), "{run:?}");
    }
    let run = loadgen(&["echo", "--port", "1", "--connections", "0"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.starts_with("loadgen: invalid arguments"),
        "{run:?}"
    );
}

#[test]
fn sum_prints_the_checksum() {
    let path = std::env::temp_dir().join(format!("loadgen-sum-{}.txt", std::process::id()));
    std::fs::write(&path, b"foobar").unwrap();
    let run = loadgen(&["sum", path.to_str().unwrap()], LIMIT);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has("sum", "\"85944171f73967e8\""), "{run:?}");
}

#[test]
fn udp_echo_round_trips_are_counted_and_checked() {
    let server = TestServer::udp_echo();
    let port = server.port.to_string();
    let run = loadgen(
        &[
            "udp",
            "--port",
            &port,
            "--sockets",
            "3",
            "--window",
            "4",
            "--size",
            "100",
            "--duration-ms",
            "200",
            "--timeout-s",
            "10",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has("corrupted", "0"), "{run:?}");
    assert!(!run.has("echoed", "0"), "{run:?}");
    let run = loadgen(&["udp", "--port", &port, "--size", "4"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.starts_with("loadgen: invalid arguments"),
        "{run:?}"
    );
}

#[test]
fn udp_without_an_echo_fails_with_a_result() {
    // A bound socket that never answers: every datagram is lost.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let run = loadgen(
        &[
            "udp",
            "--port",
            &port,
            "--duration-ms",
            "250",
            "--timeout-s",
            "5",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.has("echoed", "0"), "{run:?}");
    assert!(run.has("problem", "\"no datagram came back\""), "{run:?}");
}

#[test]
fn drain_counts_and_checks_its_input() {
    let path = std::env::temp_dir().join(format!("loadgen-drain-{}.bin", std::process::id()));
    let data = poem(300_000);
    std::fs::write(&path, &data).unwrap();
    let sum = format_sum(fnv1a64(&data));
    let stdin = || std::process::Stdio::from(std::fs::File::open(&path).unwrap());
    let good = ["drain", "--expect-bytes", "300000", "--expect-sum", &sum];
    let run = loadgen_reading(&good, LIMIT, stdin());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.has("bytes", "300000"), "{run:?}");
    let run = loadgen_reading(&["drain", "--expect-bytes", "5"], LIMIT, stdin());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.has("ok", "false"), "{run:?}");
}
