//! `echo`: ping-pong. Each connection writes one `--size` message, reads the same
//! bytes back (checking them), and repeats, until `--duration-ms` has passed.
//!
//! Workers first connect all their connections, then meet at a barrier, so the clock
//! starts for everyone at once with every connection established.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::cli::{seconds, target, threads, EchoArgs};
use crate::json::Object;
use crate::report::problems;
use crate::stats::{percentile, rate};
use crate::{Error, Report};

use super::{join_workers, micros, poll_until, secs, split};

#[derive(Debug, Clone, Copy)]
struct Plan {
    addr: SocketAddr,
    size: usize,
    duration: Duration,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Tally {
    connected: u64,
    requests: u64,
    failures: u64,
    corrupted: u64,
    latencies_us: Vec<u32>,
    first_problem: Option<String>,
    connect_timed_out: bool,
}

impl Tally {
    /// Adds another worker's tally to this one (the first problem stays first).
    fn merge(&mut self, t: Tally) {
        self.connected += t.connected;
        self.requests += t.requests;
        self.failures += t.failures;
        self.corrupted += t.corrupted;
        self.latencies_us.extend(t.latencies_us);
        self.first_problem = self.first_problem.take().or(t.first_problem);
        self.connect_timed_out |= t.connect_timed_out;
    }

    fn note(&mut self, why: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(why());
        }
    }
}

struct Conn {
    stream: TcpStream,
    /// Writing the message (else reading the reply).
    writing: bool,
    /// Bytes of the message written, or of the reply read.
    done: usize,
    started: Instant,
}

/// What driving a connection came to.
enum Next {
    Wait,
    /// The run is over for this connection (its last reply came after the end).
    Finished,
    Failed(String),
    Corrupted(String),
}

/// The message: a pattern that shows up reordering, not just loss.
fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

pub(crate) fn run(args: &EchoArgs) -> Result<Report, Error> {
    let plan = plan(args)?;
    let threads = threads(args.threads, args.connections);
    let (tallies, elapsed) = run_workers(&plan, threads, args.connections)?;
    let mut tally = Tally::default();
    for t in tallies {
        tally.merge(t);
    }
    tally.latencies_us.sort_unstable();
    Ok(report(args, threads, &tally, elapsed))
}

/// The run's plan, from checked arguments.
fn plan(args: &EchoArgs) -> Result<Plan, Error> {
    if args.connections == 0 || args.size == 0 || args.duration_ms == 0 {
        return Err(Error::InvalidArgs(
            "--connections, --size and --duration-ms must be at least 1".into(),
        ));
    }
    let duration = Duration::from_millis(args.duration_ms);
    if duration >= seconds(args.timeout_s) {
        return Err(Error::InvalidArgs(
            "--timeout-s must be longer than --duration-ms".into(),
        ));
    }
    Ok(Plan {
        addr: target(args.port),
        size: args.size,
        duration,
        deadline: Instant::now() + seconds(args.timeout_s),
    })
}

/// Runs `threads` workers sharing `connections`; returns each one's tally and how
/// long the measured part took (from the first worker through the barrier).
fn run_workers(
    plan: &Plan,
    threads: usize,
    connections: usize,
) -> Result<(Vec<Tally>, Duration), Error> {
    let polls = (0..threads)
        .map(|_| Poll::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::setup("create a poll"))?;
    let barrier = Barrier::new(threads);
    // Set by the first worker through the barrier: when measuring began.
    let begun: Mutex<Option<Instant>> = Mutex::new(None);
    let results = std::thread::scope(|scope| {
        let handles = polls
            .into_iter()
            .zip(split(connections, threads))
            .map(|(poll, conns)| {
                let (barrier, begun) = (&barrier, &begun);
                std::thread::Builder::new()
                    .name("loadgen-echo".into())
                    .spawn_scoped(scope, move || worker(plan, poll, conns, barrier, begun))
            })
            .collect::<Vec<_>>();
        join_workers(handles)
    });
    let elapsed = begun
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .map_or(Duration::ZERO, |t| t.elapsed());
    let tallies = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((tallies, elapsed))
}

/// The JSON report: the figures, and what went wrong.
fn report(args: &EchoArgs, threads: usize, tally: &Tally, elapsed: Duration) -> Report {
    let lat = &tally.latencies_us;
    let mut fields = Object::new();
    fields
        .field("connections", args.connections)
        .field("connected", tally.connected)
        .field("size", args.size)
        .field("threads", threads)
        .field("duration_ms", args.duration_ms)
        .field("elapsed_s", secs(elapsed))
        .field("requests", tally.requests)
        .field("requests_per_s", rate(tally.requests as f64, secs(elapsed)))
        .field("p50_us", percentile(lat, 50.0))
        .field("p99_us", percentile(lat, 99.0))
        .field("max_us", lat.last().copied())
        .field("failures", tally.failures)
        .field("corrupted", tally.corrupted)
        .field("timed_out", tally.connect_timed_out);
    let mut found = Vec::new();
    if tally.connect_timed_out {
        found.push("timed out while connecting".to_owned());
    }
    if tally.failures + tally.corrupted > 0 {
        found.push(format!(
            "{} connections failed, {} got corrupted replies (first: {})",
            tally.failures,
            tally.corrupted,
            tally.first_problem.as_deref().unwrap_or("?")
        ));
    }
    if tally.requests == 0 && found.is_empty() {
        found.push("no request completed".to_owned());
    }
    Report::new("echo", problems(found), fields)
}

fn worker(
    plan: &Plan,
    mut poll: Poll,
    count: usize,
    barrier: &Barrier,
    begun: &Mutex<Option<Instant>>,
) -> Result<Tally, Error> {
    let mut tally = Tally::default();
    let mut events = Events::with_capacity(1024);
    let (conns, poll_error) = connect_all(plan, &mut poll, &mut events, count, &mut tally);
    // Every worker must reach the barrier, whatever happened to it.
    barrier.wait();
    if let Some(e) = poll_error {
        return Err(Error::Setup {
            what: "poll",
            source: e,
        });
    }
    let start = {
        let mut begun = begun.lock().unwrap_or_else(|e| e.into_inner());
        *begun.get_or_insert_with(Instant::now)
    };
    let end = (start + plan.duration).min(plan.deadline);
    let msg = message(plan.size);
    let mut scratch = vec![0u8; plan.size];
    let mut conns: Vec<Option<Conn>> = conns.into_iter().map(Some).collect();
    let mut live = conns.len();
    // Edge-triggered: the first writes are ours to start.
    for slot in 0..conns.len() {
        if let Some(conn) = &mut conns[slot] {
            conn.started = Instant::now();
        }
        live -= usize::from(step(&mut conns, slot, &msg, &mut scratch, end, &mut tally));
    }
    while live > 0 {
        if !poll_until(&mut poll, &mut events, end).map_err(Error::setup("poll"))? {
            break; // Time is up: requests in flight are not counted.
        }
        for event in events.iter() {
            live -= usize::from(step(
                &mut conns,
                event.token().0,
                &msg,
                &mut scratch,
                end,
                &mut tally,
            ));
        }
    }
    Ok(tally)
}

/// Drives one slot; returns `true` if it has just closed.
fn step(
    conns: &mut [Option<Conn>],
    slot: usize,
    msg: &[u8],
    scratch: &mut [u8],
    end: Instant,
    tally: &mut Tally,
) -> bool {
    let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
        return false;
    };
    match drive(conn, msg, scratch, end, tally) {
        Next::Wait => return false,
        Next::Finished => {}
        Next::Failed(why) => {
            tally.failures += 1;
            tally.note(|| why);
        }
        Next::Corrupted(why) => {
            tally.corrupted += 1;
            tally.note(|| why);
        }
    }
    conns[slot] = None;
    true
}

fn drive(conn: &mut Conn, msg: &[u8], scratch: &mut [u8], end: Instant, tally: &mut Tally) -> Next {
    loop {
        if conn.writing {
            while conn.done < msg.len() {
                match conn.stream.write(&msg[conn.done..]) {
                    Ok(0) => return Next::Failed("write returned 0".into()),
                    Ok(n) => conn.done += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Next::Failed(format!("write: {e}")),
                }
            }
            conn.writing = false;
            conn.done = 0;
        }
        while conn.done < msg.len() {
            let want = msg.len() - conn.done;
            match conn.stream.read(&mut scratch[..want]) {
                Ok(0) => {
                    return Next::Failed(format!(
                        "closed by the server after {} bytes of a reply",
                        conn.done
                    ))
                }
                Ok(n) => {
                    if scratch[..n] != msg[conn.done..conn.done + n] {
                        return Next::Corrupted(format!(
                            "reply differs at byte {} or after",
                            conn.done
                        ));
                    }
                    conn.done += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Next::Failed(format!("read: {e}")),
            }
        }
        let now = Instant::now();
        if now > end {
            return Next::Finished; // Came back after the end: not counted.
        }
        tally.requests += 1;
        tally.latencies_us.push(micros(now - conn.started));
        conn.writing = true;
        conn.done = 0;
        conn.started = now;
    }
}

/// Opens `count` connections and waits until each is established or failed. Returns
/// the established ones (and a poll error, if polling broke).
fn connect_all(
    plan: &Plan,
    poll: &mut Poll,
    events: &mut Events,
    count: usize,
    tally: &mut Tally,
) -> (Vec<Conn>, Option<std::io::Error>) {
    let mut pending = open_all(plan, poll, count, tally);
    let mut waiting = pending.iter().filter(|s| s.is_some()).count();
    let mut ready: Vec<Conn> = Vec::with_capacity(count);
    while waiting > 0 {
        match poll_until(poll, events, plan.deadline) {
            Ok(true) => {}
            Ok(false) => {
                tally.connect_timed_out = true;
                break;
            }
            Err(e) => return (ready, Some(e)),
        }
        for event in events.iter() {
            let Some(stream) = pending.get_mut(event.token().0).and_then(Option::take) else {
                continue;
            };
            waiting -= 1;
            match established(stream, event.is_writable()) {
                Ok(conn) => {
                    tally.connected += 1;
                    ready.push(conn);
                }
                Err(why) => {
                    tally.failures += 1;
                    tally.note(|| why);
                }
            }
        }
    }
    let renumbered = renumber(poll, &mut ready).err();
    (ready, renumbered)
}

/// Starts `count` connections, registered under their index; `None` for those that
/// failed at once (counted).
fn open_all(plan: &Plan, poll: &Poll, count: usize, tally: &mut Tally) -> Vec<Option<TcpStream>> {
    (0..count)
        .map(|slot| {
            let registered = TcpStream::connect(plan.addr).and_then(|mut s| {
                poll.registry().register(
                    &mut s,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(s)
            });
            registered
                .map_err(|e| {
                    tally.failures += 1;
                    tally.note(|| format!("connect: {e}"));
                })
                .ok()
        })
        .collect()
}

/// A connection whose first event came: ready for its first message, or why not.
fn established(stream: TcpStream, writable: bool) -> Result<Conn, String> {
    let error = match stream.take_error() {
        Ok(Some(e)) | Err(e) => Some(e),
        Ok(None) => stream.peer_addr().err(),
    };
    match error {
        None if writable => {
            // Without it only the latencies suffer, and the run reports them.
            let _ = stream.set_nodelay(true);
            Ok(Conn {
                stream,
                writing: true,
                done: 0,
                started: Instant::now(),
            })
        }
        // Readable before writable: the server spoke or closed first.
        None => Err("server spoke or closed before the first message".into()),
        Some(e) => Err(format!("connect: {e}")),
    }
}

/// Tokens index the connections tried; re-registers the established ones under their
/// new index.
///
/// # Errors
///
/// A failed re-registration: that connection's events would name another's slot, so
/// the run cannot go on.
fn renumber(poll: &Poll, ready: &mut [Conn]) -> std::io::Result<()> {
    for (i, conn) in ready.iter_mut().enumerate() {
        poll.registry().reregister(
            &mut conn.stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_pattern_is_not_periodic_in_powers_of_two() {
        let m = message(1024);
        assert_eq!(m.len(), 1024);
        assert_ne!(m[..256], m[256..512]);
        assert_eq!(m[251], 0);
    }
}
