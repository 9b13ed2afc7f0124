//! cargo run -p protocol --example chat_server -- 8123 [IDLE_SECONDS]
//!
//! A line-based chat server on `LineReceiver` (the chat example of Twisted's
//! documentation): each client picks a name, then every line it sends goes to all the
//! other clients. Who is connected lives in the factory, shared by every connection.
//! Port argument optional (default 8123). Try two terminals with `nc 127.0.0.1 8123`.
//!
//! Bounded, as a server people copy must be: lines are at most 1 KiB; a member that
//! falls more than `MAX_BACKLOG` behind in reading what it is sent is dropped (as IRC
//! servers drop a full send queue) instead of growing the server; a member that has
//! not sent a whole line for IDLE_SECONDS (default 600) is dropped, so slow or silent
//! connections are not held for ever; empty lines are not broadcast.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use protocol::basic::{LineContext, LineProtocol, LineReceiver};
use protocol::{listen_tcp, with_protocol, DisconnectReason, Factory, Shared, TcpListenOptions};
use reactor::{DelayedCall, DescriptorId, Reactor};
use transport::Address;

/// How far a member may fall behind in reading before it is dropped.
const MAX_BACKLOG: usize = 256 * 1024;
/// How long a member may go without sending a whole line: IDLE_SECONDS.
static IDLE: OnceLock<Duration> = OnceLock::new();

/// The shared state: each chatting connection's name.
#[derive(Default)]
struct ChatFactory {
    users: BTreeMap<DescriptorId, String>,
}

impl Factory for ChatFactory {
    type Protocol = LineReceiver<Chat>;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        Some(LineReceiver::new(Chat {
            name: None,
            idle: None,
        }))
    }
}

/// One client: it has no name until its first line.
struct Chat {
    name: Option<String>,
    /// Drops the member when no whole line came for the idle period.
    idle: Option<DelayedCall>,
}

impl Chat {
    /// Sends `line` to every named client but this one. The factory is not borrowed
    /// while writing: a write that fails ends that client, whose `connection_lost`
    /// uses the factory.
    fn broadcast(cx: &mut LineContext<'_, '_, Self>, line: &str) {
        let me = cx.id();
        let others: Vec<DescriptorId> = cx.factory().users.keys().copied().collect();
        for id in others.into_iter().filter(|id| *id != me) {
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
        cx.set_max_write_buffer(Some(MAX_BACKLOG)); // past it: dropped (BufferOverflow)
        let idle = IDLE.get().copied().unwrap_or(Duration::from_secs(600));
        self.idle = Some(cx.call_later(idle, |_, cx| cx.lose_connection()));
        cx.send_line(b"What's your name?");
    }

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        if let (Some(timer), Some(idle)) = (self.idle, IDLE.get()) {
            let _ = timer.reset(cx.reactor(), *idle); // a whole line: not idle
        }
        let text = String::from_utf8_lossy(line)
            .trim_end_matches('\r')
            .to_owned();
        match &self.name {
            Some(_) if text.is_empty() => {}
            Some(name) => Self::broadcast(cx, &format!("<{name}> {text}")),
            None if text.is_empty() || cx.factory().users.values().any(|n| *n == text) => {
                cx.send_line(b"Name taken, please choose another.");
            }
            None => {
                let id = cx.id();
                cx.factory().users.insert(id, text.clone());
                cx.send_line(format!("Welcome, {text}!").as_bytes());
                Self::broadcast(cx, &format!("{text} has joined."));
                self.name = Some(text);
            }
        }
    }

    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, _: &DisconnectReason) {
        if let Some(timer) = self.idle.take() {
            let _ = timer.cancel(cx.reactor());
        }
        if let Some(name) = &self.name {
            let id = cx.id();
            cx.factory().users.remove(&id);
            Self::broadcast(cx, &format!("{name} has left."));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let port = args.next().map_or(Ok(8123), |p| p.parse())?;
    let idle = args.next().map_or(Ok(600.0), |s| s.parse::<f64>())?;
    let idle = Duration::try_from_secs_f64(idle)?;
    IDLE.get_or_init(|| idle);
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
