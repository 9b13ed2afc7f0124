//! cargo run -p reactor --example countdown [-- SECONDS]
//!
//! A call that schedules the next one: counts down from 5, one second apart (or
//! SECONDS apart), then stops the reactor. Each step returns to the loop before the next, so the reactor
//! stays free to serve anything else in between. (Twisted tutorial, part 2:
//! `countdown.py`.)

use std::time::Duration;

use reactor::Reactor;

fn count(reactor: &mut Reactor, n: u32, step: Duration) {
    if n == 0 {
        println!("Liftoff!");
        reactor.stop();
        return;
    }
    println!("{n}...");
    reactor.call_later(step, move |r| count(r, n - 1, step));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let step = match std::env::args().nth(1) {
        Some(seconds) => Duration::try_from_secs_f64(seconds.parse()?)?,
        None => Duration::from_secs(1),
    };
    let mut reactor = Reactor::new()?;
    reactor.call_when_running(move |r| count(r, 5, step));
    println!("Start!");
    reactor.run()?;
    println!("Stop!");
    Ok(())
}
