//! `stdio-pass < IN > OUT`: [`layered_bench::Pass`] on standard input and output
//! (`standard_io`), `cat` through the layers. Exits 0 once the input's end is reached
//! and everything is written; 1, with one line, if the streams broke; 2 for arguments
//! (it takes none).

use std::process::ExitCode;

use layered_bench::Pass;
use protocol::reactor::Reactor;
use protocol::transport::PipeStream;
use protocol::{for_protocol, standard_io};

fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("stdio-pass: usage: stdio-pass < IN > OUT (no arguments)");
        return ExitCode::from(2);
    }
    match pass() {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(reason)) => {
            eprintln!("stdio-pass: {reason}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("stdio-pass: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the pass-through to its end: `None` for a clean end, else how it ended.
fn pass() -> Result<Option<String>, Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    let pass = Pass::default();
    let ended = pass.ended.clone();
    standard_io(
        &mut reactor,
        PipeStream::standard()?,
        pass,
        &for_protocol::<Pass>(),
    )?;
    reactor.run()?;
    let ended = ended.borrow_mut().take();
    Ok(match ended {
        Some(Ok(())) => None,
        Some(Err(reason)) => Some(reason),
        None => Some("the reactor stopped before the streams ended".to_owned()),
    })
}
