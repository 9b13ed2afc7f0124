//! The fault matrix: the `poetry-server` binary (and, for a panicking protocol, the
//! library on one reactor) under misbehaving clients and starved resources, while
//! well-behaved clients check their poems byte for byte beside them.
//!
//! Every case asserts that every well-behaved client got its poem whole, that the
//! server still accepts afterwards, and that its resident memory comes back within
//! [`RSS_SLACK_KIB`](fault_util::RSS_SLACK_KIB) of its baseline.
//!
//! | case | mode | misbehaviour |
//! |---|---|---|
//! | `slow_mode_survives_rude_clients` | slow | resets mid-poem, half-closes, connect/disconnect loop |
//! | `fast_mode_survives_rude_clients` | fast, 4 MiB file | the same |
//! | `clients_that_never_read_cost_bounded_memory` | fast, 16 MiB file, sendfile and copy | 40 clients never read |
//! | `descriptor_exhaustion_neither_spins_nor_loses_clients` | slow, 64 descriptors | 150 clients at once |
//! | `max_connections_refuses_with_a_reset` | slow | more clients than `--max-connections` |
//! | `a_panicking_protocol_loses_only_its_own_connection` | library, slow | a protocol on the same reactor panics |
//! | `sigterm_mid_poem_exits_promptly_and_counts_cut_sends` | slow | SIGTERM with clients mid-poem |
//!
//! And `secure_by_default` checks what README's "Secure by default" promises of a
//! server started without options: loopback only, 4096 connections, 120 s idle
//! timeout.

mod fault_util;
mod util;

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fault_util::{
    all_whole, assert_same_bytes, connect, connect_loop, fetch, good_clients, half_closers,
    never_readers, pseudo_random, read_some, read_to_end_or_reset, resetters, run_bounded,
    server_binary, shared_poem, stop_counts, ScratchDir, ServerProcess, PATIENCE, RSS_SLACK_KIB,
};

/// Slow mode: 64 bytes every 5 ms.
const SLOW: [&str; 4] = ["--delay", "0.005", "--num-bytes", "64"];

/// Fetches once (so that lazily made buffers exist) and returns the resident memory.
fn warm_baseline(server: &ServerProcess, want: &[u8]) -> u64 {
    assert_same_bytes(
        &fetch(server.port()).expect("a first poem"),
        want,
        "warm-up",
    );
    server.rss_kib()
}

/// The checks every case ends with: the server still serves the poem whole, and its
/// memory comes back near `baseline`.
#[track_caller]
fn still_serves_and_settles(server: &mut ServerProcess, want: &[u8], baseline: u64) {
    assert!(server.is_running(), "the server died:\n{}", server.stderr());
    assert_same_bytes(
        &fetch(server.port()).expect("the server still accepts"),
        want,
        "a poem after the storm",
    );
    let rss = server.rss_settles_near(baseline);
    assert!(
        rss <= baseline + RSS_SLACK_KIB,
        "RSS {rss} KiB did not come back near its baseline {baseline} KiB"
    );
}

/// Well-behaved clients beside resetting, half-closing and connect-looping ones.
fn survives_rude_clients(args: &[&str], want: Vec<u8>, reset_after: usize, rounds: usize) {
    let mut server = ServerProcess::start(args, None);
    let port = server.port();
    let want = Arc::new(want);
    let baseline = warm_baseline(&server, &want);

    let good = good_clients(port, 12, rounds, &want);
    let mut rude = resetters(port, 16, reset_after, &want);
    rude.extend(half_closers(port, 16, &want));
    rude.push(connect_loop(port, 300));
    rude.push(connect_loop(port, 300));
    let whole = all_whole(good);
    all_whole(rude);
    assert_eq!(whole, 12 * rounds);

    still_serves_and_settles(&mut server, &want, baseline);
    let (status, _, stderr) = server.terminate(PATIENCE);
    assert!(status.success(), "{status:?}\n{stderr}");
    let (sent_whole, _, refused) = stop_counts(&stderr);
    // The warm-up, the good clients, the last check; perhaps a connect-looper or two
    // that left after the last byte was written.
    assert!(
        sent_whole >= whole as u64 + 2,
        "{sent_whole} sent whole\n{stderr}"
    );
    assert_eq!(refused, 0, "{stderr}");
}

#[test]
fn slow_mode_survives_rude_clients() {
    let (path, want) = shared_poem("lighthouse.txt");
    let mut args = SLOW.to_vec();
    args.push(path.to_str().unwrap());
    survives_rude_clients(&args, want, 64, 2);
}

#[test]
fn fast_mode_survives_rude_clients() {
    let dir = ScratchDir::new("fast-rude");
    let want = pseudo_random(4 * 1024 * 1024, 0xfa57);
    let path = dir.file("big.bin", &want);
    survives_rude_clients(
        &["--delay", "0", path.to_str().unwrap()],
        want,
        64 * 1024,
        2,
    );
}

#[test]
fn clients_that_never_read_cost_bounded_memory() {
    let dir = ScratchDir::new("never-read");
    // Larger than what the kernel's buffers can hold for a stalled client (a send
    // buffer grows to 4 MiB), so each of their sends stays unfinished.
    let want = Arc::new(pseudo_random(16 * 1024 * 1024, 0x5106));
    let path = dir.file("big.bin", &want);
    for copy in [false, true] {
        let mut args = vec!["--delay", "0", path.to_str().unwrap()];
        if copy {
            args.push("--no-sendfile");
        }
        let mut server = ServerProcess::start(&args, None);
        let port = server.port();
        let baseline = warm_baseline(&server, &want);

        // Their socket buffers fill and the server holds at most one chunk for each.
        let stalled = never_readers(port, 40);
        let held = server.rss_kib();
        println!("{args:?}: baseline {baseline} KiB, 40 stalled clients {held} KiB");
        assert!(
            held <= baseline + RSS_SLACK_KIB,
            "{args:?}: 40 stalled clients grew the server from {baseline} to {held} KiB"
        );
        // Others are served meanwhile.
        assert_eq!(all_whole(good_clients(port, 6, 2, &want)), 12);
        let during = server.rss_kib();
        assert!(
            during <= baseline + RSS_SLACK_KIB,
            "{args:?}: {during} KiB with stalled clients, baseline {baseline} KiB"
        );
        drop(stalled);
        still_serves_and_settles(&mut server, &want, baseline);
        let (status, _, stderr) = server.terminate(PATIENCE);
        assert!(status.success(), "{stderr}");
        let (_, cut, _) = stop_counts(&stderr);
        assert_eq!(
            cut, 40,
            "each stalled client is one send cut short\n{stderr}"
        );
    }
}

#[test]
fn descriptor_exhaustion_neither_spins_nor_loses_clients() {
    // 64 descriptors: about 55 connections at once. 150 clients wait in the accept
    // queue while the server backs off, and are served as connections end.
    const CLIENTS: usize = 150;
    let (path, want) = shared_poem("lighthouse.txt");
    let mut args = SLOW.to_vec();
    args.push(path.to_str().unwrap());
    let mut server = ServerProcess::start(&args, Some(64));
    let want = Arc::new(want);
    let baseline = warm_baseline(&server, &want);

    let (cpu_before, began) = (server.cpu_time(), Instant::now());
    assert_eq!(
        all_whole(good_clients(server.port(), CLIENTS, 1, &want)),
        CLIENTS
    );
    let (cpu, wall) = (server.cpu_time() - cpu_before, began.elapsed());
    println!("{CLIENTS} clients on 64 descriptors: {wall:?}, server CPU {cpu:?}");
    assert!(
        server.stderr().contains("cannot accept"),
        "the server never ran out of descriptors: the case tested nothing\n{}",
        server.stderr()
    );
    // A server spinning on EMFILE would burn a whole core for the whole storm.
    assert!(
        cpu.as_secs_f64() <= 0.5 * wall.as_secs_f64() + 0.1,
        "the server used {cpu:?} of CPU in {wall:?}: it spins"
    );
    still_serves_and_settles(&mut server, &want, baseline);
    let (status, _, stderr) = server.terminate(PATIENCE);
    assert!(status.success(), "{stderr}");
    assert_eq!(stop_counts(&stderr), (CLIENTS as u64 + 2, 0, 0), "{stderr}");
}

#[test]
fn max_connections_refuses_with_a_reset() {
    const ADMITTED: usize = 8;
    const REFUSED: usize = 20;
    let dir = ScratchDir::new("max-connections");
    let want = Arc::new(b"The poem goes on; the refused get nothing at all.\n".repeat(100));
    let path = dir.file("poem.txt", &want);
    let mut server = ServerProcess::start(
        &[
            "--delay",
            "0.01",
            "--num-bytes",
            "64",
            "--max-connections",
            &ADMITTED.to_string(),
            path.to_str().unwrap(),
        ],
        None,
    );
    let port = server.port();
    let baseline = warm_baseline(&server, &want);

    // Every place taken: each admitted client has its first piece. The warm-up's
    // place is free once the server has seen its client leave: until then a client
    // may be refused, and tries again (bounded).
    let mut early_refusals = 0;
    let admitted: Vec<_> = (0..ADMITTED)
        .map(|i| {
            for _ in 0..100 {
                // A reset may come before the connect has returned.
                match connect(port).and_then(|mut stream| Ok((read_some(&mut stream, 64)?, stream)))
                {
                    Ok((first, stream)) => {
                        assert!(want.starts_with(&first) && !first.is_empty(), "client {i}");
                        return (stream, first);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        early_refusals += 1;
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("client {i}: {e}"),
                }
            }
            panic!("client {i} was refused 100 times");
        })
        .collect();
    // The rest: accepted by the kernel, then reset with nothing sent, so that no
    // client can take a refusal for an empty poem.
    for i in 0..REFUSED {
        // The reset may come before the connect has returned.
        let (got, was_reset) = match connect(port) {
            Ok(mut stream) => read_to_end_or_reset(&mut stream).unwrap(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => (Vec::new(), true),
            Err(e) => panic!("refused client {i}: {e}"),
        };
        assert!(
            was_reset,
            "refused client {i} was closed cleanly, not reset"
        );
        assert_eq!(got, b"", "refused client {i} got bytes");
    }
    // The admitted go on to the end, unaffected.
    for (i, (mut stream, mut got)) in admitted.into_iter().enumerate() {
        stream.read_to_end(&mut got).unwrap();
        assert_same_bytes(&got, &want, &format!("admitted client {i}"));
    }
    still_serves_and_settles(&mut server, &want, baseline);
    let (status, _, stderr) = server.terminate(PATIENCE);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stop_counts(&stderr),
        (ADMITTED as u64 + 2, 0, (REFUSED + early_refusals) as u64),
        "{stderr}"
    );
}

#[test]
fn sigterm_mid_poem_exits_promptly_and_counts_cut_sends() {
    const MID_POEM: usize = 30;
    let dir = ScratchDir::new("sigterm");
    let want = Arc::new(pseudo_random(16 * 1024, 0x516));
    let path = dir.file("poem.bin", &want);
    // 64 bytes every 20 ms: 16 KiB take five seconds.
    let server = ServerProcess::start(
        &[
            "--delay",
            "0.02",
            "--num-bytes",
            "64",
            path.to_str().unwrap(),
        ],
        None,
    );
    let port = server.port();
    let baseline = server.rss_kib();
    let readers: Vec<_> = (0..MID_POEM)
        .map(|i| {
            let mut stream = connect(port).unwrap();
            let first = read_some(&mut stream, 64).unwrap();
            assert!(!first.is_empty(), "client {i} got its first piece");
            thread::spawn(move || {
                let (rest, _) = read_to_end_or_reset(&mut stream).unwrap();
                [first, rest].concat()
            })
        })
        .collect();
    let rss = server.rss_kib();
    assert!(
        rss <= baseline + RSS_SLACK_KIB,
        "{rss} KiB with {MID_POEM} clients, baseline {baseline} KiB"
    );

    let (status, took, stderr) = server.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}\n{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    // Every client's bytes are a prefix; the ones still short are the cut sends.
    let mut short = 0;
    for reader in readers {
        let got = reader.join().unwrap();
        assert!(want.starts_with(&got), "not a prefix of the poem");
        if got.len() < want.len() {
            short += 1;
        }
    }
    assert!(
        short > 0,
        "every poem finished before SIGTERM: nothing was tested"
    );
    let (whole, cut, refused) = stop_counts(&stderr);
    assert_eq!(
        (whole, cut, refused),
        ((MID_POEM - short) as u64, short as u64, 0),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{short} sends cut short")),
        "{stderr}"
    );
}

// ===== a panicking protocol beside the poetry server, on one reactor =====

/// Set in the environment of this test binary when it is re-run as the server of
/// `a_panicking_protocol_loses_only_its_own_connection`.
const PANIC_SERVER_ENV: &str = "POETRY_FAULTS_PANIC_SERVER";

mod panicky {
    use std::time::Duration;

    use protocol::{Context, Protocol, SimpleFactory};

    /// Says `ready`, then panics on the first bytes it gets: at once, or from a timer
    /// when they start with `timer`.
    #[derive(Debug, Default)]
    pub(crate) struct Panicky;

    impl Protocol for Panicky {
        type Factory = SimpleFactory<Self>;

        fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
            cx.write(b"ready\n");
        }

        fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
            if data.starts_with(b"timer") {
                cx.call_later(Duration::from_millis(1), |_, _| {
                    panic!("the panicking protocol panics in a timer")
                });
            } else {
                panic!("the panicking protocol panics in data_received");
            }
        }
    }
}

/// Not a test on its own: when [`PANIC_SERVER_ENV`] names a poem file, serves it with
/// `poetry_server::serve` (slow mode) and, on the same reactor, a protocol that
/// panics; prints both ports and serves until SIGTERM, then prints the poetry
/// server's stop line.
#[test]
fn panic_server_process() {
    let Some(poem) = std::env::var_os(PANIC_SERVER_ENV) else {
        return;
    };
    let mut reactor = reactor::Reactor::new().unwrap();
    reactor.handle_signals().unwrap();
    let options = poetry_server::ServerOptions {
        delay: Duration::from_millis(5),
        num_bytes: 64,
        ..poetry_server::ServerOptions::default()
    };
    let poem = poetry_server::Poem::open(std::path::Path::new(&poem)).unwrap();
    let (port, factory) = poetry_server::serve(&mut reactor, poem, options).unwrap();
    let panicking = protocol::listen_tcp(
        &mut reactor,
        0,
        &protocol::for_protocol::<panicky::Panicky>(),
        &protocol::TcpListenOptions::default(),
    )
    .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nServing on port {}.",
        port.get_host().port().unwrap()
    )
    .unwrap();
    writeln!(
        out,
        "Panicking on port {}.",
        panicking.get_host().port().unwrap()
    )
    .unwrap();
    out.flush().unwrap();
    drop(out);
    reactor.run().unwrap();
    let stats = factory.borrow().stats();
    eprintln!(
        "poetry-server: stopped; {} poems sent whole, {} sends cut short, {} connections refused.",
        stats.completed, stats.interrupted, stats.refused
    );
}

#[test]
fn a_panicking_protocol_loses_only_its_own_connection() {
    let (path, want) = shared_poem("lighthouse.txt");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "panic_server_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PANIC_SERVER_ENV, &path);
    let mut server = ServerProcess::spawn(command, 2);
    let (port, panic_port) = (server.ports[0], server.ports[1]);
    let want = Arc::new(want);
    let baseline = warm_baseline(&server, &want);

    let good = good_clients(port, 12, 2, &want);
    let victims: Vec<_> = (0..40)
        .map(|i| {
            thread::spawn(move || {
                let mut stream = connect(panic_port).unwrap();
                let ready = read_some(&mut stream, 6).unwrap();
                assert_eq!(ready, b"ready\n", "victim {i}");
                let trigger: &[u8] = if i % 2 == 0 { b"boom" } else { b"timer" };
                stream.write_all(trigger).unwrap();
                // Its connection, and only its, ends (closed or reset), well in time.
                let (rest, _) = read_to_end_or_reset(&mut stream).unwrap();
                assert_eq!(rest, b"", "victim {i}");
            })
        })
        .collect();
    assert_eq!(all_whole(good), 24);
    for victim in victims {
        victim.join().expect("a victim saw its connection end");
    }

    // Both ports still accept.
    let mut after = connect(panic_port).unwrap();
    assert_eq!(read_some(&mut after, 6).unwrap(), b"ready\n");
    drop(after);
    still_serves_and_settles(&mut server, &want, baseline);
    let (status, _, stderr) = server.terminate(PATIENCE);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("panics in data_received"), "{stderr}");
    assert!(stderr.contains("panics in a timer"), "{stderr}");
    assert_eq!(stop_counts(&stderr), (26, 0, 0), "{stderr}");
}

// ===== secure by default =====

/// The local address of the socket listening on TCP `port`, from `/proc/net/tcp`
/// (IPv4 only: `None` if nothing listens there on IPv4).
fn ipv4_listener(port: u16) -> Option<std::net::Ipv4Addr> {
    const LISTEN: &str = "0A";
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (address, local_port) = fields.get(1)?.split_once(':')?;
        if fields.get(3) != Some(&LISTEN) || u16::from_str_radix(local_port, 16).ok()? != port {
            return None;
        }
        // The address is the in-memory u32, printed in hex (little-endian here).
        let raw = u32::from_str_radix(address, 16).ok()?;
        Some(std::net::Ipv4Addr::from(raw.to_le_bytes()))
    })
}

#[test]
fn secure_by_default() {
    // The library's defaults...
    let options = poetry_server::ServerOptions::default();
    assert_eq!(options.interface, "127.0.0.1");
    assert_eq!(options.max_connections, 4096);
    assert_eq!(options.idle_timeout, Some(Duration::from_secs(120)));
    // ...are the binary's, as its help says.
    let mut help = Command::new(server_binary());
    help.arg("--help");
    let help = String::from_utf8(run_bounded(help, PATIENCE).stdout).unwrap();
    for default in ["[default: 127.0.0.1]", "[default: 4096]", "[default: 120]"] {
        assert!(help.contains(default), "--help lacks {default}:\n{help}");
    }
    // Started without options, it listens on loopback only.
    let server = ServerProcess::start(&["--delay", "0"], None);
    assert_eq!(
        ipv4_listener(server.port()),
        Some(std::net::Ipv4Addr::LOCALHOST)
    );
    // And every interface only when told.
    let everywhere = ServerProcess::start(&["--delay", "0", "--iface", "0.0.0.0"], None);
    assert_eq!(
        ipv4_listener(everywhere.port()),
        Some(std::net::Ipv4Addr::UNSPECIFIED)
    );
}
