//! `udp-echo-server --port N`: [`layered_bench::UdpEcho`] on 127.0.0.1 (port 0: any
//! free port) through `listen_udp`. Prints `Serving UDP echo on port N.`; SIGTERM or
//! SIGINT stops it (exit 0). Bad arguments: one line, exit 2.

use std::io::Write;
use std::process::ExitCode;

use layered_bench::UdpEcho;
use protocol::reactor::Reactor;
use protocol::UdpListenOptions;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.as_slice() {
        [flag, port] if flag == "--port" => port.parse::<u16>().ok(),
        _ => None,
    };
    let Some(port) = port else {
        eprintln!("udp-echo-server: usage: udp-echo-server --port N");
        return ExitCode::from(2);
    };
    match serve(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp-echo-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    reactor.handle_signals()?;
    // The default interface is 127.0.0.1, as every bench server binds.
    let options = UdpListenOptions::default();
    let listening = protocol::listen_udp(&mut reactor, port, UdpEcho, &options)?;
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "Serving UDP echo on port {}.",
        listening.get_host().port()
    )?;
    stdout.flush()?;
    reactor.run()?;
    Ok(())
}
