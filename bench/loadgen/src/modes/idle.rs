//! `idle`: open many connections, write nothing, hold them, close them.
//!
//! For measuring what an idle connection costs the server: the harness waits for the
//! line `idle: N connections open`, reads the server's memory, and then lets the hold
//! run out (`--hold-ms`) or, with `--until-stdin`, ends it early by writing a line to
//! (or closing) this program's stdin.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::cli::{seconds, target, IdleArgs};
use crate::json::Object;
use crate::report::problems;
use crate::{Error, Report};
use bench_support::raise_fd_limit;

use super::{poll_until, secs};

const STDIN: Token = Token(usize::MAX - 1);

/// The pause after each `--connect-batch` connections.
const BATCH_PAUSE: Duration = Duration::from_millis(1);

/// Descriptors kept free for stdio, the poll and the like.
const SPARE_FDS: u64 = 32;

#[derive(Debug, Default)]
struct Tally {
    established: u64,
    failed: u64,
    /// Established, then closed or reset by the server while held.
    dropped: u64,
    /// Bytes the server sent, though it should have sent nothing.
    unexpected_bytes: u64,
    first_problem: Option<String>,
}

impl Tally {
    fn note(&mut self, why: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(why());
        }
    }
}

enum State {
    Connecting(TcpStream),
    Open(TcpStream),
    Gone,
}

pub(crate) fn run(args: &IdleArgs) -> Result<Report, Error> {
    let limit = check_and_raise_limit(args)?;
    let start = Instant::now();
    let mut idle = Idle {
        poll: Poll::new().map_err(Error::setup("create a poll"))?,
        events: Events::with_capacity(1024),
        tally: Tally::default(),
        conns: Vec::with_capacity(args.connections),
        scratch: [0u8; 4096],
    };
    let still_connecting = idle.open_all(args, start + seconds(args.timeout_s))?;
    let connect_time = start.elapsed();
    let timed_out = still_connecting > 0 || idle.conns.len() < args.connections;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "idle: {} connections open", idle.open_count())
        .and_then(|()| stdout.flush())
        .map_err(Error::setup("write to stdout"))?;
    let held = idle.hold(args)?;
    let open_at_end = idle.open_count();
    let tally = idle.close_all();

    let mut found = Vec::new();
    if timed_out {
        found.push(format!(
            "timed out after {}s with {} of {} connections open",
            args.timeout_s, tally.established, args.connections
        ));
    }
    if tally.failed + tally.dropped > 0 || tally.unexpected_bytes > 0 {
        found.push(format!(
            "{} failed to connect, {} dropped by the server, {} bytes received (first: {})",
            tally.failed,
            tally.dropped,
            tally.unexpected_bytes,
            tally.first_problem.as_deref().unwrap_or("?")
        ));
    }
    let mut fields = Object::new();
    fields
        .field("connections", args.connections)
        .field("established", tally.established)
        .field("failed", tally.failed)
        .field("dropped", tally.dropped)
        .field("unexpected_bytes", tally.unexpected_bytes)
        .field("open_at_end", open_at_end)
        .field("connect_s", secs(connect_time))
        .field("held_ms", held.as_millis() as u64)
        .field("rlimit_nofile", limit)
        .field("timed_out", timed_out);
    Ok(Report::new("idle", problems(found), fields))
}

/// Checks the arguments and raises the descriptor limit; returns the limit, which
/// must leave room for every connection.
fn check_and_raise_limit(args: &IdleArgs) -> Result<u64, Error> {
    if args.connections == 0 || args.connect_batch == 0 {
        return Err(Error::InvalidArgs(
            "--connections and --connect-batch must be at least 1".into(),
        ));
    }
    let limit = raise_fd_limit().map_err(Error::setup("raise RLIMIT_NOFILE"))?;
    if args.connections as u64 + SPARE_FDS > limit {
        return Err(Error::InvalidArgs(format!(
            "{} connections need more descriptors than the limit of {limit}",
            args.connections
        )));
    }
    Ok(limit)
}

/// The connections under test and the poll that watches them.
struct Idle {
    poll: Poll,
    events: Events,
    tally: Tally,
    /// One state per connection, indexed by its token.
    conns: Vec<State>,
    scratch: [u8; 4096],
}

impl Idle {
    /// Opens them all, at most `connect_batch` in flight at once, until `deadline`;
    /// returns how many were still connecting when it gave up (0 on success).
    ///
    /// On loopback the handshake completes in the client's own syscall, whether or not
    /// the server has run, so after each batch it pauses a moment for the server to
    /// `accept`: a full accept queue drops SYNs, and each drop costs a 1 s retry.
    fn open_all(&mut self, args: &IdleArgs, deadline: Instant) -> Result<usize, Error> {
        let addr = target(args.port);
        let mut connecting = 0usize;
        let mut since_pause = 0;
        while self.conns.len() < args.connections || connecting > 0 {
            if since_pause >= args.connect_batch {
                std::thread::sleep(BATCH_PAUSE);
                since_pause = 0;
            }
            while connecting < args.connect_batch && self.conns.len() < args.connections {
                since_pause += 1;
                if self.connect_one(addr) {
                    connecting += 1;
                }
            }
            if !poll_until(&mut self.poll, &mut self.events, deadline)
                .map_err(Error::setup("poll"))?
            {
                break;
            }
            for event in self.events.iter() {
                let Some(state) = self.conns.get_mut(event.token().0) else {
                    continue;
                };
                let was_connecting = matches!(state, State::Connecting(_));
                on_event(
                    state,
                    event.is_writable(),
                    &mut self.scratch,
                    &mut self.tally,
                );
                if was_connecting && !matches!(state, State::Connecting(_)) {
                    connecting -= 1;
                }
            }
        }
        Ok(connecting)
    }

    /// Starts one connect; whether it is now in flight.
    fn connect_one(&mut self, addr: std::net::SocketAddr) -> bool {
        let slot = self.conns.len();
        let opened = TcpStream::connect(addr).and_then(|mut s| {
            self.poll.registry().register(
                &mut s,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(s)
        });
        match opened {
            Ok(s) => {
                self.conns.push(State::Connecting(s));
                true
            }
            Err(e) => {
                self.tally.failed += 1;
                self.tally.note(|| format!("connect: {e}"));
                self.conns.push(State::Gone);
                false
            }
        }
    }

    /// Holds them until `--hold-ms` passes (or, with `--until-stdin`, a line or EOF on
    /// stdin), watching for any the server drops; how long the hold lasted.
    fn hold(&mut self, args: &IdleArgs) -> Result<Duration, Error> {
        let hold_start = Instant::now();
        let hold_end = hold_start + Duration::from_millis(args.hold_ms);
        let waker = Arc::new(
            Waker::new(self.poll.registry(), STDIN).map_err(Error::setup("create a waker"))?,
        );
        if args.until_stdin {
            let waker = Arc::clone(&waker);
            std::thread::Builder::new()
                .name("loadgen-stdin".into())
                .spawn(move || {
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                    let _ = waker.wake();
                })
                .map_err(Error::setup("spawn the stdin thread"))?;
        }
        'hold: while poll_until(&mut self.poll, &mut self.events, hold_end)
            .map_err(Error::setup("poll"))?
        {
            for event in self.events.iter() {
                if event.token() == STDIN {
                    break 'hold;
                }
                if let Some(state) = self.conns.get_mut(event.token().0) {
                    on_event(
                        state,
                        event.is_writable(),
                        &mut self.scratch,
                        &mut self.tally,
                    );
                }
            }
        }
        Ok(hold_start.elapsed())
    }

    fn open_count(&self) -> usize {
        self.conns
            .iter()
            .filter(|s| matches!(s, State::Open(_)))
            .count()
    }

    /// Closes every connection; what was counted.
    fn close_all(self) -> Tally {
        drop(self.conns);
        self.tally
    }
}

/// Handles readiness on one connection: completes a connect, or notices a server that
/// sent something or hung up.
fn on_event(state: &mut State, writable: bool, scratch: &mut [u8], tally: &mut Tally) {
    match std::mem::replace(state, State::Gone) {
        State::Connecting(stream) => {
            let error = match stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => stream.peer_addr().err(),
            };
            match error {
                None if writable => {
                    tally.established += 1;
                    *state = State::Open(stream);
                    // It may also be readable already: look once.
                    on_event(state, false, scratch, tally);
                }
                None => *state = State::Connecting(stream), // Not yet: wait for writable.
                Some(e) => {
                    tally.failed += 1;
                    tally.note(|| format!("connect: {e}"));
                }
            }
        }
        State::Open(mut stream) => loop {
            match stream.read(scratch) {
                Ok(0) => {
                    tally.dropped += 1;
                    tally.note(|| "closed by the server".into());
                    return;
                }
                Ok(n) => tally.unexpected_bytes += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    *state = State::Open(stream);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tally.dropped += 1;
                    tally.note(|| format!("read: {e}"));
                    return;
                }
            }
        },
        State::Gone => {}
    }
}
