//! cargo run -p poetry-client --example client_5_0 -- ADDRESS...
//!
//! Client 5.0 (`twisted-client-5/get-poetry.py`, Part 10): a longer Deferred chain.
//! Each poem goes through `cummingsify`, which lower-cases it but sometimes fails (one
//! time in three, at random); an errback then recovers with the original poem. A poem
//! that fails to download still reaches `poem_failed`. Poems go to stdout in the order
//! they finish; "Cummingsify failed!" and download failures go to stderr.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::process::ExitCode;
use std::rc::Rc;

use deferred::{succeed, Failure};
use poetry_client::{get_poetry, parse_address, Poem};
use reactor::Reactor;

/// The listing's `cummingsify`: lower-cases the poem, or fails one time in three.
fn cummingsify(poem: Poem) -> Result<Poem, Failure> {
    if RandomState::new().hash_one(&poem) % 3 == 0 {
        return Err(Failure::msg("cummingsify is feeling moody"));
    }
    Ok(String::from_utf8_lossy(&poem).to_lowercase().into_bytes())
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
        let (poems, failed, finished) = (poems.clone(), failed.clone(), finished.clone());
        let (count, local) = (addresses.len(), reactor.local_handle());
        let try_to_cummingsify = |poem: Poem| {
            let original = poem.clone();
            succeed(poem)
                .add_callback(cummingsify)
                .add_errback(move |failure| {
                    eprintln!("Cummingsify failed! ({failure})");
                    Ok(original)
                })
        };
        drop(
            get_poetry(&mut reactor, address)
                .add_callback(try_to_cummingsify) // a Deferred: the chain waits for it
                .add_callbacks(
                    move |poem| {
                        poems.borrow_mut().push(poem);
                        Ok::<_, Failure>(())
                    },
                    move |failure| {
                        eprintln!("The poem download failed: {failure}");
                        failed.set(true);
                        Ok(())
                    },
                )
                .add_both(move |_| {
                    finished.set(finished.get() + 1);
                    if finished.get() == count {
                        let _ = local.call_soon(|r| r.stop());
                    }
                    Ok::<_, Failure>(())
                }),
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
