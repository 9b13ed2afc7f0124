//! cargo run -p reactor --example stack
//!
//! Prints the call stack from inside a callback: `Reactor::run` sits near the bottom
//! of every stack your code runs on, because the reactor calls your code, never the
//! other way round. (Twisted tutorial, part 2: `stack.py`.) In a debug build the
//! frames carry file and line numbers.

use std::backtrace::Backtrace;
use std::time::Duration;

use reactor::{Reactor, ReactorError};

fn main() -> Result<(), ReactorError> {
    env_logger::init();
    let mut reactor = Reactor::new()?;
    reactor.call_later(Duration::ZERO, |r| {
        println!("The stack inside a delayed call:");
        println!("{}", Backtrace::force_capture());
        r.stop();
    });
    reactor.run()?;
    Ok(())
}
