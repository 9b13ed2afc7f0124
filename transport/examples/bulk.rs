//! `cargo run --release -p transport --example bulk -- 256`
//!
//! Measures the transport's bulk throughput, in one process and one reactor: a
//! [`Listener`] on `127.0.0.1` serves N MiB (the argument, default 256) from a pull
//! producer, one 64 KiB chunk per `resume_producing`, and a client connection made
//! with [`Connecting`] drains and counts them. It prints the rate in MB/s. Build with
//! `--release` to measure (`cargo run -p transport --example bulk` runs it in debug).

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
    let total = mib << 20;
    let chunk = Rc::new((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());

    let mut reactor = Reactor::new()?;
    let listener = bind_tcp(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &ListenOptions::default(),
    )?;
    let (_, address) = Listener::start(
        &mut reactor,
        listener,
        Box::new(move |reactor: &mut Reactor, stream, _| {
            let source = Source {
                total,
                sent: 0,
                chunk: chunk.clone(),
            };
            if let Err(e) = Connection::start_boxed(reactor, stream, source) {
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
                if let Err(e) = Connection::start_boxed(reactor, stream, sink) {
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
    println!(
        "moved {mib} MiB in {seconds:.3} s: {:.0} MB/s ({:.0} MiB/s){}",
        total as f64 / seconds / 1e6,
        mib as f64 / seconds,
        if cfg!(debug_assertions) {
            " [debug build: use --release to measure]"
        } else {
            ""
        }
    );
    Ok(())
}
