//! cargo run -p poetry-client --example client_4_0 -- ADDRESS...
//!
//! Client 4.0 (`twisted-client-4/get-poetry.py`, Part 9): `get_poetry` returns a
//! Deferred, and the caller attaches what to do: `got_poem` or `poem_failed`, then
//! `poem_done` either way. Poems go to stdout in the order they finish; failures to
//! stderr; the exit status is 1 if any download failed.

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;

use deferred::Failure;
use poetry_client::{get_poetry, parse_address};
use reactor::Reactor;

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let addresses = std::env::args()
        .skip(1)
        .map(|a| parse_address(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut reactor = Reactor::new()?;
    let poems = Rc::new(RefCell::new(Vec::new()));
    let (finished, failed) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    for address in &addresses {
        let (poems, failed, finished) = (poems.clone(), failed.clone(), finished.clone());
        let (count, local) = (addresses.len(), reactor.local_handle());
        let got_poem = move |poem: Vec<u8>| {
            poems.borrow_mut().push(poem);
            Ok::<_, Failure>(())
        };
        let poem_failed = move |failure: Failure| {
            eprintln!("Poem failed: {failure}");
            failed.set(true);
            Ok(())
        };
        let poem_done = move |_: Result<(), Failure>| {
            finished.set(finished.get() + 1);
            if finished.get() == count {
                let _ = local.call_soon(|r| r.stop());
            }
            Ok::<_, Failure>(())
        };
        let d = get_poetry(&mut reactor, address);
        drop(d.add_callbacks(got_poem, poem_failed).add_both(poem_done));
    }
    reactor.run()?;
    for poem in poems.borrow().iter() {
        println!("{}", String::from_utf8_lossy(poem));
    }
    Ok(if failed.get() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
