//! `raw-mio-server`: the benchmark floor, one thread and one mio loop.
//!
//! ```text
//! raw-mio-server poetry --port 0 poem.txt
//! raw-mio-server poetry --port 0 --sendfile poem.txt
//! raw-mio-server echo --port 0
//! raw-mio-server udp-echo --port 0
//! raw-mio-server bare --port 0 poem.txt          # no event loop: sendfile, corked
//! raw-mio-server bare --port 0 --pread poem.txt  # no event loop: pread + write
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
use raw_mio_server::{bind_bare, raise_fd_limit, serve_bare, BareMode, Mode, Server, UdpEcho};

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
    /// The bare reference: no event loop, one client at a time, blocking calls.
    Bare {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long)]
        port: u16,
        /// pread into one 1 MiB buffer and write it, instead of sendfile in 4 MiB
        /// asks with TCP_CORK.
        #[arg(long)]
        pread: bool,
        /// The poem.
        file: PathBuf,
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
        ModeArg::Bare { port, pread, file } => return bare(port, pread, &file),
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

fn bare(port: u16, pread: bool, file: &std::path::Path) -> Result<(), String> {
    let open = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = bind_bare(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read bound address: {e}"))?
        .port();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (mode, what) = if pread {
        (BareMode::Pread, "bare poetry (pread)")
    } else {
        (BareMode::Sendfile, "bare poetry (sendfile)")
    };
    announce(what, port)?;
    // The loop blocks in its calls: a signal, on its own thread, ends the process
    // cleanly (nothing is left to flush).
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(0);
        }
    });
    serve_bare(&listener, &open, mode).map_err(|e| format!("accept failed: {e}"))
}

/// The start line the harness waits for: `Serving WHAT on port PORT.`, flushed.
fn announce(what: &str, port: u16) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "Serving {what} on port {port}.")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
