//! cargo run -p protocol --example sort_poem [-- POEM_FILE]
//!
//! Runs `sort` as a child process (Twisted's `spawnProcess` and `ProcessProtocol`):
//! writes a poem to its stdin, closes it, collects its stdout and prints the poem's
//! lines in byte order (`LC_ALL=C`). Without a file it sorts `poems/haiku.txt`,
//! compiled in. Exits 1 with one line on stderr if `sort` fails or cannot be started.

use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use protocol::transport::{ProcessOptions, ProcessStatus, ProcessTransport};
use protocol::{spawn_process, ProcessProtocol};
use reactor::Reactor;

/// The poem sorted when no file is named.
const DEFAULT_POEM: &[u8] = include_bytes!("../../poems/haiku.txt");

/// The exit code `main` returns, set when the child ends.
static EXIT: AtomicI32 = AtomicI32::new(1);

/// Feeds the poem to `sort` and collects what it prints.
struct SortPoem {
    poem: Vec<u8>,
    sorted: Vec<u8>,
}

impl ProcessProtocol for SortPoem {
    fn connection_made(&mut self, process: &mut ProcessTransport<'_>) {
        process.write(&self.poem);
        process.close_stdin();
    }

    fn out_received(&mut self, _: &mut ProcessTransport<'_>, data: &[u8]) {
        self.sorted.extend_from_slice(data);
    }

    fn err_received(&mut self, _: &mut ProcessTransport<'_>, data: &[u8]) {
        eprint!("sort: {}", String::from_utf8_lossy(data));
    }

    fn process_ended(&mut self, process: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        if status.success() {
            print!("{}", String::from_utf8_lossy(&self.sorted));
            EXIT.store(0, Ordering::Relaxed);
        } else {
            eprintln!("sort_poem: sort failed: {status}");
        }
        process.reactor().stop();
    }
}

/// Sorts the poem named on the command line (or the default one) through `sort`.
///
/// # Errors
///
/// If the reactor cannot run.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let poem = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| {
            eprintln!("sort_poem: cannot read {}: {e}", path.to_string_lossy());
            std::process::exit(1);
        }),
        None => DEFAULT_POEM.to_vec(),
    };
    let mut reactor = Reactor::new()?;
    let mut sort = Command::new("sort");
    sort.env("LC_ALL", "C");
    let protocol = SortPoem {
        poem,
        sorted: Vec::new(),
    };
    spawn_process(&mut reactor, protocol, sort, &ProcessOptions::default());
    reactor.run()?;
    let code = EXIT.load(Ordering::Relaxed);
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}
