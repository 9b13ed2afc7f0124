//! `udp`: UDP echo, closed loop. Each of `--sockets` connected sockets keeps
//! `--window` datagrams of `--size` bytes in flight: every reply that comes back is
//! checked and answered by the next datagram, until `--duration-ms` has passed.
//!
//! UDP may drop a datagram (a full socket buffer on either side): a socket that has
//! heard nothing for [`LOSS_WAIT`] counts what it still waits for as lost and sends a
//! new window, so a loss costs a short pause, never the run. A reply that comes after
//! its window was given up is counted as late, not as an echo.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::cli::{seconds, target, UdpArgs};
use crate::json::Object;
use crate::report::problems;
use crate::stats::rate;
use crate::{Error, Report};

use super::{poll_until, secs};

/// How long a socket waits for a reply before it counts its window as lost.
pub(crate) const LOSS_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    echoed: u64,
    lost: u64,
    late: u64,
    corrupted: u64,
    first_problem: Option<String>,
}

struct Peer {
    socket: UdpSocket,
    /// The next sequence number to send; replies carry theirs in the first 8 bytes.
    next: u64,
    /// Sequence numbers below this were given up as lost.
    floor: u64,
    in_flight: usize,
    last_heard: Instant,
}

/// Datagram `seq`: its number, then a pattern that shows up corruption.
fn fill(buf: &mut [u8], seq: u64) {
    let head = buf.len().min(8);
    buf[..head].copy_from_slice(&seq.to_le_bytes()[..head]);
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = (i % 251) as u8;
    }
}

/// The sequence number of a reply of the right size and pattern, else `None`.
fn check(reply: &[u8], size: usize) -> Option<u64> {
    if reply.len() != size
        || reply[8.min(size)..]
            .iter()
            .enumerate()
            .any(|(i, b)| *b != ((i + 8) % 251) as u8)
    {
        return None;
    }
    let mut seq = [0u8; 8];
    let head = size.min(8);
    seq[..head].copy_from_slice(&reply[..head]);
    Some(u64::from_le_bytes(seq))
}

pub(crate) fn run(args: &UdpArgs) -> Result<Report, Error> {
    let duration = check_args(args)?;
    let (mut poll, mut peers) = open_peers(args)?;
    let start = Instant::now();
    let mut tally = Tally::default();
    exchange(args, &mut poll, &mut peers, start + duration, &mut tally)?;
    Ok(report(args, &tally, start.elapsed()))
}

/// The run's duration, from checked arguments.
fn check_args(args: &UdpArgs) -> Result<Duration, Error> {
    if args.sockets == 0 || args.window == 0 || args.size < 8 || args.duration_ms == 0 {
        return Err(Error::InvalidArgs(
            "--sockets, --window and --duration-ms must be at least 1, --size at least 8".into(),
        ));
    }
    if args.size > 65_507 {
        return Err(Error::InvalidArgs(
            "--size is at most 65,507 (one IPv4 datagram)".into(),
        ));
    }
    let duration = Duration::from_millis(args.duration_ms);
    if duration >= seconds(args.timeout_s) {
        return Err(Error::InvalidArgs(
            "--timeout-s must be longer than --duration-ms".into(),
        ));
    }
    Ok(duration)
}

/// One connected UDP socket per `--sockets`, registered under its index.
fn open_peers(args: &UdpArgs) -> Result<(Poll, Vec<Peer>), Error> {
    let poll = Poll::new().map_err(Error::setup("create a poll"))?;
    let mut peers = Vec::with_capacity(args.sockets);
    for i in 0..args.sockets {
        let mut socket = UdpSocket::bind(target(0)).map_err(Error::setup("bind a UDP socket"))?;
        socket
            .connect(target(args.port))
            .map_err(Error::setup("connect a UDP socket"))?;
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)
            .map_err(Error::setup("register a UDP socket"))?;
        peers.push(Peer {
            socket,
            next: 0,
            floor: 0,
            in_flight: 0,
            last_heard: Instant::now(),
        });
    }
    Ok((poll, peers))
}

/// Keeps every socket's window full until `end`, counting echoes and losses.
fn exchange(
    args: &UdpArgs,
    poll: &mut Poll,
    peers: &mut [Peer],
    end: Instant,
    tally: &mut Tally,
) -> Result<(), Error> {
    let mut out = vec![0u8; args.size];
    let mut buf = vec![0u8; 65_536];
    let mut events = Events::with_capacity(256);
    for peer in peers.iter_mut() {
        top_up(peer, args.window, &mut out, tally);
    }
    while Instant::now() < end {
        // Wake at least every LOSS_WAIT to look for lost windows.
        let wake = end.min(Instant::now() + LOSS_WAIT);
        poll_until(poll, &mut events, wake).map_err(Error::setup("poll"))?;
        for event in events.iter() {
            if let Some(peer) = peers.get_mut(event.token().0) {
                receive(peer, args.size, &mut buf, tally);
            }
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        for peer in peers.iter_mut() {
            if peer.in_flight > 0 && now - peer.last_heard >= LOSS_WAIT {
                tally.lost += peer.in_flight as u64;
                peer.in_flight = 0;
                peer.floor = peer.next;
                peer.last_heard = now;
            }
            top_up(peer, args.window, &mut out, tally);
        }
    }
    Ok(())
}

/// The JSON report: the figures, and what went wrong.
fn report(args: &UdpArgs, tally: &Tally, elapsed: Duration) -> Report {
    let mut fields = Object::new();
    fields
        .field("sockets", args.sockets)
        .field("window", args.window)
        .field("size", args.size)
        .field("duration_ms", args.duration_ms)
        .field("elapsed_s", secs(elapsed))
        .field("sent", tally.sent)
        .field("echoed", tally.echoed)
        .field("datagrams_per_s", rate(tally.echoed as f64, secs(elapsed)))
        .field("lost", tally.lost)
        .field("late", tally.late)
        .field("corrupted", tally.corrupted);
    let mut found = Vec::new();
    if tally.corrupted > 0 {
        found.push(format!(
            "{} replies were corrupted (first: {})",
            tally.corrupted,
            tally.first_problem.as_deref().unwrap_or("?")
        ));
    }
    if tally.echoed == 0 {
        found.push("no datagram came back".to_owned());
    }
    Report::new("udp", problems(found), fields)
}

/// Sends until `window` datagrams are in flight (stops early if the socket is full).
fn top_up(peer: &mut Peer, window: usize, out: &mut [u8], tally: &mut Tally) {
    while peer.in_flight < window {
        fill(out, peer.next);
        match peer.socket.send(out) {
            Ok(_) => {
                peer.next += 1;
                peer.in_flight += 1;
                tally.sent += 1;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Full, or an ICMP error for an earlier datagram: try again later.
            Err(_) => return,
        }
    }
}

/// Reads every reply waiting on `peer`, answering each with the next datagram.
fn receive(peer: &mut Peer, size: usize, buf: &mut [u8], tally: &mut Tally) {
    loop {
        match peer.socket.recv(buf) {
            Ok(n) => match check(&buf[..n], size) {
                Some(seq) if seq >= peer.floor && seq < peer.next => {
                    tally.echoed += 1;
                    peer.in_flight = peer.in_flight.saturating_sub(1);
                    peer.last_heard = Instant::now();
                }
                Some(_) => tally.late += 1,
                None => {
                    tally.corrupted += 1;
                    if tally.first_problem.is_none() {
                        tally.first_problem = Some(format!("a reply of {n} bytes, not as sent"));
                    }
                }
            },
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Empty, or an ICMP error: the loss timer covers what went missing.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_carry_their_number_and_a_checked_pattern() {
        let mut d = vec![0u8; 64];
        fill(&mut d, 0x0102_0304);
        assert_eq!(check(&d, 64), Some(0x0102_0304));
        assert_eq!(check(&d[..63], 64), None);
        d[40] ^= 1;
        assert_eq!(check(&d, 64), None);
        let mut small = vec![0u8; 8];
        fill(&mut small, 7);
        assert_eq!(check(&small, 8), Some(7));
    }
}
