//! `poetry-transform-server`: transforms poems on request, as the Twisted
//! Introduction's `transformedpoetry.py` does.
//!
//! ```text
//! cargo run -p poetry-transform --bin poetry-transform-server -- --port 11000
//! printf '27:cummingsify.HERE IS MY POEM,' | nc 127.0.0.1 11000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use poetry_cli::{one_line, parse_seconds};
use poetry_transform::{serve, ServerOptions, Transforms};
use protocol::reactor::Reactor;

/// Answers each netstring request `<transform>.<poem>` with the transformed poem,
/// then closes. Transforms: cummingsify, flaky-cummingsify (every third fails),
/// slow-cummingsify (answers after two seconds).
#[derive(Debug, Parser)]
#[command(
    name = "poetry-transform-server",
    version,
    allow_negative_numbers = true
)]
struct Args {
    /// The port to listen on; 0 or absent picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The interface to listen on: loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    iface: String,
    /// Most connections served at once; more are refused with a clean close.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Close a connection that makes no progress for this many seconds; 0 never does.
    #[arg(long, default_value = "120", value_parser = parse_seconds, allow_hyphen_values = true)]
    idle_timeout: Duration,
    /// The longest request accepted, in bytes (transform name, '.' and poem).
    #[arg(long, default_value_t = poetry_transform::DEFAULT_MAX_REQUEST as u64,
          value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    max_request_bytes: u64,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let options = ServerOptions {
        port: args.port,
        interface: args.iface,
        max_connections: args.max_connections as usize,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        max_request: usize::try_from(args.max_request_bytes)?,
    };
    let mut reactor = Reactor::new()?;
    reactor.handle_signals()?;
    let (port, factory) = serve(&mut reactor, Transforms::standard(), options)?;
    let number = port.get_host().port().unwrap_or_default();
    println!("Serving transforms on port {number}.");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    reactor.run()?;
    let stats = factory.borrow().stats();
    eprintln!(
        "poetry-transform-server: stopped; {} requests answered, {} closed without a reply, {} connections refused.",
        stats.answered, stats.refused_requests, stats.refused
    );
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Args = match poetry_cli::parse_args("poetry-transform-server") {
        Ok(args) => args,
        Err(code) => return code,
    };
    let iface = args.iface.clone();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "poetry-transform-server: {}",
                one_line(&e.to_string(), &[&iface])
            );
            ExitCode::from(2)
        }
    }
}
