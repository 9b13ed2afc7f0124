//! cargo run -p poetry-client --example get_poetry_simple -- ADDRESS...
//!
//! The Twisted Introduction's client 2.1 (`twisted-client-2/get-poetry-simple.py`,
//! Part 5), short enough to set beside the tutorial's listing: a protocol that collects
//! a poem until the server closes, one factory that counts the poems still to come, and
//! the poems printed on stdout in the order they finished — no task numbers, no
//! headers. ADDRESS is PORT, HOST:PORT or [IPV6]:PORT.
//!
//! One change from the listing: a poem whose connection broke (a reset, an error) is
//! not printed as if whole; a line on stderr says so and the exit status is 1.

use std::io::Write;
use std::process::ExitCode;

use poetry_client::parse_address;
use protocol::{
    connect_tcp, Address, ClientFactory, ConnectError, ConnectOptions, Connector, Context,
    DisconnectReason, Factory, Protocol, Shared,
};
use reactor::Reactor;

/// Collects one poem (the tutorial's `PoetryProtocol`).
#[derive(Debug, Default)]
struct PoetryProtocol {
    poem: Vec<u8>,
}

impl Protocol for PoetryProtocol {
    type Factory = PoetryClientFactory;

    fn data_received(&mut self, _cx: &mut Context<'_, Self>, data: &[u8]) {
        self.poem.extend_from_slice(data);
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        // Only a clean close means the whole poem arrived.
        let poem = if reason.is_clean() {
            Some(std::mem::take(&mut self.poem))
        } else {
            eprintln!("Poem from {} is incomplete: {reason}", cx.get_peer());
            None
        };
        cx.factory().poem_finished(cx.reactor(), poem);
    }
}

/// Counts the poems still to come and keeps the finished ones, in finishing order.
#[derive(Debug)]
struct PoetryClientFactory {
    poetry_count: usize,
    poems: Vec<Vec<u8>>,
    failed: bool,
}

impl PoetryClientFactory {
    fn poem_finished(&mut self, reactor: &mut Reactor, poem: Option<Vec<u8>>) {
        match poem {
            Some(poem) => self.poems.push(poem),
            None => self.failed = true,
        }
        self.poetry_count -= 1;
        if self.poetry_count == 0 {
            reactor.stop();
        }
    }
}

impl Factory for PoetryClientFactory {
    type Protocol = PoetryProtocol;

    fn build_protocol(&mut self, _peer: &Address) -> Option<PoetryProtocol> {
        Some(PoetryProtocol::default())
    }
}

impl ClientFactory for PoetryClientFactory {
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
        self.poem_finished(reactor, None);
    }
}

fn main() -> ExitCode {
    let mut addresses = Vec::new();
    for arg in std::env::args().skip(1) {
        match parse_address(&arg) {
            Ok(address) => addresses.push(address),
            Err(e) => {
                eprintln!("get_poetry_simple: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if addresses.is_empty() {
        eprintln!("usage: get_poetry_simple ADDRESS...  (PORT, HOST:PORT or [IPV6]:PORT)");
        return ExitCode::from(2);
    }
    let mut reactor = match Reactor::new() {
        Ok(reactor) => reactor,
        Err(e) => {
            eprintln!("get_poetry_simple: {e}");
            return ExitCode::FAILURE;
        }
    };
    let factory = Shared::new(PoetryClientFactory {
        poetry_count: addresses.len(),
        poems: Vec::new(),
        failed: false,
    });
    for address in &addresses {
        let options = ConnectOptions::default();
        connect_tcp(
            &mut reactor,
            &address.host,
            address.port,
            &factory,
            &options,
        );
    }
    if let Err(e) = reactor.run() {
        eprintln!("get_poetry_simple: {e}");
        return ExitCode::FAILURE;
    }
    // The tutorial's `report`: each poem, then a newline, as Python's print does.
    let factory = factory.borrow();
    let mut out = std::io::stdout().lock();
    for poem in &factory.poems {
        if let Err(e) = out.write_all(poem).and_then(|()| out.write_all(b"\n")) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("get_poetry_simple: writing the poems to stdout: {e}");
            }
            return ExitCode::FAILURE;
        }
    }
    if factory.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
