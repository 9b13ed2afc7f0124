//! cargo run --manifest-path examples/protocol-crate-template/Cargo.toml --bin upper-echo-server -- [PORT]
//!
//! Serves the uppercase line echo on 127.0.0.1 (port 0, the default, picks a free
//! one) until interrupted. Try it with `nc -C 127.0.0.1 PORT`, or with
//! `upper-echo-client PORT hello world`.

use std::process::ExitCode;

use protocol::prelude::*;
use upper_echo::server_factory;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let port = match (args.next(), args.next()) {
        (None, _) => 0,
        (Some(port), None) => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => return usage(&format!("not a port number: {port:?}")),
        },
        (Some(_), Some(extra)) => return usage(&format!("unexpected argument {extra:?}")),
    };
    match serve(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upper-echo-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("upper-echo-server: {problem} (usage: upper-echo-server [PORT])");
    ExitCode::from(2)
}

fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    let factory = server_factory();
    let port = listen_tcp(&mut reactor, port, &factory, &TcpListenOptions::default())?;
    let number = port.get_host().port().unwrap_or(0);
    println!("Serving the uppercase echo on port {number}.");
    reactor.handle_signals()?;
    reactor.run()?;
    Ok(())
}
