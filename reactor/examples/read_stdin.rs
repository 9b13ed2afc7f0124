//! echo hi | cargo run -p reactor --example read_stdin
//!
//! A descriptor of our own: reads standard input (a pipe or a terminal) whenever the
//! reactor says it is readable, prints how many bytes each read got, and stops the
//! reactor at end of file. The tutorial's `IReadDescriptor` client in miniature.
//!
//! Try also `cat /usr/share/dict/words | cargo run -p reactor --example read_stdin`
//! (big input: see the per-turn budget at work), or run it at a terminal and type
//! lines, ending with Ctrl-D (or Ctrl-C). A regular file redirected with `<` does not
//! work: the operating system's poller refuses files, which are always "ready".

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::process::ExitCode;

use reactor::mio::unix::pipe::Receiver;
use reactor::{Descriptor, DescriptorId, IoStatus, LostReason, Reactor};

/// Reads per turn before giving the rest of the loop a go: if more is waiting, the
/// descriptor answers `Ready` and the reactor calls it again on its next turn.
const READS_PER_TURN: usize = 4;

struct StdinReader {
    stdin: Receiver,
    reads: usize,
    total: usize,
}

impl StdinReader {
    fn new() -> io::Result<Self> {
        // A duplicate of fd 0, so the reactor owns a descriptor of its own to close.
        let stdin = Receiver::from(io::stdin().as_fd().try_clone_to_owned()?);
        // Non-blocking, as every source a reactor polls must be. The flag belongs to
        // the open file, shared with fd 0 (and with the shell, at a terminal), so Drop
        // puts it back.
        stdin.set_nonblocking(true)?;
        Ok(StdinReader {
            stdin,
            reads: 0,
            total: 0,
        })
    }
}

impl Descriptor for StdinReader {
    fn source(&mut self) -> &mut dyn reactor::mio::event::Source {
        &mut self.stdin
    }

    fn do_read(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        let mut buf = [0u8; 4096];
        for _ in 0..READS_PER_TURN {
            match self.stdin.read(&mut buf) {
                Ok(0) => {
                    println!(
                        "end of file after {} reads, {} bytes",
                        self.reads, self.total
                    );
                    // We are the descriptor being dispatched: removing ourselves cannot
                    // fail, and we are dropped when this method returns.
                    let removed = reactor.remove_descriptor(id);
                    debug_assert!(removed.is_ok());
                    reactor.stop();
                    return Ok(IoStatus::WouldBlock);
                }
                Ok(n) => {
                    self.reads += 1;
                    self.total += n;
                    println!("read {n} bytes");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(IoStatus::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(IoStatus::Ready)
    }

    fn connection_lost(&mut self, _: &mut Reactor, _: DescriptorId, reason: LostReason) {
        println!("stopped reading standard input: {reason}");
    }

    fn log_prefix(&self) -> &str {
        "stdin"
    }
}

impl Drop for StdinReader {
    fn drop(&mut self) {
        let _ = self.stdin.set_nonblocking(false);
    }
}

fn main() -> ExitCode {
    env_logger::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("read_stdin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    // Ctrl-C stops the loop cleanly, so the reader is dropped and stdin made blocking
    // again.
    reactor.handle_signals()?;
    let reader = StdinReader::new()?;
    let id = reactor
        .insert(Box::new(reader))
        .map_err(|e| format!("cannot watch standard input (a pipe or a terminal?): {e}"))?;
    reactor.add_reader(id)?;
    reactor.run()?;
    Ok(())
}
