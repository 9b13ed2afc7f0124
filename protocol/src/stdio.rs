//! [`standard_io`]: a protocol on standard input and output (Twisted's
//! `twisted.internet.stdio.StandardIO`).

use reactor::{DescriptorId, Reactor};
use transport::{start_stdio, PipeStream, TransportError};

use crate::handler::ProtocolHandler;
use crate::protocol::Protocol;
use crate::shared::Shared;

/// Connects `protocol` (built by `factory`) to `stream`, usually
/// [`PipeStream::standard`]: what arrives on standard input is `data_received`,
/// `write` goes to standard output, and the input's end of file is
/// [`Protocol::read_connection_lost`] (the default ends the connection once everything
/// written has gone out; return `EofAction::KeepWriting` to go on writing). The same
/// protocol runs unchanged over TCP, a Unix socket or a child's pipes.
///
/// Standard input and output keep their flags (no `O_NONBLOCK` on a descriptor the
/// shell and the rest of a pipeline share); a regular file works as either; what is
/// still buffered when the reactor shuts down is written out before it returns. See
/// [`PipeStream`] for how.
///
/// # Errors
///
/// [`TransportError::Reactor`] if the reactor cannot take the descriptors.
///
/// # Examples
///
/// `protocol/examples/stdio_lines.rs` numbers the lines it reads:
///
/// ```no_run
/// use protocol::basic::{LineContext, LineProtocol, LineReceiver};
/// use protocol::{for_protocol, standard_io, SimpleFactory};
/// use transport::PipeStream;
///
/// #[derive(Default)]
/// struct Shout;
/// impl LineProtocol for Shout {
///     type Factory = SimpleFactory<LineReceiver<Self>>;
///     const DELIMITER: &'static [u8] = b"\n";
///     fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
///         cx.send_line(&line.to_ascii_uppercase());
///     }
///     fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, _: &protocol::DisconnectReason) {
///         cx.reactor().stop();
///     }
/// }
///
/// let mut reactor = reactor::Reactor::new()?;
/// standard_io(&mut reactor, PipeStream::standard()?, LineReceiver::new(Shout), &for_protocol())?;
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "StandardIO")]
pub fn standard_io<P: Protocol>(
    reactor: &mut Reactor,
    stream: PipeStream,
    protocol: P,
    factory: &Shared<P::Factory>,
) -> Result<DescriptorId, TransportError> {
    start_stdio(
        reactor,
        stream,
        ProtocolHandler::new(protocol, factory.clone()),
    )
}
