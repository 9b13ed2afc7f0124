//! `poems` and `slow`: many whole-poem downloads, each read until the server closes,
//! each checked.
//!
//! Each worker thread owns a mio poll and a fixed number of slots; a slot that finishes
//! claims the next download from one shared atomic counter, so exactly `downloads`
//! are attempted however the threads race.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::cli::{seconds, target, threads, PoemsArgs, SlowArgs};
use crate::fnv::{format_sum, Fnv1a64};
use crate::json::Object;
use crate::report::problems;
use crate::stats::{ms, percentile, rate};
use crate::{Error, Report};

use super::{join_workers, micros, poll_until, secs, split};

const BUF: usize = 64 * 1024;

/// What to download and how to check it.
#[derive(Debug, Clone, Copy)]
struct Plan {
    addr: SocketAddr,
    downloads: u64,
    expect_bytes: Option<u64>,
    expect_sum: Option<u64>,
    deadline: Instant,
    /// Bytes sent on each connection before the answer is read (`--request`).
    request: Option<&'static [u8]>,
}

/// What the workers saw, added up.
#[derive(Debug, Default)]
struct Tally {
    completed: u64,
    failures: u64,
    corrupted: u64,
    bytes: u64,
    /// Each completed download's time from connect to close, in µs.
    durations_us: Vec<u32>,
    first_failure: Option<String>,
    first_corruption: Option<String>,
    /// Downloads still in flight when the deadline passed.
    unfinished: u64,
}

impl Tally {
    fn fail(&mut self, why: impl FnOnce() -> String) {
        self.failures += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(why());
        }
    }

    fn corrupt(&mut self, why: impl FnOnce() -> String) {
        self.corrupted += 1;
        if self.first_corruption.is_none() {
            self.first_corruption = Some(why());
        }
    }

    fn merge(&mut self, other: Tally) {
        self.completed += other.completed;
        self.failures += other.failures;
        self.corrupted += other.corrupted;
        self.bytes += other.bytes;
        self.durations_us.extend(other.durations_us);
        self.first_failure = self.first_failure.take().or(other.first_failure);
        self.first_corruption = self.first_corruption.take().or(other.first_corruption);
        self.unfinished += other.unfinished;
    }
}

/// One download in flight.
struct Download {
    stream: TcpStream,
    started: Instant,
    bytes: u64,
    hasher: Option<Fnv1a64>,
    /// Bytes of the request sent so far.
    sent: usize,
}

pub(crate) fn poems(args: &PoemsArgs) -> Result<Report, Error> {
    if args.concurrency == 0 || args.downloads == 0 {
        return Err(Error::InvalidArgs(
            "--concurrency and --downloads must be at least 1".into(),
        ));
    }
    let request = match &args.request {
        // Read once, kept for the life of the process: every connection sends it.
        Some(path) => Some(
            &*std::fs::read(path)
                .map_err(|e| Error::InvalidArgs(format!("--request {}: {e}", path.display())))?
                .leak(),
        ),
        None => None,
    };
    let plan = Plan {
        addr: target(args.port),
        downloads: args.downloads,
        expect_bytes: args.expect_bytes,
        expect_sum: args.expect_sum,
        deadline: Instant::now() + seconds(args.timeout_s),
        request,
    };
    let concurrency = args
        .concurrency
        .min(usize::try_from(args.downloads).unwrap_or(usize::MAX));
    let threads = threads(args.threads, concurrency);
    let (tally, elapsed) = download_all(plan, concurrency, threads)?;
    let mut fields = Object::new();
    fields
        .field("downloads", args.downloads)
        .field("concurrency", concurrency)
        .field("threads", threads);
    let found = describe(&plan, &tally, elapsed, &mut fields);
    fields.field(
        "downloads_per_s",
        rate(tally.completed as f64, secs(elapsed)),
    );
    Ok(Report::new("poems", problems(found), fields))
}

pub(crate) fn slow(args: &SlowArgs) -> Result<Report, Error> {
    if args.clients == 0 {
        return Err(Error::InvalidArgs("--clients must be at least 1".into()));
    }
    let plan = Plan {
        addr: target(args.port),
        downloads: args.clients as u64,
        expect_bytes: Some(args.expect_bytes),
        expect_sum: args.expect_sum,
        deadline: Instant::now() + seconds(args.timeout_s),
        request: None,
    };
    // The clients mostly wait: one thread holds them all.
    let (tally, elapsed) = download_all(plan, args.clients, 1)?;
    let mut fields = Object::new();
    fields.field("clients", args.clients);
    let found = describe(&plan, &tally, elapsed, &mut fields);
    Ok(Report::new("slow", problems(found), fields))
}

/// Adds the shared figures to `fields` and returns the problems found.
fn describe(plan: &Plan, tally: &Tally, elapsed: Duration, fields: &mut Object) -> Vec<String> {
    let mut sorted = tally.durations_us.clone();
    sorted.sort_unstable();
    fields
        .field("completed", tally.completed)
        .field("failures", tally.failures)
        .field("corrupted", tally.corrupted)
        .field("unfinished", tally.unfinished)
        .field("expect_bytes", plan.expect_bytes)
        .field("expect_sum", plan.expect_sum.map(format_sum))
        .field("bytes", tally.bytes)
        .field("elapsed_s", secs(elapsed))
        .field("mb_per_s", rate(tally.bytes as f64 / 1e6, secs(elapsed)))
        .field("min_ms", ms(sorted.first().copied()))
        .field("p50_ms", ms(percentile(&sorted, 50.0)))
        .field("p99_ms", ms(percentile(&sorted, 99.0)))
        .field("max_ms", ms(sorted.last().copied()))
        .field("timed_out", tally.unfinished > 0);
    let mut found = Vec::new();
    if tally.failures > 0 {
        found.push(format!(
            "{} of {} downloads failed (first: {})",
            tally.failures,
            plan.downloads,
            tally.first_failure.as_deref().unwrap_or("?")
        ));
    }
    if tally.corrupted > 0 {
        found.push(format!(
            "{} downloads corrupted (first: {})",
            tally.corrupted,
            tally.first_corruption.as_deref().unwrap_or("?")
        ));
    }
    let attempted = tally.completed + tally.failures + tally.corrupted;
    if attempted < plan.downloads {
        found.push(format!(
            "timed out with {} of {} downloads done",
            attempted, plan.downloads
        ));
    }
    found
}

/// Runs `concurrency` slots over `threads` workers until `plan.downloads` are done or
/// the deadline passes.
fn download_all(
    plan: Plan,
    concurrency: usize,
    threads: usize,
) -> Result<(Tally, Duration), Error> {
    let polls = (0..threads)
        .map(|_| Poll::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::setup("create a poll"))?;
    let claimed = AtomicU64::new(0);
    let start = Instant::now();
    let results = std::thread::scope(|scope| {
        let handles = polls
            .into_iter()
            .zip(split(concurrency, threads))
            .map(|(poll, slots)| {
                let claimed = &claimed;
                std::thread::Builder::new()
                    .name("loadgen-download".into())
                    .spawn_scoped(scope, move || worker(&plan, poll, slots, claimed))
            })
            .collect::<Vec<_>>();
        join_workers(handles)
    });
    let elapsed = start.elapsed();
    let mut tally = Tally::default();
    for result in results {
        tally.merge(result?);
    }
    Ok((tally, elapsed))
}

fn worker(plan: &Plan, mut poll: Poll, slots: usize, claimed: &AtomicU64) -> Result<Tally, Error> {
    let mut tally = Tally::default();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; BUF];
    let mut downloads: Vec<Option<Download>> = (0..slots).map(|_| None).collect();
    let mut free: Vec<usize> = (0..slots).rev().collect();
    loop {
        // Fill every free slot with the next download, while there are any left.
        while let Some(&slot) = free.last() {
            if claimed.fetch_add(1, Ordering::Relaxed) >= plan.downloads {
                break;
            }
            if let Some(download) = start_download(plan, &poll, slot, &mut tally) {
                free.pop();
                downloads[slot] = Some(download);
            }
        }
        if free.len() == slots {
            return Ok(tally); // Nothing in flight and nothing left to claim.
        }
        if !poll_until(&mut poll, &mut events, plan.deadline).map_err(Error::setup("poll"))? {
            tally.unfinished += (slots - free.len()) as u64;
            return Ok(tally);
        }
        for event in events.iter() {
            let slot = event.token().0;
            let Some(download) = downloads.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if event.is_writable() && !send_request(download, &poll, slot, plan, &mut tally) {
                downloads[slot] = None;
                free.push(slot);
                continue;
            }
            if read_some(download, &mut buf, plan, &mut tally) {
                downloads[slot] = None; // Closes the socket.
                free.push(slot);
            }
        }
    }
}

/// Connects a new download, registered under `slot`; `None` (counted as a failure) if
/// it cannot start.
fn start_download(plan: &Plan, poll: &Poll, slot: usize, tally: &mut Tally) -> Option<Download> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(plan.addr)
        .map_err(|e| tally.fail(|| format!("connect: {e}")))
        .ok()?;
    let interest = match plan.request {
        Some(_) => Interest::READABLE | Interest::WRITABLE,
        None => Interest::READABLE,
    };
    if let Err(e) = poll.registry().register(&mut stream, Token(slot), interest) {
        tally.fail(|| format!("register: {e}"));
        return None;
    }
    Some(Download {
        stream,
        started,
        bytes: 0,
        hasher: plan.expect_sum.map(|_| Fnv1a64::new()),
        sent: 0,
    })
}

/// Sends what is left of the request (the socket is writable); once it is all sent,
/// only reading remains. Returns `false` if the download failed.
fn send_request(
    d: &mut Download,
    poll: &Poll,
    slot: usize,
    plan: &Plan,
    tally: &mut Tally,
) -> bool {
    let Some(request) = plan.request else {
        return true;
    };
    while d.sent < request.len() {
        match d.stream.write(&request[d.sent..]) {
            Ok(n) => d.sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => {
                return true; // connecting, or the buffer is full: next writable event
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let sent = d.sent;
                tally.fail(|| format!("write after {sent} bytes of the request: {e}"));
                return false;
            }
        }
    }
    if let Err(e) = poll
        .registry()
        .reregister(&mut d.stream, Token(slot), Interest::READABLE)
    {
        tally.fail(|| format!("reregister: {e}"));
        return false;
    }
    true
}

/// Reads what the kernel has; returns `true` when the download is over (finished,
/// failed or found corrupted) and recorded in `tally`.
fn read_some(d: &mut Download, buf: &mut [u8], plan: &Plan, tally: &mut Tally) -> bool {
    loop {
        match d.stream.read(buf) {
            Ok(0) => {
                finish(d, plan, tally);
                return true;
            }
            Ok(n) => {
                d.bytes += n as u64;
                tally.bytes += n as u64;
                if let Some(h) = &mut d.hasher {
                    h.update(&buf[..n]);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let got = d.bytes;
                tally.fail(|| format!("read after {got} bytes: {e}"));
                return true;
            }
        }
    }
}

fn finish(d: &Download, plan: &Plan, tally: &mut Tally) {
    if let Some(expect) = plan.expect_bytes {
        if d.bytes != expect {
            let got = d.bytes;
            tally.corrupt(|| format!("expected {expect} bytes, got {got}"));
            return;
        }
    }
    if let (Some(expect), Some(h)) = (plan.expect_sum, d.hasher) {
        if h.finish() != expect {
            tally.corrupt(|| {
                format!(
                    "expected sum {}, got {}",
                    format_sum(expect),
                    format_sum(h.finish())
                )
            });
            return;
        }
    }
    tally.completed += 1;
    tally.durations_us.push(micros(d.started.elapsed()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            addr: target(1),
            downloads: 4,
            expect_bytes: Some(10),
            expect_sum: None,
            deadline: Instant::now(),
            request: None,
        }
    }

    #[test]
    fn describe_reports_every_kind_of_trouble() {
        let mut tally = Tally {
            completed: 1,
            ..Tally::default()
        };
        tally.fail(|| "read: reset".into());
        tally.corrupt(|| "expected 10 bytes, got 9".into());
        let mut fields = Object::new();
        let found = describe(&plan(), &tally, Duration::from_secs(1), &mut fields);
        assert_eq!(
            found,
            vec![
                "1 of 4 downloads failed (first: read: reset)".to_owned(),
                "1 downloads corrupted (first: expected 10 bytes, got 9)".to_owned(),
                "timed out with 3 of 4 downloads done".to_owned(),
            ]
        );
    }

    #[test]
    fn merge_keeps_the_first_reasons() {
        let mut a = Tally::default();
        a.fail(|| "first".into());
        let mut b = Tally::default();
        b.fail(|| "second".into());
        b.completed = 2;
        b.durations_us = vec![5, 6];
        a.merge(b);
        assert_eq!(a.failures, 2);
        assert_eq!(a.completed, 2);
        assert_eq!(a.first_failure.as_deref(), Some("first"));
        assert_eq!(a.durations_us, vec![5, 6]);
    }
}
