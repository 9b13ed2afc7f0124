//! cargo run -p protocol --example chat_server -- 8123
//!
//! A line-based chat server on `LineReceiver` (the chat example of Twisted's
//! documentation): each client picks a name, then every line it sends goes to all the
//! other clients. Who is connected lives in the factory, shared by every connection.
//! Port argument optional (default 8123). Try two terminals with `nc 127.0.0.1 8123`.

use std::collections::BTreeMap;

use protocol::basic::{LineContext, LineProtocol, LineReceiver};
use protocol::{listen_tcp, with_protocol, DisconnectReason, Factory, Shared, TcpListenOptions};
use reactor::{DescriptorId, Reactor};
use transport::Address;

/// The shared state: each chatting connection's name.
#[derive(Default)]
struct ChatFactory {
    users: BTreeMap<DescriptorId, String>,
}

impl Factory for ChatFactory {
    type Protocol = LineReceiver<Chat>;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        Some(LineReceiver::new(Chat { name: None }))
    }
}

/// One client: it has no name until its first line.
struct Chat {
    name: Option<String>,
}

impl Chat {
    /// Sends `line` to every named client but this one. The factory is not borrowed
    /// while writing: a write that fails ends that client, whose `connection_lost`
    /// uses the factory.
    fn broadcast(cx: &mut LineContext<'_, '_, Self>, line: &str) {
        let me = cx.id();
        let others: Vec<DescriptorId> = cx.factory().users.keys().copied().collect();
        for id in others.into_iter().filter(|id| Some(*id) != me) {
            with_protocol::<LineReceiver<Chat>, _>(cx.reactor(), id, |receiver, cx| {
                receiver.with_context(cx, |_, cx| cx.send_line(line.as_bytes()))
            });
        }
    }
}

impl LineProtocol for Chat {
    type Factory = ChatFactory;
    const DELIMITER: &'static [u8] = b"\n";
    const MAX_LENGTH: usize = 1024;

    fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        cx.send_line(b"What's your name?");
    }

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        let text = String::from_utf8_lossy(line)
            .trim_end_matches('\r')
            .to_owned();
        match &self.name {
            Some(name) => Self::broadcast(cx, &format!("<{name}> {text}")),
            None if text.is_empty() || cx.factory().users.values().any(|n| *n == text) => {
                cx.send_line(b"Name taken, please choose another.");
            }
            None => {
                let id = cx.id().expect("an open connection has an id");
                cx.factory().users.insert(id, text.clone());
                cx.send_line(format!("Welcome, {text}!").as_bytes());
                Self::broadcast(cx, &format!("{text} has joined."));
                self.name = Some(text);
            }
        }
    }

    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, _: &DisconnectReason) {
        if let (Some(name), Some(id)) = (&self.name, cx.id()) {
            cx.factory().users.remove(&id);
            Self::broadcast(cx, &format!("{name} has left."));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let port = std::env::args().nth(1).map_or(Ok(8123), |p| p.parse())?;
    let mut reactor = Reactor::new()?;
    reactor.handle_signals()?;
    let factory = Shared::new(ChatFactory::default());
    let listening = listen_tcp(&mut reactor, port, &factory, &TcpListenOptions::default())?;
    let port = listening.get_host().port().unwrap_or(port);
    println!("Chat server on port {port}.");
    println!("Try it with: nc 127.0.0.1 {port}");
    reactor.run()?;
    Ok(())
}
