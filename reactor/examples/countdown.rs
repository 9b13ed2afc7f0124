//! cargo run -p reactor --example countdown
//!
//! A call that schedules the next one: counts down from 5, one second apart, then
//! stops the reactor. Each step returns to the loop before the next, so the reactor
//! stays free to serve anything else in between. (Twisted tutorial, part 2:
//! `countdown.py`.)

use std::time::Duration;

use reactor::{Reactor, ReactorError};

fn count(reactor: &mut Reactor, n: u32) {
    if n == 0 {
        println!("Liftoff!");
        reactor.stop();
        return;
    }
    println!("{n}...");
    reactor.call_later(Duration::from_secs(1), move |r| count(r, n - 1));
}

fn main() -> Result<(), ReactorError> {
    env_logger::init();
    let mut reactor = Reactor::new()?;
    reactor.call_when_running(|r| count(r, 5));
    println!("Start!");
    reactor.run()?;
    println!("Stop!");
    Ok(())
}
