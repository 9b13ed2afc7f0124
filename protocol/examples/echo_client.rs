//! cargo run -p protocol --example echo_client -- 8000
//!
//! Twisted's `echoclient.py`: connects to the echo server on 127.0.0.1 (port
//! argument optional, default 8000), sends a line, prints what comes back, and stops.
//! Start `echo_server` first.

use std::process::ExitCode;

use protocol::basic::{LineContext, LineProtocol, LineReceiver};
use protocol::{
    connect_tcp, ClientFactory, ConnectError, ConnectOptions, Connector, DisconnectReason, Factory,
    Shared,
};
use reactor::Reactor;
use transport::Address;

const MESSAGE: &[u8] = b"hello, world!";

struct EchoClient;

impl LineProtocol for EchoClient {
    type Factory = EchoClientFactory;

    fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        cx.send_line(MESSAGE);
    }

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        println!("Server said: {}", String::from_utf8_lossy(line));
        cx.factory().echoed = line == MESSAGE;
        cx.lose_connection();
    }
}

#[derive(Default)]
struct EchoClientFactory {
    echoed: bool,
}

impl Factory for EchoClientFactory {
    type Protocol = LineReceiver<EchoClient>;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        Some(LineReceiver::new(EchoClient))
    }
}

impl ClientFactory for EchoClientFactory {
    type Data = ();
    fn client_connection_failed(
        &mut self,
        r: &mut Reactor,
        _: &Connector<Self>,
        why: &ConnectError,
    ) {
        println!("Connection failed ({why}) - goodbye!");
        r.stop();
    }

    fn client_connection_lost(
        &mut self,
        r: &mut Reactor,
        _: &Connector<Self>,
        _: &DisconnectReason,
    ) {
        println!("Connection lost - goodbye!");
        r.stop();
    }
}

fn main() -> ExitCode {
    env_logger::init();
    let port = match std::env::args()
        .nth(1)
        .map_or(Ok(8000), |p| p.parse::<u16>())
    {
        Ok(port) => port,
        Err(e) => {
            eprintln!("echo_client: bad port: {e}");
            return ExitCode::FAILURE;
        }
    };
    let factory = Shared::new(EchoClientFactory::default());
    let run = Reactor::new().and_then(|mut reactor| {
        connect_tcp(
            &mut reactor,
            "127.0.0.1",
            port,
            &factory,
            &ConnectOptions::default(),
        );
        reactor.run()
    });
    if let Err(e) = run {
        eprintln!("echo_client: {e}");
        return ExitCode::FAILURE;
    }
    if factory.borrow().echoed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
