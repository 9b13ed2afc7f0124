//! The server's promises under hostile clients, files and environments (reliability
//! round two): the kernel memory clients that never read can pin, slow mode's flow
//! control, an idle timeout that counts what the peer acknowledged, one connection
//! cap over every reactor, a port another process holds, output that cannot be
//! written, files that lie about their size, too few descriptors, the chosen
//! congestion control on every socket, and a crowd of clients arriving at once while
//! the server is busy (queued by the kernel, not dropped).
//!
//! Bounds on a shared machine: at most 200 clients that never read, each with a 4 KiB
//! receive buffer and a server send buffer of 16 KiB (about 10 MiB of kernel memory
//! in all); sparse poem files (no disk); every wait has a deadline.

mod fault_util;
mod util;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use test_support::{tcp_state, TCP_ESTABLISHED};

use fault_util::{
    assert_same_bytes, connect_small, fetch, limit_descriptors, pseudo_random,
    read_to_end_or_reset, run_bounded, server_binary, stop_counts, try_connect_small, ChildGuard,
    ScratchDir, ServerProcess, PATIENCE,
};
use socket2::{Domain, Socket, Type};

/// The bytes waiting in the send queues of the server's connections on `port`
/// (`/proc/net/tcp`'s `tx_queue`, local port `port`, every state but LISTEN).
fn server_send_queues(port: u16) -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields[1].split_once(':')?.1, 16).ok()?;
            if local_port != port || fields[3] == "0A" {
                return None;
            }
            u64::from_str_radix(fields[4].split_once(':')?.0, 16).ok()
        })
        .collect()
}

/// A sparse file of `len` bytes (zeros, no disk).
fn sparse_poem(dir: &ScratchDir, len: u64) -> std::path::PathBuf {
    let path = dir.file("sparse.bin", b"");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len)
        .unwrap();
    path
}

#[test]
fn never_readers_pin_at_most_their_send_buffer_and_others_are_served_whole() {
    const NEVER: usize = 200;
    const SNDBUF: u64 = 16 * 1024;
    let dir = ScratchDir::new("hostile-never");
    let want = pseudo_random(4 * 1024 * 1024, 0x5eed);
    let path = dir.file("poem.bin", &want);
    for copy in [false, true] {
        let mut args = vec!["--delay", "0", "--send-buffer", "16384"];
        if copy {
            args.push("--no-sendfile");
        }
        args.push(path.to_str().unwrap());
        let server = ServerProcess::start(&args, None);
        let port = server.port();
        let never: Vec<TcpStream> = (0..NEVER).map(|_| connect_small(port, 4096)).collect();
        // Normal clients beside them, byte for byte.
        let normal: Vec<_> = (0..4)
            .map(|_| thread::spawn(move || fetch(port).map_err(|e| e.to_string())))
            .collect();
        for client in normal {
            assert_same_bytes(&client.join().unwrap().unwrap(), &want, "normal client");
        }
        // Every never-reader's queue is full by now (the last connected before the
        // normal clients were served); each is bounded by its send buffer: the kernel
        // doubles SO_SNDBUF and may take one segment beyond it.
        let queues = server_send_queues(port);
        assert!(
            queues.len() >= NEVER,
            "{} server sockets seen",
            queues.len()
        );
        let most = *queues.iter().max().unwrap();
        let total: u64 = queues.iter().sum();
        assert!(
            most <= 2 * SNDBUF + 64 * 1024,
            "a never-reader pins {most} bytes of send queue"
        );
        assert!(
            total <= NEVER as u64 * (2 * SNDBUF + 64 * 1024),
            "{total} bytes pinned"
        );
        drop(never);
        let _ = server.terminate(PATIENCE);
    }
}

#[test]
fn slow_mode_skips_ticks_for_clients_that_do_not_read() {
    // 10 never-readers, 64 KiB every 2 ms each: without flow control the server's
    // memory grows by 320 MB/s; with it, each holds at most 64 KiB + one piece.
    let dir = ScratchDir::new("hostile-slow");
    let path = sparse_poem(&dir, 1 << 30);
    let server = ServerProcess::start(
        &[
            "--delay",
            "0.002",
            "--num-bytes",
            "65536",
            "--send-buffer",
            "16384",
            path.to_str().unwrap(),
        ],
        None,
    );
    let baseline = server.rss_kib();
    let never: Vec<TcpStream> = (0..10)
        .map(|_| connect_small(server.port(), 4096))
        .collect();
    let start = Instant::now();
    let mut most = 0;
    while start.elapsed() < Duration::from_secs(1) {
        most = most.max(server.rss_kib());
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        most <= baseline + 10 * 192 + fault_util::RSS_SLACK_KIB,
        "{most} KiB with 10 slow never-readers, baseline {baseline} KiB"
    );
    drop(never);
}

#[test]
fn a_steady_slow_reader_is_never_cut_off_and_a_never_reader_is_on_time() {
    // The kernel's own buffering left at its maximum (--send-buffer kernel): a reader
    // taking 16 KiB every 50 ms moves the socket rarely, but acknowledges all along.
    let dir = ScratchDir::new("hostile-idle");
    let path = sparse_poem(&dir, 256 << 20);
    let server = ServerProcess::start(
        &[
            "--delay",
            "0",
            "--idle-timeout",
            "1",
            "--send-buffer",
            "kernel",
            path.to_str().unwrap(),
        ],
        None,
    );
    let port = server.port();
    let never = connect_small(port, 4096);
    let connected = Instant::now();
    let mut reader = connect_small(port, 64 * 1024);
    let mut buf = vec![0u8; 16 * 1024];
    let mut cut_at = None;
    while connected.elapsed() < Duration::from_secs(4) {
        match reader.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) => panic!(
                "the steady reader was cut off after {:?}: {e}",
                connected.elapsed()
            ),
        }
        if cut_at.is_none() && tcp_state(&never) != TCP_ESTABLISHED {
            cut_at = Some(connected.elapsed());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let cut_at = cut_at.expect("the never-reader was not cut off within 4 s");
    // One to two periods without progress, and a turn of slack.
    assert!(
        cut_at >= Duration::from_secs(1) && cut_at <= Duration::from_millis(2500),
        "the never-reader was cut off after {cut_at:?}"
    );
    let mut never = never;
    let (_, was_reset) = read_to_end_or_reset(&mut never).unwrap();
    assert!(was_reset, "the idle timeout ended a cut poem cleanly");
}

#[test]
fn reactors_share_one_connection_cap() {
    let dir = ScratchDir::new("hostile-reactors");
    let want = b"slowly, over four reactors\n".repeat(40);
    let path = dir.file("poem.txt", &want);
    let server = ServerProcess::start(
        &[
            "--delay",
            "0.05",
            "--num-bytes",
            "16",
            "--reactors",
            "4",
            "--max-connections",
            "2",
            path.to_str().unwrap(),
        ],
        None,
    );
    let port = server.port();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        let mut first = [0u8; 1];
        let read = try_connect_small(port, 64 * 1024)
            .and_then(|mut stream| Ok((stream.read(&mut first)?, stream)));
        match read {
            Ok((1, stream)) => admitted.push(stream),
            Ok(_) => panic!("a clean close with nothing sent"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        (admitted.len(), refused),
        (2, 10),
        "the cap is 2 over 4 reactors"
    );
    drop(admitted);
    let (_, _, stderr) = server.terminate(PATIENCE);
    assert_eq!(stop_counts(&stderr).2, 10, "{stderr}");
}

#[test]
fn a_port_another_process_listens_on_is_refused_whatever_the_reactors() {
    // A stranger listening with SO_REUSEPORT would otherwise share our connections.
    let stranger = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    stranger.set_reuse_address(true).unwrap();
    stranger.set_reuse_port(true).unwrap();
    let address: SocketAddr = ([127, 0, 0, 1], 0).into();
    stranger.bind(&address.into()).unwrap();
    stranger.listen(8).unwrap();
    let port = stranger.local_addr().unwrap().as_socket().unwrap().port();
    for reactors in ["1", "2", "4"] {
        let mut command = Command::new(server_binary());
        command.args(["--port", &port.to_string(), "--reactors", reactors]);
        let output = run_bounded(command, PATIENCE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "--reactors {reactors}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("in use"), "{stderr}");
    }
}

/// A free loopback port, for servers whose start line cannot be read.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fetches from `port` once it accepts (bounded).
fn fetch_when_up(port: u16) -> Vec<u8> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match fetch(port) {
            Ok(poem) => return poem,
            Err(e) if Instant::now() < deadline && e.kind() == ErrorKind::ConnectionRefused => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn output_that_cannot_be_written_is_no_panic() {
    let (path, want) = util::shared_poem("haiku.txt");
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    // stdout /dev/full, then a closed pipe: said on stderr, and the server serves.
    for closed_pipe in [false, true] {
        let port = free_port();
        let mut command = Command::new(server_binary());
        command
            .args([
                "--delay",
                "0",
                "--port",
                &port.to_string(),
                path.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        if closed_pipe {
            command.stdout(Stdio::piped());
        } else {
            command.stdout(full());
        }
        let mut child = ChildGuard(command.spawn().unwrap());
        drop(child.0.stdout.take());
        assert_same_bytes(&fetch_when_up(port), &want, "served");
        // SAFETY: kill signals our own child, still unreaped.
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait_for(PATIENCE).expect("it stops");
        let mut stderr = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            status.success(),
            "closed pipe {closed_pipe}: {status:?}\n{stderr}"
        );
        assert!(stderr.contains("cannot write the status line"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // stderr /dev/full when it stops.
    let mut command = Command::new(server_binary());
    command
        .args(["--delay", "0", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(full());
    let mut child = ChildGuard(command.spawn().unwrap());
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait_for(PATIENCE).expect("it stops");
    assert!(status.success(), "stderr /dev/full at stop: {status:?}");
}

#[test]
fn the_start_line_escapes_control_characters_in_the_file_name() {
    let dir = ScratchDir::new("hostile-name");
    let path = dir.file("two\nlines\u{1b}[2J.txt", b"a poem with a strange name\n");
    let server = ServerProcess::start(&["--delay", "0", path.to_str().unwrap()], None);
    assert_eq!(
        fetch(server.port()).unwrap(),
        b"a poem with a strange name\n"
    );
    let (_, _, _) = server.terminate(PATIENCE);
    let mut command = Command::new(server_binary());
    command.args(["--port", "0", "--delay", "0", path.to_str().unwrap()]);
    let mut child = ChildGuard(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(
        line.contains("two\\nlines\\u{1b}[2J.txt on port "),
        "{line:?}"
    );
    assert!(
        line.ends_with(".\n") && line.matches('\n').count() == 1,
        "{line:?}"
    );
}

#[test]
fn a_file_that_reads_as_empty_but_never_ends_is_refused() {
    let mut command = Command::new(server_binary());
    command.args(["--port", "0", "/proc/self/pagemap"]);
    let output = run_bounded(command, PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("holds more than its size says"), "{stderr}");
}

#[test]
fn a_descriptor_limit_that_cannot_serve_one_client_is_refused_at_start() {
    // Refused at start (status 2, one line) while the limit leaves no descriptor for a
    // client, wherever it runs out (the reactor's own, the listener, the check); served
    // from the first limit that leaves one.
    for limit in [4, 5, 6, 7, 8] {
        let mut command = Command::new(server_binary());
        command.args(["--port", "0", "--delay", "0"]);
        limit_descriptors(&mut command, limit);
        let output = run_bounded(command, PATIENCE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "limit {limit}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("descriptor") || stderr.contains("Too many open files"),
            "{stderr}"
        );
    }
    let server = ServerProcess::start(&["--delay", "0"], Some(9));
    assert_same_bytes(
        &fetch(server.port()).unwrap(),
        poetry_server::poem::DEFAULT_POEM.as_bytes(),
        "served with 9 descriptors",
    );
}

#[test]
fn the_chosen_congestion_control_is_on_every_connection() {
    // In this process: find the server's end of the connection among our own
    // descriptors and read its TCP_CONGESTION.
    use std::os::fd::{BorrowedFd, RawFd};
    let mut reactor = reactor::Reactor::new().unwrap();
    let options = poetry_server::ServerOptions {
        delay: Duration::from_secs(10),
        congestion_control: Some("reno".into()),
        ..poetry_server::ServerOptions::default()
    };
    let poem = poetry_server::Poem::from_bytes("poem", b"slow");
    let (port, _factory) = poetry_server::serve(&mut reactor, poem, options).unwrap();
    let port = port.get_host().port().unwrap();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let deadline = Instant::now() + PATIENCE;
    let algorithm = loop {
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
        let found = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .find_map(|entry| {
                let fd: RawFd = entry.ok()?.file_name().to_str()?.parse().ok()?;
                // SAFETY: borrowed for these calls only; /proc listed it as open (a
                // descriptor closed meanwhile makes the calls fail, which is skipped).
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                let socket = socket2::SockRef::from(&fd);
                let local = socket.local_addr().ok()?.as_socket()?;
                let peer = socket.peer_addr().ok()?.as_socket()?;
                (local.port() == port && peer.port() == client_port)
                    .then(|| socket.tcp_congestion().ok())
                    .flatten()
            });
        if let Some(name) = found {
            break name;
        }
        assert!(
            Instant::now() < deadline,
            "the server's socket was not found"
        );
    };
    let name = String::from_utf8_lossy(&algorithm);
    assert_eq!(name.trim_end_matches('\0'), "reno");
}

/// Raises this process's soft descriptor limit to its hard one; returns the limit.
fn raise_own_descriptor_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

#[test]
fn a_crowd_arriving_while_the_server_is_busy_waits_in_the_accept_queue() {
    // The reactor never turns here: every handshake is the kernel's, and it completes
    // only while the accept queue has room. A dropped SYN is retried after a second,
    // so a client not connected within half of one was dropped. More clients than the
    // transport's default queue (1024), as many as the system lets any queue hold.
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("net.core.somaxconn")
        .trim()
        .parse()
        .expect("a number");
    let clients = 1500
        .min(somaxconn)
        .min(raise_own_descriptor_limit().saturating_sub(64));
    let mut reactor = reactor::Reactor::new().unwrap();
    let options = poetry_server::ServerOptions {
        delay: Duration::from_secs(10),
        max_connections: 20_000,
        ..poetry_server::ServerOptions::default()
    };
    let poem = poetry_server::Poem::from_bytes("poem", b"slow");
    let (port, _factory) = poetry_server::serve(&mut reactor, poem, options).unwrap();
    let address: SocketAddr = ([127, 0, 0, 1], port.get_host().port().unwrap()).into();
    let streams: Vec<TcpStream> = (0..clients)
        .map(|i| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            socket.set_nonblocking(true).unwrap();
            match socket.connect(&address.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => panic!("client {i}: {e}"),
            }
            socket.into()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(500);
    let connected = loop {
        let waiting: Vec<&TcpStream> = streams
            .iter()
            .filter(|s| tcp_state(s) != TCP_ESTABLISHED)
            .collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if waiting.is_empty() || left.is_zero() {
            break clients - waiting.len();
        }
        wait_writable(&waiting, left);
    };
    assert_eq!(
        connected, clients,
        "{connected} of {clients} handshakes completed: the accept queue dropped the rest"
    );
}

/// Waits at most `limit` for any of `streams` to become writable (connected).
fn wait_writable(streams: &[&TcpStream], limit: Duration) {
    use std::os::fd::AsRawFd;
    let mut fds: Vec<libc::pollfd> = streams
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        })
        .collect();
    let ms = libc::c_int::try_from(limit.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}
