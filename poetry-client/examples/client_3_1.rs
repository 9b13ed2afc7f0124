//! cargo run -p poetry-client --example client_3_1 -- ADDRESS...
//!
//! Client 3.1 (`twisted-client-3/get-poetry-1.py`, Part 6): `get_poetry` takes a
//! callback *and* an errback, so a failed download is reported and the program still
//! ends. Poems go to stdout in the order they finish; failures to stderr; the exit
//! status is 1 if any download failed.

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;

use deferred::Failure;
use poetry_client::{parse_address, Poem, PoemAddress};
use reactor::Reactor;

/// The listing's `get_poetry(host, port, callback, errback)`.
fn get_poetry(
    reactor: &mut Reactor,
    address: &PoemAddress,
    callback: impl FnOnce(Poem) + 'static,
    errback: impl FnOnce(Failure) + 'static,
) {
    let d = poetry_client::get_poetry(reactor, address);
    drop(d.add_callbacks(
        move |poem| {
            callback(poem);
            Ok::<_, Failure>(())
        },
        move |failure| {
            errback(failure);
            Ok(())
        },
    ));
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let addresses = std::env::args()
        .skip(1)
        .map(|a| parse_address(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut reactor = Reactor::new()?;
    let poems = Rc::new(RefCell::new(Vec::new()));
    let (finished, failed) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    for address in &addresses {
        let (count, local) = (addresses.len(), reactor.local_handle());
        let done = {
            let finished = finished.clone();
            move || {
                finished.set(finished.get() + 1);
                if finished.get() == count {
                    let _ = local.call_soon(|r| r.stop());
                }
            }
        };
        let (poems, failed, done2) = (poems.clone(), failed.clone(), done.clone());
        get_poetry(
            &mut reactor,
            address,
            move |poem| {
                poems.borrow_mut().push(poem);
                done();
            },
            move |failure| {
                eprintln!("Poem failed: {failure}");
                failed.set(true);
                done2();
            },
        );
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
