//! Honest ends: a clean close means the whole poem was sent. Every way a send can be
//! cut short — the server stopping (SIGTERM) or dying (SIGKILL), the poem file
//! changing under it, a refusal — ends with a reset, in slow mode, fast mode (sendfile
//! and copying) and with several reactors; a whole poem ends with a clean close even
//! for clients that send bytes of their own (the lingering close).
//!
//! Each case runs the `poetry-server` binary against plain blocking clients on
//! loopback. Poems are at most 8 MiB and clients set small receive buffers, so what
//! the kernel holds per case stays a few MiB; every read has a deadline.

mod fault_util;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use fault_util::{
    assert_same_bytes, connect_small, pseudo_random, read_some, read_to_end_or_reset, stop_counts,
    ScratchDir, ServerProcess, PATIENCE,
};

/// Clients that each read `first` bytes and then wait: mid-poem when the test acts.
fn mid_poem_clients(port: u16, count: usize, first: usize) -> Vec<(TcpStream, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let mut stream = connect_small(port, 16 * 1024);
            let got = read_some(&mut stream, first).unwrap();
            assert!(!got.is_empty(), "client {i} got its first bytes");
            (stream, got)
        })
        .collect()
}

/// Reads each client to its end; asserts that each got a prefix of `want`, short and
/// reset. Returns how many there were.
#[track_caller]
fn all_cut_and_reset(clients: Vec<(TcpStream, Vec<u8>)>, want: &[u8], what: &str) -> usize {
    let count = clients.len();
    for (i, (mut stream, first)) in clients.into_iter().enumerate() {
        let (rest, was_reset) = read_to_end_or_reset(&mut stream).unwrap();
        let got = [first, rest].concat();
        assert!(want.starts_with(&got), "{what}, client {i}: not a prefix");
        assert!(
            got.len() < want.len(),
            "{what}, client {i}: the poem was whole"
        );
        assert!(
            was_reset,
            "{what}, client {i}: a cut poem ended with a clean close"
        );
    }
    count
}

/// The modes every case runs in: slow, fast with sendfile, fast copying, and slow on
/// two reactors.
const MODES: [&[&str]; 4] = [
    &["--delay", "0.02", "--num-bytes", "4096"],
    &["--delay", "0"],
    &["--delay", "0", "--no-sendfile"],
    &["--delay", "0.02", "--num-bytes", "4096", "--reactors", "2"],
];

fn start(mode: &[&str], poem: &Path) -> ServerProcess {
    let mut args = mode.to_vec();
    args.push(poem.to_str().unwrap());
    ServerProcess::start(&args, None)
}

#[test]
fn sigterm_mid_poem_resets_every_cut_send() {
    let dir = ScratchDir::new("honest-sigterm");
    let want = pseudo_random(4 * 1024 * 1024, 0x7e);
    let path = dir.file("poem.bin", &want);
    for mode in MODES {
        let server = start(mode, &path);
        let clients = mid_poem_clients(server.port(), 3, 4096);
        let (status, _, stderr) = server.terminate(PATIENCE);
        assert!(status.success(), "{mode:?}: {status:?}\n{stderr}");
        let cut = all_cut_and_reset(clients, &want, &format!("{mode:?}"));
        assert_eq!(
            stop_counts(&stderr),
            (0, cut as u64, 0),
            "{mode:?}: {stderr}"
        );
    }
}

#[test]
fn sigkill_mid_poem_resets_every_connection() {
    // The process cannot say anything when it is killed: the kernel closes its
    // sockets, and because they linger {on, 0} until their poems are whole, it resets
    // them instead of ending them with a FIN.
    let dir = ScratchDir::new("honest-sigkill");
    let want = pseudo_random(4 * 1024 * 1024, 0x9);
    let path = dir.file("poem.bin", &want);
    for mode in MODES {
        let mut server = start(mode, &path);
        let clients = mid_poem_clients(server.port(), 3, 4096);
        // SAFETY: kill sends a signal to our own child, still unreaped.
        unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGKILL) };
        let deadline = Instant::now() + PATIENCE;
        while server.is_running() {
            assert!(Instant::now() < deadline, "{mode:?}: SIGKILL did not kill");
            thread::sleep(Duration::from_millis(5));
        }
        all_cut_and_reset(clients, &want, &format!("{mode:?} SIGKILL"));
    }
}

/// What a test does to the poem file while it is served.
#[derive(Debug, Clone, Copy)]
enum Change {
    Truncate,
    RewriteInPlace,
    Append,
    Delete,
    RenameOver,
}

impl Change {
    fn apply(self, path: &Path, len: usize) {
        use std::fs::OpenOptions;
        match self {
            Change::Truncate => OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len as u64 / 2)
                .unwrap(),
            Change::RewriteInPlace => {
                let mut file = OpenOptions::new().write(true).open(path).unwrap();
                file.write_all(&pseudo_random(len, 0xbad)).unwrap();
            }
            Change::Append => {
                let mut file = OpenOptions::new().append(true).open(path).unwrap();
                file.write_all(b"a later stanza\n").unwrap();
            }
            Change::Delete => std::fs::remove_file(path).unwrap(),
            Change::RenameOver => {
                let other = path.with_extension("new");
                std::fs::write(&other, b"another poem").unwrap();
                std::fs::rename(&other, path).unwrap();
            }
        }
    }

    /// Whether the server can still deliver the poem as it was.
    fn keeps_the_poem(self) -> bool {
        matches!(self, Change::Append | Change::Delete | Change::RenameOver)
    }
}

#[test]
fn a_poem_file_changed_under_the_server_is_reset_unless_only_appended_or_replaced() {
    // 4 MiB: streamed from the file (above the 1 MiB held in memory). The client reads
    // 64 KiB, the file changes, the client reads on.
    let want = pseudo_random(4 * 1024 * 1024, 0xf11e);
    let modes: [&[&str]; 3] = [
        &["--delay", "0"],
        &["--delay", "0", "--no-sendfile"],
        &["--delay", "0.005", "--num-bytes", "65536"],
    ];
    let changes = [
        Change::Truncate,
        Change::RewriteInPlace,
        Change::Append,
        Change::Delete,
        Change::RenameOver,
    ];
    for mode in modes {
        for change in changes {
            let dir = ScratchDir::new("honest-file");
            let path = dir.file("poem.bin", &want);
            let server = start(mode, &path);
            let mut stream = connect_small(server.port(), 16 * 1024);
            let first = read_some(&mut stream, 64 * 1024).unwrap();
            change.apply(&path, want.len());
            let (rest, was_reset) = read_to_end_or_reset(&mut stream).unwrap();
            let got = [first, rest].concat();
            let what = format!("{mode:?} {change:?}");
            if change.keeps_the_poem() {
                assert!(!was_reset, "{what}: reset");
                assert_same_bytes(&got, &want, &what);
            } else {
                assert!(was_reset, "{what}: {} bytes and a clean close", got.len());
            }
            drop(stream);
            let (_, _, stderr) = server.terminate(PATIENCE);
            let whole = u64::from(change.keeps_the_poem());
            assert_eq!(
                stop_counts(&stderr),
                (whole, 1 - whole, 0),
                "{what}: {stderr}"
            );
        }
    }
}

#[test]
fn clients_that_send_bytes_get_the_whole_poem_and_a_clean_close() {
    // The server reads and discards what clients send for the whole connection and
    // closes only once they have everything: unread bytes at the close would make the
    // kernel reset the connection and drop the poem's tail.
    let dir = ScratchDir::new("honest-talkers");
    let want = pseudo_random(8 * 1024 * 1024, 0x1e);
    let path = dir.file("poem.bin", &want);
    for mode in [&["--delay", "0"][..], &["--delay", "0", "--no-sendfile"]] {
        let server = start(mode, &path);
        // A request line first, as an HTTP client would send.
        let mut asker = connect_small(server.port(), 64 * 1024);
        asker.write_all(b"GET /poem HTTP/1.0\r\n\r\n").unwrap();
        let (got, was_reset) = read_to_end_or_reset(&mut asker).unwrap();
        assert!(!was_reset, "{mode:?}: the request-line client was reset");
        assert_same_bytes(&got, &want, "request-line client");
        // A byte every 20 ms while it reads (slowly: 64 KiB every 5 ms).
        let mut talker = connect_small(server.port(), 64 * 1024);
        let mut mouth = talker.try_clone().unwrap();
        let talking = thread::spawn(move || {
            let mut said = 0;
            while mouth.write_all(b"x").is_ok() && said < 2000 {
                said += 1;
                thread::sleep(Duration::from_millis(20));
            }
            said
        });
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let was_reset = loop {
            match talker.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(e) => panic!("{mode:?}: {e}"),
            }
            thread::sleep(Duration::from_millis(5));
        };
        let _ = talker.shutdown(std::net::Shutdown::Both);
        let said = talking.join().unwrap();
        assert!(said >= 2, "{mode:?}: the client said only {said} bytes");
        assert!(!was_reset, "{mode:?}: the talking client was reset");
        assert_same_bytes(&got, &want, "talking client");
        let (_, _, stderr) = server.terminate(PATIENCE);
        assert_eq!(stop_counts(&stderr), (2, 0, 0), "{mode:?}: {stderr}");
    }
}

#[test]
fn slow_mode_never_splits_a_utf8_character() {
    // Each read gets whole pieces (one write each, paced), so each read must decode
    // on its own, as the tutorial's clients decode them.
    for (name, num_bytes) in [
        ("ete.txt", "1"),
        ("ete.txt", "10"),
        ("lighthouse.txt", "10"),
    ] {
        let (path, want) = util::shared_poem(name);
        assert!(std::str::from_utf8(&want).is_ok_and(|t| !t.is_ascii()));
        let server = ServerProcess::start(
            &[
                "--delay",
                "0.002",
                "--num-bytes",
                num_bytes,
                path.to_str().unwrap(),
            ],
            None,
        );
        let mut stream = connect_small(server.port(), 64 * 1024);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(
                std::str::from_utf8(&buf[..n]).is_ok(),
                "{name} --num-bytes {num_bytes}: a read of {n} bytes splits a character at byte {}",
                got.len() + n
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert_same_bytes(&got, &want, name);
    }
}

#[test]
fn iface_wildcard_six_serves_ipv4_too_and_loopback_six_does_not() {
    let (path, want) = util::shared_poem("haiku.txt");
    let path = path.to_str().unwrap();
    let fetch_from = |address: SocketAddr| -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&address, PATIENCE)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        let mut got = Vec::new();
        stream.read_to_end(&mut got)?;
        Ok(got)
    };
    let every = ServerProcess::start(&["--delay", "0", "--iface", "::", path], None);
    let v4: SocketAddr = ([127, 0, 0, 1], every.port()).into();
    let v6: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, every.port()).into();
    assert_same_bytes(&fetch_from(v4).unwrap(), &want, ":: over IPv4");
    assert_same_bytes(&fetch_from(v6).unwrap(), &want, ":: over IPv6");
    drop(every);
    // Another process on this machine may listen on 127.0.0.1 at the port the
    // kernel gave the `::1` server: what answers there must then not be our poem, and
    // the server is started again on another port.
    for attempt in 1..=5 {
        let six = ServerProcess::start(&["--delay", "0", "--iface", "::1", path], None);
        let v4: SocketAddr = ([127, 0, 0, 1], six.port()).into();
        let v6: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, six.port()).into();
        assert_same_bytes(&fetch_from(v6).unwrap(), &want, "::1 over IPv6");
        match fetch_from(v4) {
            Err(refused) => {
                assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
                return;
            }
            Ok(got) => assert!(got != want, "::1 served an IPv4 client"),
        }
        eprintln!("attempt {attempt}: another process listens on {v4}");
    }
    panic!("127.0.0.1 was taken at every port the ::1 server got");
}
