//! `poetry-proxy`: serves another poetry server's poem, fetched once and then from
//! its cache, as the Twisted Introduction's `poetry-proxy.py` (3.0) does.
//!
//! ```text
//! cargo run -p poetry-server -- --port 10000 poems/haiku.txt
//! cargo run -p poetry-proxy -- --port 10001 10000
//! nc 127.0.0.1 10001
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use poetry_cli::{one_line, parse_positive_seconds, parse_seconds};
use poetry_client::PoemAddress;
use poetry_proxy::{serve, GetOptions, ProxyOptions};
use protocol::reactor::Reactor;

/// Proxies the poem of the poetry server at UPSTREAM: the first client's request
/// fetches it (clients arriving meanwhile share that download), later ones get it
/// from the cache.
#[derive(Debug, Parser)]
#[command(name = "poetry-proxy", version, allow_negative_numbers = true)]
struct Args {
    /// The poetry server: PORT (on 127.0.0.1), HOST:PORT or [IPV6]:PORT.
    upstream: PoemAddress,
    /// The port to listen on; 0 or absent picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The interface to listen on: loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    iface: String,
    /// Most clients served at once; more are refused with a reset.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Close a client that takes no part of its poem for this many seconds; 0 never.
    #[arg(long, default_value = "120", value_parser = parse_seconds, allow_hyphen_values = true)]
    idle_timeout: Duration,
    /// The largest poem fetched and cached, in bytes; a longer one fails the download.
    #[arg(long, default_value_t = poetry_proxy::DEFAULT_MAX_POEM_BYTES,
          value_parser = clap::value_parser!(u64).range(1..=(1 << 32)))]
    max_poem_bytes: u64,
    /// Give up connecting to the upstream after this many seconds.
    #[arg(long, default_value = "30", value_parser = parse_positive_seconds, allow_hyphen_values = true)]
    connect_timeout: Duration,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let options = ProxyOptions {
        port: args.port,
        interface: args.iface,
        max_connections: args.max_connections as usize,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        fetch: GetOptions {
            max_poem_bytes: args.max_poem_bytes,
            connect_timeout: Some(args.connect_timeout),
        },
    };
    let mut reactor = Reactor::new()?;
    reactor.handle_signals()?;
    let upstream = args.upstream;
    let (port, factory) = serve(&mut reactor, &upstream.host, upstream.port, options)?;
    factory
        .borrow()
        .service()
        .borrow_mut()
        // Not println!: a closed stdout (`| head -1`) must not fail every request.
        .set_event_hook(|event| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{event}");
            let _ = out.flush();
        });
    let number = port.get_host().port().unwrap_or_default();
    println!("Proxying {upstream} on port {number}.");
    reactor.run()?;
    let factory = factory.borrow();
    let stats = factory.service().borrow().stats();
    eprintln!(
        "poetry-proxy: stopped; {} downloads ({} whole, {} failed, {} cancelled), {} clients served from the cache, {} refused.",
        stats.downloads, stats.fetched, stats.failed, stats.cancelled, stats.from_cache, factory.refused()
    );
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Args = match poetry_cli::parse_args("poetry-proxy") {
        Ok(args) => args,
        Err(code) => return code,
    };
    let iface = args.iface.clone();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poetry-proxy: {}", one_line(&e.to_string(), &[&iface]));
            ExitCode::from(2)
        }
    }
}
