//! printf 'a\nb\n' | cargo run -q -p protocol --example stdio_lines
//!
//! A `LineReceiver` on standard input and output (Twisted's `StandardIO`): numbers
//! each line it reads (`1: a`, `2: b`) and ends when standard input does, after
//! everything it wrote has gone out. Works with stdin and stdout as pipes, regular
//! files or a terminal (type lines, end with Ctrl-D). Exits 1 with one line on stderr
//! if the streams broke.

use std::sync::atomic::{AtomicBool, Ordering};

use protocol::basic::{LineContext, LineProtocol, LineReceiver};
use protocol::{for_protocol, standard_io, DisconnectReason, SimpleFactory};
use reactor::Reactor;
use transport::PipeStream;

/// Whether the connection ended cleanly; read by `main` after the reactor stops.
static CLEAN: AtomicBool = AtomicBool::new(false);

/// Numbers the lines it reads.
#[derive(Debug, Default)]
pub struct Numberer {
    count: u64,
}

impl LineProtocol for Numberer {
    type Factory = SimpleFactory<LineReceiver<Self>>;
    const DELIMITER: &'static [u8] = b"\n";

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        self.count += 1;
        let mut numbered = format!("{}: ", self.count).into_bytes();
        numbered.extend_from_slice(line);
        cx.send_line(&numbered);
    }

    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, reason: &DisconnectReason) {
        if reason.is_clean() {
            CLEAN.store(true, Ordering::Relaxed);
        } else {
            eprintln!("stdio_lines: {reason}");
        }
        cx.reactor().stop();
    }
}

/// Runs the numberer on this process's standard input and output.
///
/// # Errors
///
/// If the reactor or the standard streams cannot be set up.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    let protocol = LineReceiver::new(Numberer::default());
    standard_io(
        &mut reactor,
        PipeStream::standard()?,
        protocol,
        &for_protocol(),
    )?;
    reactor.run()?;
    if !CLEAN.load(Ordering::Relaxed) {
        std::process::exit(1);
    }
    Ok(())
}
