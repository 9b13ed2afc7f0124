//! cargo run -p poetry-client --example client_3_0 -- ADDRESS...
//!
//! Client 3.0 (`twisted-client-3/get-poetry.py`, Part 6): `get_poetry` takes a
//! callback and calls it with the poem, so other code can use the client. Like the
//! listing it has no way to say a download failed: the failure is reported as an
//! "Unhandled error in Deferred" the moment it happens, and the program keeps waiting
//! for a poem that will never come (stop it with Ctrl-C). Client 3.1 adds the errback.

use std::cell::RefCell;
use std::rc::Rc;

use deferred::Failure;
use poetry_client::{parse_address, Poem, PoemAddress};
use reactor::Reactor;

/// The listing's `get_poetry(host, port, callback)`.
fn get_poetry(reactor: &mut Reactor, address: &PoemAddress, callback: impl FnOnce(Poem) + 'static) {
    let d = poetry_client::get_poetry(reactor, address);
    drop(d.add_callback(move |poem| {
        callback(poem);
        Ok::<_, Failure>(())
    }));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let addresses = std::env::args()
        .skip(1)
        .map(|a| parse_address(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut reactor = Reactor::new()?;
    reactor.handle_signals()?;
    let poems = Rc::new(RefCell::new(Vec::new()));
    for address in &addresses {
        let (poems, count, local) = (poems.clone(), addresses.len(), reactor.local_handle());
        get_poetry(&mut reactor, address, move |poem| {
            poems.borrow_mut().push(poem);
            if poems.borrow().len() == count {
                let _ = local.call_soon(|r| r.stop());
            }
        });
    }
    reactor.run()?;
    for poem in poems.borrow().iter() {
        println!("{}", String::from_utf8_lossy(poem));
    }
    Ok(())
}
