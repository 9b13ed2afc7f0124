//! `cargo run --release -p transport --example bulk -- 256`
//!
//! Measures the transport's bulk throughput against a hand-written mio loop doing the
//! same, in one run. Each round moves N MiB (the argument, default 256) over loopback
//! twice, alternating: through the transport (a [`Listener`] serving a pull producer,
//! one 64 KiB chunk per `resume_producing`, and a client connection made with
//! [`Connecting`] draining it, all on one reactor), and through raw mio (one poll,
//! the same two sockets, the same chunk, no layers). It prints each rate in MB/s, the
//! medians of the rounds (the second argument, default 5), and their ratio. Build with
//! `--release` to measure.

use std::cell::RefCell;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::Reactor;
use transport::{
    bind_tcp, start_connect_tcp, Address, Connecting, Connection, DisconnectReason, Handler,
    ListenOptions, Listener, Transport,
};

const CHUNK: usize = 64 * 1024;

/// Serves `total` bytes, one chunk each time the write buffer drains, then closes.
struct Source {
    total: u64,
    sent: u64,
    chunk: Rc<Vec<u8>>,
}

impl Handler for Source {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer(false);
    }

    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let n = (self.total - self.sent).min(CHUNK as u64) as usize;
        t.write(&self.chunk[..n]);
        self.sent += n as u64;
        if self.sent == self.total {
            t.unregister_producer();
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _: &mut Transport<'_>, reason: &DisconnectReason) {
        if !reason.is_clean() {
            eprintln!("bulk: server side ended: {reason}");
        }
    }
}

/// What the client saw: bytes, and how and when it ended.
#[derive(Debug, Default)]
struct Received {
    bytes: u64,
    ended: Option<(String, bool, Instant)>,
}

/// Counts what arrives and stops the reactor at the end.
struct Sink(Rc<RefCell<Received>>);

impl Handler for Sink {
    fn data_received(&mut self, _: &mut Transport<'_>, data: &[u8]) {
        self.0.borrow_mut().bytes += data.len() as u64;
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &DisconnectReason) {
        self.0.borrow_mut().ended = Some((reason.to_string(), reason.is_clean(), Instant::now()));
        t.reactor().stop();
    }
}

fn main() -> ExitCode {
    env_logger::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulk: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let mib: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| format!("bad size {arg:?} (MiB): {e}"))?,
        None => 256,
    };
    let rounds: usize = match std::env::args().nth(2) {
        Some(arg) => arg
            .parse()
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| format!("bad number of rounds {arg:?}"))?,
        None => 5,
    };
    let total = mib << 20;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let a = transport_rate(total)?;
        let b = raw_mio_rate(total)?;
        println!("round {round}: transport {a:.0} MB/s, raw mio {b:.0} MB/s");
        ours.push(a);
        raw.push(b);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut ours), median(&mut raw));
    println!(
        "{mib} MiB x {rounds} rounds, medians: transport {a:.0} MB/s, raw mio {b:.0} MB/s, ratio {:.3}{}",
        a / b,
        if cfg!(debug_assertions) {
            " [debug build: use --release to measure]"
        } else {
            ""
        }
    );
    Ok(())
}

/// One transfer of `total` bytes through the transport; MB/s.
fn transport_rate(total: u64) -> Result<f64, Box<dyn Error>> {
    let chunk = Rc::new((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());

    let mut reactor = Reactor::new()?;
    let listener = bind_tcp(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &ListenOptions::default(),
    )?;
    let (_, address) = Listener::start(
        &mut reactor,
        listener,
        Box::new(move |reactor: &mut Reactor, stream, peer| {
            let source = Source {
                total,
                sent: 0,
                chunk: chunk.clone(),
            };
            if let Err(e) = Connection::start(reactor, stream, peer, source) {
                eprintln!("bulk: cannot serve: {e}");
            }
        }),
    )?;
    let target = address.tcp().expect("a TCP listener");

    let received = Rc::new(RefCell::new(Received::default()));
    let sink = Sink(received.clone());
    let failure = Rc::new(RefCell::new(None));
    let failed = failure.clone();
    let started = Instant::now();
    Connecting::start(
        &mut reactor,
        Box::new(start_connect_tcp(target, None)?),
        Address::Tcp(target),
        Some(Duration::from_secs(10)),
        Box::new(move |reactor: &mut Reactor, outcome| match outcome {
            Ok(stream) => {
                if let Err(e) = Connection::start(reactor, stream, Address::Tcp(target), sink) {
                    *failed.borrow_mut() = Some(e.to_string());
                    reactor.stop();
                }
            }
            Err(reason) => {
                *failed.borrow_mut() = Some(reason.to_string());
                reactor.stop();
            }
        }),
    )?;
    reactor.run()?;

    if let Some(e) = failure.borrow_mut().take() {
        return Err(format!("cannot connect: {e}").into());
    }
    let received = received.borrow();
    let Some((reason, clean, ended)) = received.ended.clone() else {
        return Err("the transfer did not finish".into());
    };
    if !clean || received.bytes != total {
        return Err(format!(
            "received {} of {total} bytes, then: {reason}",
            received.bytes
        )
        .into());
    }
    let seconds = (ended - started).as_secs_f64();
    Ok(total as f64 / seconds / 1e6)
}

/// One transfer of `total` bytes through a hand-written mio loop: the floor the
/// layers are measured against. MB/s.
fn raw_mio_rate(total: u64) -> Result<f64, Box<dyn Error>> {
    use mio::net::TcpListener;
    use mio::{Events, Interest, Poll, Token};
    use std::io::{ErrorKind, Read, Write};

    const LISTENER: Token = Token(0);
    const SERVER: Token = Token(1);
    const CLIENT: Token = Token(2);
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let mut buf = vec![0u8; CHUNK];
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let started = Instant::now();
    let mut client = mio::net::TcpStream::connect(listener.local_addr()?)?;
    poll.registry()
        .register(&mut client, CLIENT, Interest::READABLE)?;
    let mut server: Option<mio::net::TcpStream> = None;
    let (mut sent, mut received, mut offset) = (0u64, 0u64, 0usize);
    let deadline = started + Duration::from_secs(120);
    while received < total {
        if Instant::now() > deadline {
            return Err("raw mio transfer took over two minutes".into());
        }
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        // Both ends are served every turn below; the only event acted on is the accept.
        for event in events.iter() {
            if event.token() == LISTENER && server.is_none() && sent == 0 {
                let (mut stream, _) = listener.accept()?;
                poll.registry()
                    .register(&mut stream, SERVER, Interest::WRITABLE)?;
                server = Some(stream);
            }
        }
        // The same budgets as the transport: at most 16 chunks written, then at most 16
        // reads, per turn (unbounded batches thrash the cache and measure slower).
        if let Some(stream) = server.as_mut() {
            for _ in 0..16 {
                if sent == total {
                    break;
                }
                let n = (total - sent).min((CHUNK - offset) as u64) as usize;
                match stream.write(&chunk[offset..offset + n]) {
                    Ok(m) => {
                        sent += m as u64;
                        offset = (offset + m) % CHUNK;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if sent == total {
                server = None; // Closes it: the client reads end of file.
            }
        }
        for _ in 0..16 {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(total as f64 / started.elapsed().as_secs_f64() / 1e6)
}
