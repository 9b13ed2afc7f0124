//! `poetry-proxy` as a program: its start line and the tutorial's messages, bad
//! arguments, an upstream that resets mid-poem, and Twisted's pieces on both sides:
//! Twisted's poetry client through our proxy, our client through Twisted's proxy in
//! front of our server.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use test_support::{run_bounded, twisted_peer, twisted_python_or_skip, Running};
use util::{proxy, upstream, PATIENCE};

const POEM: &[u8] = "ÉTÉ, here is my poem,\nand its second line.\n".as_bytes();

/// Connects to the proxy and reads until it closes; `Err` for a reset.
fn fetch(port: u16) -> std::io::Result<Vec<u8>> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(PATIENCE))?;
    let mut poem = Vec::new();
    socket.read_to_end(&mut poem)?;
    Ok(poem)
}

#[test]
fn it_fetches_once_then_serves_from_the_cache() {
    let upstream_port = upstream(POEM, 1, None);
    let proxy = proxy(&[&upstream_port.to_string()]);
    assert_eq!(
        proxy.banner,
        format!("Proxying 127.0.0.1:{upstream_port} on port {}.", proxy.port)
    );
    assert_eq!(fetch(proxy.port).unwrap(), POEM);
    assert_eq!(proxy.next_line(), "Fetching poem from server.");
    assert_eq!(
        fetch(proxy.port).unwrap(),
        POEM,
        "the upstream serves once only"
    );
    assert_eq!(proxy.next_line(), "Using cached poem.");
    let (status, stderr) = proxy.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "1 downloads (1 whole, 0 failed, 0 cancelled), 1 clients served from the cache"
        ),
        "{stderr}"
    );
}

#[test]
fn an_upstream_reset_mid_poem_resets_the_client_and_is_not_cached() {
    let upstream_port = upstream(POEM, 2, Some(10));
    let proxy = proxy(&[&upstream_port.to_string()]);
    for _ in 0..2 {
        match fetch(proxy.port) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            Ok(poem) => panic!("a cut poem was relayed with a clean close: {poem:?}"),
        }
        assert_eq!(
            proxy.next_line(),
            "Fetching poem from server.",
            "never cached"
        );
    }
    let (_, stderr) = proxy.stop();
    assert!(
        stderr.contains("2 downloads (0 whole, 2 failed"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: [&[&str]; 7] = [
        &[],
        &["x"],
        &["0"],
        &["[::1:80"],
        &["--port", "70000", "1"],
        &["--iface", "192.0.2.1", "1"],
        &["1", "2"],
    ];
    for args in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_poetry-proxy"));
        command.args(args);
        let output = run_bounded(command, PATIENCE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.starts_with("poetry-proxy: "), "{stderr}");
    }
    // The upstream is parsed as the client parses its addresses, and the message
    // names the argument and what is wrong with it.
    let refusal = |arg: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_poetry-proxy"));
        command.arg(arg);
        String::from_utf8_lossy(&run_bounded(command, PATIENCE).stderr).into_owned()
    };
    for (arg, why) in [
        ("x", "Ports must be integers."),
        ("0", "out of range"),
        ("[::1:80", "Bad address"),
    ] {
        let stderr = refusal(arg);
        assert!(
            stderr.contains("UPSTREAM") && stderr.contains(why),
            "{arg}: {stderr}"
        );
    }
}

#[test]
fn twisted_poetry_client_through_our_proxy() {
    let Some(python) = twisted_python_or_skip() else {
        return;
    };
    let upstream_port = upstream(POEM, 1, None);
    let proxy = proxy(&[&upstream_port.to_string()]);
    let address = format!("127.0.0.1:{}", proxy.port);
    // Three downloads at once through the proxy: one upstream fetch serves them all.
    let mut command = Command::new(python);
    command
        .arg(twisted_peer("get_poetry.py").expect("a peer script of the repository"))
        .args(["--timeout", "20", &address, &address, &address]);
    let output = run_bounded(command, PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(output.stdout, POEM.repeat(3));
    let (_, stderr) = proxy.stop();
    assert!(stderr.contains("1 downloads (1 whole"), "{stderr}");
}

#[test]
fn our_client_through_twisted_proxy_in_front_of_our_server() {
    let Some(python) = twisted_python_or_skip() else {
        return;
    };
    // Our poetry server (fast), and our client (the proxy crate's get_poetry), on one
    // reactor; Twisted's proxy between them.
    let mut reactor = protocol::reactor::Reactor::new().unwrap();
    let lighthouse = test_support::workspace().join("poems/lighthouse.txt");
    let want = std::fs::read(&lighthouse).unwrap();
    let options = poetry_server::ServerOptions {
        delay: Duration::ZERO,
        ..poetry_server::ServerOptions::default()
    };
    let poem = poetry_server::Poem::open(&lighthouse).unwrap();
    let (server, served) = poetry_server::serve(&mut reactor, poem, options).unwrap();
    let server_port = server.get_host().port().unwrap();
    let mut command = Command::new(python);
    command
        .arg(twisted_peer("poetry_proxy.py").expect("a peer script of the repository"))
        .arg(format!("127.0.0.1:{server_port}"))
        .env("PYTHONUNBUFFERED", "1");
    // The Twisted proxy's stdout is read on a thread while our reactor serves.
    let twisted = Running::start(command);
    for round in 0..2 {
        let address = poetry_client::PoemAddress {
            host: "127.0.0.1".to_owned(),
            port: twisted.port,
        };
        let mut poem = poetry_client::get_poetry(&mut reactor, &address);
        let mut turns = 0;
        let result = loop {
            if let Some(result) = poem.take_result() {
                break result;
            }
            turns += 1;
            assert!(
                turns < 6000,
                "round {round}: no poem through the Twisted proxy"
            );
            reactor.iterate(Some(Duration::from_millis(10))).unwrap();
        };
        assert!(
            *result.expect("a whole poem") == *want,
            "round {round}: other bytes"
        );
    }
    assert_eq!(twisted.next_line(), "Fetching poem from server.");
    assert_eq!(twisted.next_line(), "Using cached poem.");
    let stats = served.borrow().stats();
    assert_eq!(
        (stats.accepted, stats.completed),
        (1, 1),
        "the Twisted proxy fetched once"
    );
}

/// `--max-poem-bytes` reaches the download: a poem longer than the bound fails it,
/// its client is reset (never a clean close, which would say the cut poem is whole),
/// and nothing is cached (the second client fetches again).
#[test]
fn max_poem_bytes_resets_the_client_and_caches_nothing() {
    assert!(POEM.len() > 10);
    let upstream_port = upstream(POEM, 2, None);
    let proxy = proxy(&["--max-poem-bytes", "10", &upstream_port.to_string()]);
    for _ in 0..2 {
        match fetch(proxy.port) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            Ok(poem) => panic!("an over-long poem ended with a clean close: {poem:?}"),
        }
        assert_eq!(proxy.next_line(), "Fetching poem from server.");
    }
    let (_, stderr) = proxy.stop();
    assert!(
        stderr.contains("2 downloads (0 whole, 2 failed"),
        "{stderr}"
    );
}

/// An upstream that sends the first bytes of a poem to its one client and then
/// holds the connection open; the receiver tells how that connection ended (the
/// proxy aborting its download shows as a reset or an end of stream).
fn holding_upstream() -> (u16, std::sync::mpsc::Receiver<std::io::Result<usize>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    let (ended, ended_in) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut socket, _)) = listener.accept() else {
            return;
        };
        let _ = socket.write_all(&POEM[..5]);
        let _ = socket.set_read_timeout(Some(PATIENCE));
        let _ = ended.send(socket.read_to_end(&mut Vec::new()));
    });
    (port, ended_in)
}

/// The README's `Canceling poem download.`: the one client waiting for a download
/// leaves mid-way, and the proxy says so on stdout and drops its upstream connection.
#[test]
fn a_client_leaving_mid_download_cancels_it() {
    let (upstream_port, upstream_ended) = holding_upstream();
    let proxy = proxy(&[&upstream_port.to_string()]);
    let client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    assert_eq!(proxy.next_line(), "Fetching poem from server.");
    test_support::reset(client);
    assert_eq!(proxy.next_line(), "Canceling poem download.");
    let ended = upstream_ended
        .recv_timeout(PATIENCE)
        .expect("the proxy leaves the upstream");
    assert!(
        ended.is_ok() || ended.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "{ended:?}"
    );
    let (_, stderr) = proxy.stop();
    assert!(
        stderr.contains("1 downloads (0 whole, 0 failed, 1 cancelled)"),
        "{stderr}"
    );
}

/// `--max-connections 1` through the binary: while one client holds the only slot
/// (waiting on a held download), the next is refused with a reset (a clean close
/// would be a whole, empty poem to a poetry client) and counted.
#[test]
fn max_connections_refuses_past_the_cap() {
    let (upstream_port, _upstream_ended) = holding_upstream();
    let proxy = proxy(&["--max-connections", "1", &upstream_port.to_string()]);
    let holder = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    assert_eq!(proxy.next_line(), "Fetching poem from server.");
    match fetch(proxy.port) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(poem) => panic!("a refusal ended with a clean close, after {poem:?}"),
    }
    drop(holder);
    let (_, stderr) = proxy.stop();
    assert!(stderr.contains("1 refused."), "{stderr}");
}
