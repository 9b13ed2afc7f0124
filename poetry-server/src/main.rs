//! `poetry-server`: serves a poem, slowly or fast, as the Twisted Introduction's
//! `slowpoetry.py` and `fastpoetry.py` do.
//!
//! ```text
//! cargo run -p poetry-server -- --port 10000 poems/lighthouse.txt
//! nc 127.0.0.1 10000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use poetry_cli::{one_line, parse_seconds};
use poetry_server::{serve_on_threads, ServerError, ServerOptions};

/// Serves a poem to every client that connects, then closes the connection.
#[derive(Debug, Parser)]
#[command(name = "poetry-server", version, allow_negative_numbers = true)]
struct Args {
    /// The poem to serve (default: a short poem compiled in).
    poetry_file: Option<PathBuf>,
    /// The port to listen on; 0 or absent picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The interface to listen on: loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    iface: String,
    /// Bytes per send (slow mode).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    num_bytes: u32,
    /// Seconds between sends; 0 is the fast server (as fast as the client reads).
    #[arg(long, default_value = "0.7", value_parser = parse_seconds, allow_hyphen_values = true)]
    delay: Duration,
    /// Most connections served at once; more are refused with a clean close.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Close a connection that makes no progress for this many seconds (in slow mode at
    /// least two delays); 0 never does.
    #[arg(long, default_value = "120", value_parser = parse_seconds, allow_hyphen_values = true)]
    idle_timeout: Duration,
    /// In fast mode, copy large files through a buffer instead of sending them with
    /// sendfile (zero copy).
    #[arg(long)]
    no_sendfile: bool,
    /// Reactor threads sharing the port (SO_REUSEPORT); connections are spread
    /// across them and --max-connections is shared out.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    reactors: u16,
}

/// Lets this process hold as many descriptors as it may serve connections.
fn raise_descriptor_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn run(args: Args) -> Result<(), ServerError> {
    let options = ServerOptions {
        port: args.port,
        interface: args.iface,
        num_bytes: args.num_bytes as usize,
        delay: args.delay,
        max_connections: args.max_connections as usize,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        sendfile: !args.no_sendfile,
        reuse_port: false,
    };
    raise_descriptor_limit(options.max_connections as u64 + 64);
    let stats = serve_on_threads(
        args.poetry_file.as_deref(),
        options,
        args.reactors as usize,
        |name, port| {
            println!("Serving {name} on port {port}.");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        },
    )?;
    eprintln!(
        "poetry-server: stopped; {} poems sent whole, {} sends cut short, {} connections refused.",
        stats.completed, stats.interrupted, stats.refused
    );
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Args = match poetry_cli::parse_args("poetry-server") {
        Ok(args) => args,
        Err(code) => return code,
    };
    // The error may quote these whole.
    let quoted = [
        args.iface.clone(),
        args.poetry_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    ];
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let values = [quoted[0].as_str(), quoted[1].as_str()];
            eprintln!("poetry-server: {}", one_line(&e.to_string(), &values));
            ExitCode::from(2)
        }
    }
}
