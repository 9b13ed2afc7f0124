//! cargo run -p protocol --example echo_server -- 8000
//!
//! Twisted's `echoserv.py`: writes back whatever a client sends. The port argument is
//! optional (default 8000; 0 picks a free one). Ctrl-C stops it.

use protocol::{for_protocol, listen_tcp, Context, Protocol, SimpleFactory, TcpListenOptions};

#[derive(Default)]
struct Echo;

impl Protocol for Echo {
    type Factory = SimpleFactory<Self>;

    fn data_received(&mut self, cx: &mut Context<'_, Self>, data: &[u8]) {
        cx.write(data);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let port = std::env::args().nth(1).map_or(Ok(8000), |p| p.parse())?;
    let mut reactor = reactor::Reactor::new()?;
    reactor.handle_signals()?;
    let options = TcpListenOptions::default();
    let listening = listen_tcp(&mut reactor, port, &for_protocol::<Echo>(), &options)?;
    let port = listening.get_host().port().unwrap_or(port);
    println!("Serving echo on port {port}.");
    println!("Try it with: nc 127.0.0.1 {port}");
    reactor.run()?;
    Ok(())
}
