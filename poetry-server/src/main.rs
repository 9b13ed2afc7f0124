//! `poetry-server`: serves a poem, slowly or fast, as the Twisted Introduction's
//! `slowpoetry.py` and `fastpoetry.py` do.
//!
//! ```text
//! cargo run -p poetry-server -- --port 10000 poems/lighthouse.txt
//! nc 127.0.0.1 10000
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use poetry_cli::{escape_controls, one_line, parse_seconds};
use poetry_server::{serve_on_threads, SendBuffer, ServerError, ServerOptions};

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
    /// Most connections served at once, over every reactor; more are refused with a
    /// reset.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Close a connection that makes no progress for this many seconds (in slow mode at
    /// least two delays); 0 never does.
    #[arg(long, default_value = "120", value_parser = parse_seconds, allow_hyphen_values = true)]
    idle_timeout: Duration,
    /// In fast mode, write large files from a mapping of the file (one copy, by the
    /// kernel) instead of sending them with sendfile (zero copy).
    #[arg(long)]
    no_sendfile: bool,
    /// Reactor threads sharing the port (SO_REUSEPORT); connections are spread
    /// across them, --max-connections caps them all together.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    reactors: u16,
    /// Kernel send buffer per connection: `auto` (--max-connections clients that
    /// never read fit in half the kernel's TCP memory; a few bulk downloads at once
    /// keep the kernel's autotuning, the rest are bounded), `kernel` (the kernel's
    /// autotuning for all, unbounded), or a number of bytes (SO_SNDBUF for all).
    #[arg(long, default_value = "auto", value_parser = parse_send_buffer)]
    send_buffer: SendBuffer,
    /// Congestion control for every connection (TCP_CONGESTION, e.g. reno or cubic);
    /// the system's default if absent.
    #[arg(long, value_name = "NAME")]
    congestion_control: Option<String>,
}

fn parse_send_buffer(text: &str) -> Result<SendBuffer, String> {
    match text {
        "auto" => Ok(SendBuffer::Budgeted),
        "kernel" => Ok(SendBuffer::Kernel),
        _ => match text.parse::<usize>() {
            Ok(bytes @ 4096..=268_435_456) => Ok(SendBuffer::Bytes(bytes)),
            _ => Err("expected auto, kernel or a number of bytes from 4096 to 268435456".into()),
        },
    }
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
        send_buffer: args.send_buffer,
        congestion_control: args.congestion_control,
    };
    raise_descriptor_limit(options.max_connections as u64 + 64);
    let stats = serve_on_threads(
        args.poetry_file.as_deref(),
        options,
        args.reactors as usize,
        |name, port| {
            let mut stdout = std::io::stdout().lock();
            let written = writeln!(stdout, "Serving {} on port {port}.", escape_controls(name))
                .and_then(|()| stdout.flush());
            if let Err(e) = written {
                // No one reads the status line; serving goes on.
                say(&format!("poetry-server: cannot write the status line: {e}"));
            }
        },
    )?;
    say(&format!(
        "poetry-server: stopped; {} poems sent whole, {} sends cut short, {} connections refused.",
        stats.completed, stats.interrupted, stats.refused
    ));
    Ok(())
}

/// One line on standard error, if it can be written.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
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
            say(&format!(
                "poetry-server: {}",
                one_line(&e.to_string(), &values)
            ));
            ExitCode::from(2)
        }
    }
}
