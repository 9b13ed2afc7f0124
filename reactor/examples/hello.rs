//! cargo run -p reactor --example hello
//!
//! The smallest reactor program: one delayed call that prints, then stops the loop.
//! Without the `stop`, `run` would wait for ever: the reactor does not end when it has
//! nothing to do. (Twisted tutorial, part 2: `callLater` and `reactor.stop`.)

use std::time::Duration;

use reactor::{Reactor, ReactorError};

fn main() -> Result<(), ReactorError> {
    env_logger::init();
    let mut reactor = Reactor::new()?;
    reactor.call_later(Duration::from_millis(500), |r| {
        println!(
            "Hello from the reactor, {:.3}s after it started.",
            r.now().as_secs_f64()
        );
        r.stop();
    });
    println!("Starting the reactor.");
    reactor.run()?;
    println!("The reactor has stopped.");
    Ok(())
}
