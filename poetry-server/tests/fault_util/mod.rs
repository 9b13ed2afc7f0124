//! Helpers for the fault and bad-input tests: the server as a child process that is
//! killed on drop and whose memory and CPU time can be read from `/proc`, the
//! well-behaved client, and the misbehaving ones (resetting, half-closing, never
//! reading, connecting and leaving in a loop).
//!
//! Every wait has a deadline and every loop a bound: a failing case fails, it never
//! hangs the suite or leaves a server behind.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

// The helpers both suites need live once, in `tests/util`; each suite uses its own
// subset of them.
#[allow(unused_imports)]
pub(crate) use crate::util::{
    assert_same_bytes, parse_port, pseudo_random, reset, run_bounded, server_binary, shared_poem,
    ChildGuard, Collected, ScratchDir, PATIENCE,
};

/// How far above its baseline the server's resident memory may be once a storm is
/// over (and while clients that never read hold their connections).
pub(crate) const RSS_SLACK_KIB: u64 = 8 * 1024;

/// A server process under test: the binary, or this test binary re-run as a server.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: ChildGuard,
    /// The ports it announced, in order (`... on port N.` lines).
    pub(crate) ports: Vec<u16>,
    stderr: Collected,
}

impl ServerProcess {
    /// Starts `poetry-server --port 0 ARGS`, at most `nofile` descriptors if given,
    /// and waits for its start line.
    pub(crate) fn start(args: &[&str], nofile: Option<u64>) -> ServerProcess {
        let mut command = Command::new(server_binary());
        command.args(["--port", "0"]).args(args);
        if let Some(limit) = nofile {
            limit_descriptors(&mut command, limit);
        }
        ServerProcess::spawn(command, 1)
    }

    /// Starts `command` and waits for `ports` lines that say `on port N`.
    pub(crate) fn spawn(mut command: Command, ports: usize) -> ServerProcess {
        command
            .env("RUST_LOG", "warn")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(command.spawn().expect("the server starts"));
        let (stderr, _) = Collected::spawn(child.0.stderr.take().unwrap());
        let stdout = child.0.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            // Keep draining after the ports are known: a closed pipe would fail the
            // server's later writes.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let mut found = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while found.len() < ports {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => found.extend(parse_port(&line)),
                Err(_) => panic!(
                    "the server announced {} of {ports} ports; stderr:\n{}",
                    found.len(),
                    stderr.text()
                ),
            }
        }
        ServerProcess {
            child,
            ports: found,
            stderr,
        }
    }

    /// The first port it announced.
    pub(crate) fn port(&self) -> u16 {
        self.ports[0]
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Its resident memory, in KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// The CPU time it has used so far (user + system).
    pub(crate) fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("the server's /proc stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// Waits (at most a few seconds) for its memory to come back within
    /// [`RSS_SLACK_KIB`] of `baseline`, and returns the last reading.
    pub(crate) fn rss_settles_near(&self, baseline: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rss = self.rss_kib();
            if rss <= baseline + RSS_SLACK_KIB || Instant::now() >= deadline {
                println!("server RSS: baseline {baseline} KiB, after {rss} KiB");
                return rss;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it has written on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }

    /// Sends SIGTERM and waits at most `limit` for it to exit; returns its status, how
    /// long it took, and its stderr (the last line included).
    pub(crate) fn terminate(mut self, limit: Duration) -> (ExitStatus, Duration, String) {
        let pid = self.pid() as libc::pid_t;
        let sent = Instant::now();
        // SAFETY: kill only sends a signal to our own child, still unreaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = self.child.wait_for(limit).unwrap_or_else(|| {
            panic!(
                "the server did not exit within {limit:?} of SIGTERM; stderr:\n{}",
                self.stderr.text()
            )
        });
        let took = sent.elapsed();
        // Let the reader thread catch the last line.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.stderr.text().contains("stopped;") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        (status, took, self.stderr.text())
    }
}

/// Makes `command` run with at most `limit` open descriptors (soft and hard), as
/// `prlimit --nofile=N:N` would.
pub(crate) fn limit_descriptors(command: &mut Command, limit: u64) {
    // SAFETY: the closure runs in the child between fork and exec, and calls only
    // setrlimit, which is async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Connects to loopback `port` with bounded timeouts.
pub(crate) fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), PATIENCE)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// The well-behaved client: connects, sends nothing, reads until the server closes.
pub(crate) fn fetch(port: u16) -> std::io::Result<Vec<u8>> {
    let mut stream = connect(port)?;
    let mut poem = Vec::new();
    stream.read_to_end(&mut poem)?;
    let _ = stream.shutdown(Shutdown::Both);
    Ok(poem)
}

/// `clients` threads, each fetching `rounds` poems and checking each byte for byte;
/// returns how many poems they got whole, or the first problem.
pub(crate) fn good_clients(
    port: u16,
    clients: usize,
    rounds: usize,
    want: &Arc<Vec<u8>>,
) -> Vec<JoinHandle<Result<usize, String>>> {
    (0..clients)
        .map(|client| {
            let want = Arc::clone(want);
            thread::spawn(move || {
                for round in 0..rounds {
                    let got =
                        fetch(port).map_err(|e| format!("client {client}, round {round}: {e}"))?;
                    if got != *want {
                        return Err(format!(
                            "client {client}, round {round}: got {} bytes, want {} (first \
                             difference at {:?})",
                            got.len(),
                            want.len(),
                            got.iter().zip(want.iter()).position(|(a, b)| a != b)
                        ));
                    }
                }
                Ok(rounds)
            })
        })
        .collect()
}

/// Joins the good clients and asserts every poem arrived whole; returns how many.
#[track_caller]
pub(crate) fn all_whole(clients: Vec<JoinHandle<Result<usize, String>>>) -> usize {
    let mut whole = 0;
    for client in clients {
        match client.join().expect("a client thread") {
            Ok(n) => whole += n,
            Err(problem) => panic!("a well-behaved client was hurt: {problem}"),
        }
    }
    whole
}

/// Reads from `stream` until at least `at_least` bytes came (or the end); returns them.
pub(crate) fn read_some(stream: &mut TcpStream, at_least: usize) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < at_least {
        match stream.read(&mut buf)? {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    Ok(got)
}

/// Connects to loopback `port` with a receive buffer of `rcvbuf` bytes (so that the
/// server's kernel, not the client's, holds what the client has not read), with read
/// and write deadlines.
///
/// # Errors
///
/// The socket's or the connect's error (a refusal's reset may come before the connect
/// returns).
pub(crate) fn try_connect_small(port: u16, rcvbuf: usize) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_recv_buffer_size(rcvbuf)?;
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect_timeout(&address.into(), PATIENCE)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// [`try_connect_small`], which must succeed.
pub(crate) fn connect_small(port: u16, rcvbuf: usize) -> TcpStream {
    try_connect_small(port, rcvbuf).expect("connect to the server")
}

/// Reads `stream` to its end, a clean close or a reset: the bytes and whether it was
/// reset.
pub(crate) fn read_to_end_or_reset(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, bool)> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok((got, false)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok((got, true)),
            Err(e) => return Err(e),
        }
    }
}

/// `count` clients that each read at least `after` bytes, then reset the connection.
pub(crate) fn resetters(
    port: u16,
    count: usize,
    after: usize,
    want: &Arc<Vec<u8>>,
) -> Vec<JoinHandle<Result<usize, String>>> {
    (0..count)
        .map(|i| {
            let want = Arc::clone(want);
            thread::spawn(move || {
                let mut stream = connect(port).map_err(|e| format!("resetter {i}: {e}"))?;
                let got =
                    read_some(&mut stream, after).map_err(|e| format!("resetter {i}: {e}"))?;
                if !want.starts_with(&got) {
                    return Err(format!("resetter {i}: not a prefix of the poem"));
                }
                reset(stream);
                Ok(0)
            })
        })
        .collect()
}

/// `count` clients that shut down their writing half right after connecting, then
/// read what comes: a prefix of the poem (the server ends a connection whose peer
/// half-closed, as Twisted does), cleanly.
pub(crate) fn half_closers(
    port: u16,
    count: usize,
    want: &Arc<Vec<u8>>,
) -> Vec<JoinHandle<Result<usize, String>>> {
    (0..count)
        .map(|i| {
            let want = Arc::clone(want);
            thread::spawn(move || {
                let mut stream = connect(port).map_err(|e| format!("half-closer {i}: {e}"))?;
                stream
                    .shutdown(Shutdown::Write)
                    .map_err(|e| format!("half-closer {i}: {e}"))?;
                let (got, _) = read_to_end_or_reset(&mut stream)
                    .map_err(|e| format!("half-closer {i}: {e}"))?;
                if !want.starts_with(&got) {
                    return Err(format!("half-closer {i}: not a prefix of the poem"));
                }
                Ok(0)
            })
        })
        .collect()
}

/// A client that connects and disconnects `count` times in a tight loop.
pub(crate) fn connect_loop(port: u16, count: usize) -> JoinHandle<Result<usize, String>> {
    thread::spawn(move || {
        for i in 0..count {
            let stream = connect(port).map_err(|e| format!("connect loop, round {i}: {e}"))?;
            drop(stream);
        }
        Ok(0)
    })
}

/// Bytes waiting to be read on `stream` (`FIONREAD`).
pub(crate) fn unread_bytes(stream: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer given.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "ioctl FIONREAD");
    n as usize
}

/// `count` clients that connect and never read; returned once each one's receive
/// buffer has stopped filling (the server is blocked on all of them).
pub(crate) fn never_readers(port: u16, count: usize) -> Vec<TcpStream> {
    let streams: Vec<TcpStream> = (0..count)
        .map(|i| connect(port).unwrap_or_else(|e| panic!("never-reader {i}: {e}")))
        .collect();
    let deadline = Instant::now() + PATIENCE;
    for stream in &streams {
        let mut last = usize::MAX;
        loop {
            let now = unread_bytes(stream);
            if now == last && now > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a never-reader's buffer never filled"
            );
            last = now;
            thread::sleep(Duration::from_millis(30));
        }
    }
    streams
}

/// The line the server prints when it stops, parsed: poems sent whole, sends cut
/// short, connections refused.
pub(crate) fn stop_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped;"))
        .unwrap_or_else(|| panic!("no stop line in:\n{stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 3, "{line}");
    (numbers[0], numbers[1], numbers[2])
}
