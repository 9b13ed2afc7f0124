//! cargo run -p reactor --example exception
//!
//! A callback that panics does not bring the reactor down: the panic is caught at the
//! dispatch boundary and logged (through `log`, shown here by `env_logger`), and the
//! next callback still runs. (Twisted tutorial, part 2: `exception.py`, where the
//! reactor logs the traceback and carries on.)

use std::time::Duration;

use reactor::{Reactor, ReactorError};

fn main() -> Result<(), ReactorError> {
    env_logger::init();
    let mut reactor = Reactor::new()?;
    reactor.call_later(Duration::ZERO, |_| panic!("I fall down."));
    reactor.call_later(Duration::ZERO, |r| {
        println!("But I get up again.");
        r.stop();
    });
    reactor.run()?;
    println!("The reactor stopped normally.");
    Ok(())
}
