//! cargo run --manifest-path examples/protocol-crate-template/Cargo.toml --bin upper-echo-client -- PORT LINE...
//!
//! Sends each LINE to the uppercase echo server on 127.0.0.1:PORT, then `quit`, and
//! prints the answers, one per line. Exits 1 if the connection fails or breaks.

use std::process::ExitCode;
use std::time::Duration;

use protocol::prelude::*;
use upper_echo::UpperClientFactory;

/// How long the client waits for the whole exchange.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(port) = args.next() else {
        return usage("missing PORT");
    };
    let Ok(port) = port.parse::<u16>() else {
        return usage(&format!("not a port number: {port:?}"));
    };
    let lines: Vec<Vec<u8>> = args.map(String::into_bytes).collect();
    match ask(port, lines) {
        Ok(answers) => {
            for answer in answers {
                println!("{}", String::from_utf8_lossy(&answer));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("upper-echo-client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("upper-echo-client: {problem} (usage: upper-echo-client PORT LINE...)");
    ExitCode::from(2)
}

fn ask(port: u16, lines: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    let factory = Shared::new(UpperClientFactory::new(lines));
    connect_tcp(
        &mut reactor,
        "127.0.0.1",
        port,
        &factory,
        &ConnectOptions::default(),
    );
    reactor.call_later(PATIENCE, |r| r.stop());
    reactor.run()?;
    let factory = factory.borrow();
    match factory.outcome() {
        Some(Ok(())) => Ok(factory.answers().to_vec()),
        Some(Err(why)) => Err(why.clone().into()),
        None => Err(format!("no answer within {PATIENCE:?}").into()),
    }
}
