//! `tokio-server`: idiomatic tokio poetry and echo servers.
//!
//! ```text
//! tokio-server --runtime multi poetry --port 0 poem.txt
//! tokio-server --runtime current echo --port 0
//! tokio-server --runtime current udp-echo --port 0
//! ```
//!
//! Prints `Serving <what> on port <N>.` once bound, then serves on 127.0.0.1 until
//! SIGTERM or SIGINT.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio_server::{
    listen, raise_fd_limit, runtime, serve_echo, serve_poetry, serve_udp_echo, Flavor,
};

#[derive(Debug, Parser)]
#[command(name = "tokio-server", about = "Idiomatic tokio: poetry and echo.")]
struct Cli {
    /// Which tokio runtime.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Multi, global = true)]
    runtime: RuntimeArg,
    #[command(subcommand)]
    mode: ModeArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeArg {
    /// Multi-threaded, work-stealing runtime.
    Multi,
    /// Current-thread runtime.
    Current,
}

#[derive(Debug, Subcommand)]
enum ModeArg {
    /// Send FILE to every client, then close.
    Poetry {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long)]
        port: u16,
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

/// What the server serves, once set up.
enum Service {
    Poetry(TcpListener, Arc<[u8]>),
    Echo(TcpListener),
    UdpEcho(UdpSocket),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tokio-server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Binds the service the mode asks for on loopback `port`.
async fn bind(port: u16, poem: Option<Arc<[u8]>>, udp: bool) -> Result<Service, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let cannot = |e: std::io::Error| format!("cannot bind {addr}: {e}");
    Ok(match poem {
        _ if udp => Service::UdpEcho(
            UdpSocket::bind(addr)
                .await
                .map_err(|e| format!("cannot bind UDP {addr}: {e}"))?,
        ),
        Some(poem) => Service::Poetry(listen(addr).map_err(cannot)?, poem),
        None => Service::Echo(listen(addr).map_err(cannot)?),
    })
}

/// Prints the start line the bench waits for, `Serving <what> on port <N>.`.
fn announce(service: &Service) -> Result<(), String> {
    let (bound, what) = match service {
        Service::Poetry(listener, _) => (listener.local_addr(), "poetry"),
        Service::Echo(listener) => (listener.local_addr(), "echo"),
        Service::UdpEcho(socket) => (socket.local_addr(), "UDP echo"),
    };
    let port = bound
        .map_err(|e| format!("cannot read bound address: {e}"))?
        .port();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "Serving {what} on port {port}.")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

fn run(cli: Cli) -> Result<(), String> {
    // Best effort: without it we serve fewer idle connections, nothing worse.
    let _ = raise_fd_limit();
    let (port, poem) = match &cli.mode {
        ModeArg::Poetry { port, file } => {
            let poem =
                std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            (*port, Some(Arc::<[u8]>::from(poem)))
        }
        ModeArg::Echo { port } | ModeArg::UdpEcho { port } => (*port, None),
    };
    let udp = matches!(cli.mode, ModeArg::UdpEcho { .. });
    let flavor = match cli.runtime {
        RuntimeArg::Multi => Flavor::Multi,
        RuntimeArg::Current => Flavor::Current,
    };
    let rt = runtime(flavor).map_err(|e| format!("cannot build the runtime: {e}"))?;
    rt.block_on(async move {
        let service = bind(port, poem, udp).await?;
        // Handlers first, so a signal right after the start line is not lost.
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        announce(&service)?;
        let serve = async move {
            match service {
                Service::Poetry(listener, poem) => serve_poetry(listener, poem).await,
                Service::Echo(listener) => serve_echo(listener).await,
                Service::UdpEcho(socket) => serve_udp_echo(socket).await,
            }
        };
        tokio::select! {
            () = serve => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}
