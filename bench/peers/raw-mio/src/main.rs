//! `raw-mio-server`: the benchmark floor, one thread and one mio loop.
//!
//! ```text
//! raw-mio-server poetry --port 0 poem.txt
//! raw-mio-server poetry --port 0 --sendfile poem.txt
//! raw-mio-server echo --port 0
//! raw-mio-server udp-echo --port 0
//! ```
//!
//! Prints `Serving <what> on port <N>.` once bound, then serves on 127.0.0.1 until
//! SIGTERM or SIGINT.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raw_mio_server::{raise_fd_limit, Mode, Server, UdpEcho};

#[derive(Debug, Parser)]
#[command(
    name = "raw-mio-server",
    about = "One thread, one mio loop: poetry, echo and UDP echo."
)]
struct Cli {
    #[command(subcommand)]
    mode: ModeArg,
}

#[derive(Debug, Subcommand)]
enum ModeArg {
    /// Send FILE to every client, then close.
    Poetry {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long)]
        port: u16,
        /// Send with sendfile(2) from the open file instead of from memory.
        #[arg(long)]
        sendfile: bool,
        /// The poem.
        file: PathBuf,
    },
    /// Write back whatever is read.
    Echo {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long)]
        port: u16,
    },
    /// Send every UDP datagram back to its sender.
    UdpEcho {
        /// UDP port on 127.0.0.1 (0: any free port).
        #[arg(long)]
        port: u16,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("raw-mio-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    // Best effort: without it we serve fewer idle connections, nothing worse.
    let _ = raise_fd_limit();
    let (port, mode, what) = match cli.mode {
        ModeArg::Poetry {
            port,
            sendfile: false,
            file,
        } => {
            let poem =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            (port, Mode::Poetry(poem), "poetry")
        }
        ModeArg::Poetry {
            port,
            sendfile: true,
            file,
        } => {
            let open =
                File::open(&file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
            (port, Mode::Sendfile(open), "poetry (sendfile)")
        }
        ModeArg::Echo { port } => (port, Mode::Echo, "echo"),
        ModeArg::UdpEcho { port } => return udp_echo(port),
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut server = Server::bind(addr, mode).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    server
        .stop_on_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let port = server
        .local_addr()
        .map_err(|e| format!("cannot read bound address: {e}"))?
        .port();
    announce(what, port)?;
    server.run().map_err(|e| format!("poll failed: {e}"))
}

fn udp_echo(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut server = UdpEcho::bind(addr).map_err(|e| format!("cannot bind UDP {addr}: {e}"))?;
    server
        .stop_on_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let port = server
        .local_addr()
        .map_err(|e| format!("cannot read bound address: {e}"))?
        .port();
    announce("UDP echo", port)?;
    server.run().map_err(|e| format!("udp echo failed: {e}"))
}

/// The start line the harness waits for: `Serving WHAT on port PORT.`, flushed.
fn announce(what: &str, port: u16) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "Serving {what} on port {port}.")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
