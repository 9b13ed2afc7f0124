//! cargo run -p poetry-client --example get_poetry_stack [-- ADDRESS...]
//!
//! The Twisted Introduction's `get-poetry-stack.py` (Part 5) and its exercise 2: a
//! poetry protocol that prints the call stack at its first `data_received` and again
//! at `connection_lost`, then stops the reactor once every connection has ended.
//!
//! Read the stacks from the bottom up: `main` calls `Reactor::run`, the reactor
//! dispatches a ready descriptor, the transport's `do_read` reads the socket and hands
//! the bytes (or the end of file) to the protocol handler, which calls our protocol.
//! Our code never calls the reactor's loop; the loop calls our code.
//!
//! With no ADDRESS (PORT, HOST:PORT or [IPV6]:PORT) it first starts a poetry server on
//! the same reactor, on a free loopback port, so it runs alone. The stacks are
//! captured with `Backtrace::force_capture`, so `RUST_BACKTRACE` need not be set; a
//! debug build gives file and line numbers.

use std::backtrace::Backtrace;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use poetry_client::{parse_address, PoemAddress};
use poetry_server::{serve, Poem, ServerOptions};
use protocol::{
    connect_tcp, Address, ClientFactory, ConnectError, ConnectOptions, Connector, Context,
    DisconnectReason, Factory, Protocol, Shared,
};
use reactor::Reactor;

/// Prints a line on stdout. Unlike `println!` it does not panic when stdout is closed
/// (`| head`): a panic inside a protocol callback would close that connection instead,
/// and the reactor would never hear that the last one ended.
fn say(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Prints the stack at the first bytes and at the end of its connection.
#[derive(Debug, Default)]
struct StackProtocol {
    received: usize,
}

impl Protocol for StackProtocol {
    type Factory = StackFactory;

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        if self.received == 0 {
            say(format_args!(
                "The stack at the first data_received ({} bytes from {}):\n{}",
                data.len(),
                cx.get_peer(),
                Backtrace::force_capture()
            ));
        }
        self.received += data.len();
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        say(format_args!(
            "The stack at connection_lost ({} bytes from {}; {reason}):\n{}",
            self.received,
            cx.get_peer(),
            Backtrace::force_capture()
        ));
        cx.factory().one_done(cx.reactor());
    }
}

/// Counts the connections still to end; stops the reactor after the last.
#[derive(Debug)]
struct StackFactory {
    remaining: usize,
}

impl StackFactory {
    fn one_done(&mut self, reactor: &mut Reactor) {
        self.remaining -= 1;
        if self.remaining == 0 {
            reactor.stop();
        }
    }
}

impl Factory for StackFactory {
    type Protocol = StackProtocol;

    fn build_protocol(&mut self, _peer: &Address) -> Option<StackProtocol> {
        Some(StackProtocol::default())
    }
}

impl ClientFactory for StackFactory {
    type Data = ();
    fn client_connection_failed(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        eprintln!(
            "Failed to connect to: {} ({reason})",
            connector.get_destination()
        );
        self.one_done(reactor);
    }
}

fn main() -> ExitCode {
    env_logger::init();
    let mut addresses: Vec<PoemAddress> = Vec::new();
    for arg in std::env::args().skip(1) {
        match parse_address(&arg) {
            Ok(address) => addresses.push(address),
            Err(e) => {
                eprintln!("get_poetry_stack: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match run(addresses) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("get_poetry_stack: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut addresses: Vec<PoemAddress>) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    if addresses.is_empty() {
        let options = ServerOptions {
            delay: Duration::ZERO,
            ..ServerOptions::default()
        };
        let (port, _) = serve(&mut reactor, Poem::default_poem(), options)?;
        let port = port.get_host().port().unwrap_or(0);
        say(format_args!(
            "Serving the default poem on port {port}, on this same reactor."
        ));
        addresses.push(PoemAddress {
            host: "127.0.0.1".to_owned(),
            port,
        });
    }
    let factory = Shared::new(StackFactory {
        remaining: addresses.len(),
    });
    for address in &addresses {
        connect_tcp(
            &mut reactor,
            &address.host,
            address.port,
            &factory,
            &ConnectOptions::default(),
        );
    }
    reactor.run()?;
    Ok(())
}
