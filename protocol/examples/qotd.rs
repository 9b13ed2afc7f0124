//! cargo run -p protocol --example qotd -- 8017
//!
//! The Quote of the Day protocol (RFC 865) over UDP and TCP from one program, one
//! port number: a TCP client gets a quote and the connection closes; any UDP datagram
//! gets a quote back as one datagram. The quotes are the lines of `poems/haiku.txt`
//! (compiled in), in turn. The port argument is optional (default 8017; 0 picks a
//! free TCP port and uses the same number for UDP). Try it:
//!
//!     nc 127.0.0.1 8017
//!     echo | nc -u -w1 127.0.0.1 8017

use std::net::SocketAddr;

use protocol::transport::DatagramTransport;
use protocol::{
    listen_tcp, listen_udp, Address, Context, DatagramProtocol, Factory, Protocol, Shared,
    TcpListenOptions, UdpListenOptions,
};
use reactor::Reactor;

/// The poem the quotes come from.
const POEM: &str = include_str!("../../poems/haiku.txt");

/// The quotes and whose turn it is; shared by the TCP factory and the UDP protocol.
#[derive(Debug)]
struct Quotes {
    lines: Vec<&'static str>,
    next: usize,
}

impl Quotes {
    fn next_quote(&mut self) -> String {
        let line = self.lines[self.next % self.lines.len()];
        self.next += 1;
        format!("{line}\r\n")
    }
}

/// TCP: a quote, then close (RFC 865's TCP service).
struct QuoteTcp;

impl Protocol for QuoteTcp {
    type Factory = Quotes;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        let quote = cx.factory().next_quote();
        cx.write(quote.as_bytes());
        cx.lose_connection();
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, _: &[u8]) {}
}

impl Factory for Quotes {
    type Protocol = QuoteTcp;

    fn build_protocol(&mut self, _: &Address) -> Option<QuoteTcp> {
        Some(QuoteTcp)
    }
}

/// UDP: any datagram is answered with a quote (RFC 865's UDP service).
struct QuoteUdp {
    quotes: Shared<Quotes>,
}

impl DatagramProtocol for QuoteUdp {
    fn datagram_received(&mut self, port: &mut DatagramTransport<'_>, _: &[u8], from: SocketAddr) {
        let quote = self.quotes.borrow_mut().next_quote();
        if let Err(e) = port.write(quote.as_bytes(), Some(from)) {
            eprintln!("qotd: cannot answer {from}: {e}");
        }
    }
}

/// Serves quotes until interrupted.
///
/// # Errors
///
/// A bad port argument, or a port that cannot be bound.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("qotd: bad port {arg:?}"))?,
        None => 8017,
    };
    let lines = POEM.lines().filter(|l| !l.trim().is_empty()).collect();
    let quotes = Shared::new(Quotes { lines, next: 0 });
    let mut reactor = Reactor::new()?;
    reactor.handle_signals()?;
    let tcp = listen_tcp(&mut reactor, port, &quotes, &TcpListenOptions::default())?;
    let port = tcp.get_host().port().unwrap_or(port);
    let udp = QuoteUdp {
        quotes: quotes.clone(),
    };
    listen_udp(&mut reactor, port, udp, &UdpListenOptions::default())?;
    println!("Serving quotes on TCP and UDP port {port}.");
    println!("Try: nc 127.0.0.1 {port}   or   echo | nc -u -w1 127.0.0.1 {port}");
    reactor.run()?;
    Ok(())
}
