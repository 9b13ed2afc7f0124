//! `cargo run -p transport --example echo_handler`
//!
//! An echo server on the transport layer alone: a [`Listener`] on `127.0.0.1` hands
//! each accepted stream to a [`Connection`] whose [`Handler`] writes back whatever
//! arrives. It prints the port it got and how to reach it with `nc`; pass a port
//! (`cargo run -p transport --example echo_handler -- 8000`) to choose one. Ctrl-C
//! stops it cleanly: every open connection is told the reactor shut down.
//! `RUST_LOG=debug` shows connections coming and going.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use reactor::Reactor;
use transport::{
    bind_tcp, Connection, DisconnectReason, Handler, ListenOptions, Listener, Transport,
};

/// Writes back whatever arrives.
struct Echo;

impl Handler for Echo {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        log::info!("{} connected", t.get_peer());
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        t.write(data);
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &DisconnectReason) {
        log::info!("{} gone: {reason}", t.get_peer());
    }
}

fn main() -> ExitCode {
    env_logger::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| format!("bad port {arg:?}: {e}"))?,
        None => 0,
    };
    let mut reactor = Reactor::new()?;
    reactor.handle_signals()?;
    let listener = bind_tcp(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &ListenOptions::default(),
    )?;
    let (_, address) = Listener::start(
        &mut reactor,
        listener,
        Box::new(|reactor: &mut Reactor, stream, peer| {
            if let Err(e) = Connection::start(reactor, stream, peer.clone(), Echo) {
                log::warn!("cannot serve {peer}: {e}");
            }
        }),
    )?;
    let port = address.port().expect("a TCP listener has a port");
    println!("Serving echo on port {port}.");
    println!("Reach it with: nc 127.0.0.1 {port}");
    println!("Stop with Ctrl-C.");
    reactor.run()?;
    println!("Stopped.");
    Ok(())
}
