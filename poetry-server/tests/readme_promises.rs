//! README promises of `poetry-server` that no other test pins down: what
//! `RUST_LOG=info` logs, and that serving a large poem keeps the server's memory far
//! below the poem's size. The binary on loopback; every wait has a deadline.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use util::{fetch, reset, server_binary, shared_poem, Running, ScratchDir, PATIENCE};

/// `poetry-server ARGS` on a free port with `RUST_LOG=info`.
fn logging_server(args: &[&str]) -> Running {
    let mut command = Command::new(server_binary());
    command
        .args(["--port", "0"])
        .args(args)
        .env("RUST_LOG", "info");
    Running::start(command)
}

/// Waits (bounded by [`PATIENCE`]) until the server's stderr contains `what`.
#[track_caller]
fn wait_for_log(server: &Running, what: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = server.stderr();
        if log.contains(what) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {what:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// README: "`RUST_LOG=info` logs every connection and every completed or interrupted
/// send". A whole download logs the connection and the completed send; a client that
/// leaves (with a reset) after the first piece logs its connection and the cut send,
/// each naming the client's own address, before the server is stopped (so the cut is
/// the client's doing, not the stop's).
#[test]
fn rust_log_info_logs_connections_and_whole_and_cut_sends() {
    let (path, haiku) = shared_poem("haiku.txt");
    let path = path.to_str().unwrap();

    let fast = logging_server(&["--delay", "0", path]);
    let stream = TcpStream::connect(("127.0.0.1", fast.port)).unwrap();
    let whole_peer = stream.local_addr().unwrap();
    let mut poem = Vec::new();
    let mut stream = stream;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.read_to_end(&mut poem).unwrap();
    assert_eq!(poem, haiku);
    wait_for_log(
        &fast,
        &format!("sending {} bytes of poetry to {whole_peer}", haiku.len()),
    );
    wait_for_log(
        &fast,
        &format!(
            "sent the whole poem ({} bytes) to {whole_peer}",
            haiku.len()
        ),
    );

    // Slow: the first 10 bytes at once, the next only a minute later.
    let slow = logging_server(&["--delay", "60", "--num-bytes", "10", path]);
    let mut cut = TcpStream::connect(("127.0.0.1", slow.port)).unwrap();
    let cut_peer = cut.local_addr().unwrap();
    cut.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut first = [0u8; 10];
    cut.read_exact(&mut first).unwrap();
    assert_eq!(first, haiku[..10]);
    wait_for_log(
        &slow,
        &format!("sending {} bytes of poetry to {cut_peer}", haiku.len()),
    );
    reset(cut);
    let log = wait_for_log(
        &slow,
        &format!(
            "send to {cut_peer} cut short after 10 of {} bytes",
            haiku.len()
        ),
    );
    assert!(!log.contains("sent the whole poem"), "{log}");
    drop((fast, slow));
}

/// The server's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}

/// `poetry-server ARGS` on a free port (as a child killed on drop, so that its pid
/// can be read), and its port.
fn server_with_pid(args: &[&str]) -> (util::ChildGuard, u16) {
    use std::io::BufRead;
    let mut child = util::ChildGuard(
        Command::new(server_binary())
            .args(["--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the server starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (line, line_in) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut banner);
        let _ = line.send(banner);
    });
    let banner = line_in.recv_timeout(PATIENCE).expect("a start line");
    let port = util::parse_port(&banner).unwrap_or_else(|| panic!("no port in {banner:?}"));
    (child, port)
}

/// README: "A poem file is read into memory only up to 1 MiB, whatever its size
/// says", and in fast mode each client costs at most one 64 KiB chunk (none with
/// sendfile). A 64 MiB poem (a sparse file of zeros) is served whole, with sendfile
/// and with `--no-sendfile`, and the server's peak resident memory over its whole
/// life stays below a quarter of the poem: neither the file nor the download was
/// ever held in memory.
#[test]
fn a_large_poem_is_served_without_being_held_in_memory() {
    const POEM: u64 = 64 * 1024 * 1024;
    let dir = ScratchDir::new("large-poem-rss");
    let path = dir.file("large.txt", b"");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(POEM)
        .unwrap();
    let path = path.to_str().unwrap();
    for mode in [&["--delay", "0"][..], &["--delay", "0", "--no-sendfile"]] {
        let (child, port) = server_with_pid(&[mode, &[path]].concat());
        let poem = fetch(port).expect("the whole poem");
        assert_eq!(poem.len() as u64, POEM, "{mode:?}");
        assert!(poem.iter().all(|&b| b == 0), "{mode:?}");
        drop(poem);
        let peak = peak_rss(child.0.id());
        assert!(
            peak < POEM / 4,
            "{mode:?}: the server's peak RSS was {peak} bytes for a {POEM}-byte poem"
        );
        eprintln!("{mode:?}: peak RSS {} KiB", peak / 1024);
    }
}
