//! cargo run -p protocol --example echo_server -- 8000 [IDLE_SECONDS]
//!
//! Twisted's `echoserv.py`: writes back whatever a client sends. The port argument is
//! optional (default 8000; 0 picks a free one). Ctrl-C stops it.
//!
//! Bounded, as a server people copy must be: the protocol is its own transport's
//! streaming producer, so when a client does not read what is echoed and the write
//! buffer passes its high-water mark (64 KiB), the server stops reading from that
//! client until it drains; and a connection with no progress in either direction for
//! IDLE_SECONDS (default 60) is dropped. A client that sends and never reads costs the
//! server about 64 KiB, then nothing at all.

use std::sync::OnceLock;
use std::time::Duration;

use protocol::{for_protocol, listen_tcp, Context, Protocol, SimpleFactory, TcpListenOptions};

/// The idle timeout: IDLE_SECONDS, set once at start.
static IDLE: OnceLock<Duration> = OnceLock::new();

#[derive(Default)]
struct Echo;

impl Protocol for Echo {
    type Factory = SimpleFactory<Self>;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.register_producer(true); // pause/resume below keep the echo bounded
        cx.set_timeout(IDLE.get().copied());
    }

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        cx.write(data);
    }

    fn pause_producing(&mut self, cx: &mut Context<'_, Self>) {
        cx.pause_reading(); // the client is not reading: neither do we
    }

    fn resume_producing(&mut self, cx: &mut Context<'_, Self>) {
        cx.resume_reading();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let port = args.next().map_or(Ok(8000), |p| p.parse())?;
    let idle = args.next().map_or(Ok(60.0), |s| s.parse::<f64>())?;
    let idle = Duration::try_from_secs_f64(idle)?;
    IDLE.get_or_init(|| idle);
    let mut reactor = reactor::Reactor::new()?;
    reactor.handle_signals()?;
    let options = TcpListenOptions::default();
    let listening = listen_tcp(&mut reactor, port, &for_protocol::<Echo>(), &options)?;
    let port = listening.get_host().port().unwrap_or(port);
    println!("Serving echo on port {port}.");
    println!("Try it with: nc 127.0.0.1 {port}");
    reactor.run()?;
    Ok(())
}
