//! An uppercase line echo: the template for a protocol crate of your own.
//!
//! [`UpperEcho`] answers each line with the same line in upper case and hangs up on
//! `quit`; [`UpperClientFactory`] sends lines to such a server and collects the
//! answers. Both are [`LineReceiver`]s (Twisted's `twisted.protocols.basic.LineReceiver`):
//! the wrapper cuts the byte stream into lines, the protocols only see lines.
//!
//! `docs/writing-a-protocol-crate.md` in the twistier repository builds this crate
//! step by step.
//!
//! # Example
//!
//! ```
//! use protocol::testing::ProtocolTest;
//! use protocol::basic::LineReceiver;
//! use upper_echo::{server_factory, UpperEcho};
//!
//! let mut test = ProtocolTest::new(LineReceiver::new(UpperEcho), server_factory());
//! test.feed(b"hello\r\n");
//! assert_eq!(test.take_written(), b"HELLO\r\n");
//! ```

use protocol::basic::{LineContext, LineProtocol, LineReceiver};
use protocol::prelude::*;

/// What the client sends last; the server hangs up when it reads it.
pub const QUIT: &[u8] = b"quit";

/// The server's protocol: each line back in upper case; `quit` ends the connection.
#[derive(Debug, Default)]
pub struct UpperEcho;

/// The server's factory: one [`UpperEcho`] per connection, nothing shared.
pub type UpperEchoFactory = SimpleFactory<LineReceiver<UpperEcho>>;

impl LineProtocol for UpperEcho {
    // The factory builds the *wrapper*, `LineReceiver<UpperEcho>`, not `UpperEcho`.
    type Factory = UpperEchoFactory;

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        if line == QUIT {
            cx.lose_connection();
        } else {
            cx.send_line(&line.to_ascii_uppercase());
        }
    }
}

/// A factory for the server, ready for [`listen_tcp`].
pub fn server_factory() -> Shared<UpperEchoFactory> {
    for_protocol()
}

/// The client's protocol: sends the factory's lines, then `quit`, and collects the
/// answers until the server hangs up.
#[derive(Debug, Default)]
pub struct UpperClient {
    answers: Vec<Vec<u8>>,
}

impl LineProtocol for UpperClient {
    type Factory = UpperClientFactory;

    fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        let lines = cx.factory().lines.clone();
        for line in &lines {
            cx.send_line(line);
        }
        cx.send_line(QUIT);
    }

    fn line_received(&mut self, _cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        self.answers.push(line.to_vec());
    }

    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, reason: &DisconnectReason) {
        let answers = std::mem::take(&mut self.answers);
        let clean = reason.is_clean();
        cx.factory().finish(answers, clean);
        cx.reactor().stop();
    }
}

/// The client's factory: the lines to send, and what came back.
#[derive(Debug, Default)]
pub struct UpperClientFactory {
    lines: Vec<Vec<u8>>,
    answers: Vec<Vec<u8>>,
    outcome: Option<Result<(), String>>,
}

impl UpperClientFactory {
    /// A factory whose connection will send `lines`, one per line.
    pub fn new(lines: Vec<Vec<u8>>) -> Self {
        UpperClientFactory {
            lines,
            ..UpperClientFactory::default()
        }
    }

    /// The answers received, in order.
    pub fn answers(&self) -> &[Vec<u8>] {
        &self.answers
    }

    /// `None` while the connection runs; then `Ok` if the server answered and closed
    /// cleanly, or `Err` saying why not.
    pub fn outcome(&self) -> Option<&Result<(), String>> {
        self.outcome.as_ref()
    }

    fn finish(&mut self, answers: Vec<Vec<u8>>, clean: bool) {
        self.answers = answers;
        self.outcome = Some(if clean {
            Ok(())
        } else {
            Err("the connection broke before the server closed it".to_owned())
        });
    }
}

impl Factory for UpperClientFactory {
    type Protocol = LineReceiver<UpperClient>;

    fn build_protocol(&mut self, _peer: &Address) -> Option<LineReceiver<UpperClient>> {
        Some(LineReceiver::new(UpperClient::default()))
    }
}

impl ClientFactory for UpperClientFactory {
    type Data = ();

    fn client_connection_failed(
        &mut self,
        reactor: &mut Reactor,
        connector: &Connector<Self>,
        reason: &ConnectError,
    ) {
        self.outcome = Some(Err(format!(
            "cannot connect to {}: {reason}",
            connector.get_destination()
        )));
        reactor.stop();
    }
}
