//! cargo run -p poetry-transform --example transformed_poetry -- XFORM_ADDRESS ADDRESS...
//!
//! The Introduction's client 6.0 (and 7.0's fallback): the first address is a
//! transform server, the others poetry servers. Each poem is downloaded
//! (`get_poetry`, a Deferred), sent to the transform service (`transform`, a Deferred),
//! and printed on stdout as it is ready; a transform that fails prints
//! `Cummingsify failed!` on stderr and the original poem is used; a download that
//! fails prints `The poem download failed.` on stderr.
//!
//! ```text
//! cargo run -p poetry-transform --bin poetry-transform-server -- --port 11000 &
//! cargo run -p poetry-server -- --port 10000 --delay 0 poems/ete.txt &
//! cargo run -p poetry-transform --example transformed_poetry -- 11000 10000
//! ```
//!
//! A Deferred's callbacks get no reactor here, so the callback that has a poem queues
//! the start of its transform for the reactor's next turn with a `LocalHandle` (the
//! tutorial's callback calls `reactor.connectTCP` directly).

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;

use deferred::Failure;
use poetry_client::{get_poetry, parse_address, PoemAddress};
use poetry_transform::{transform, ClientOptions};
use protocol::reactor::{LocalHandle, Reactor};

/// What the callbacks share: poems still to finish, failed downloads.
#[derive(Debug)]
struct Progress {
    remaining: Cell<usize>,
    failed: Cell<usize>,
    local: LocalHandle,
}

impl Progress {
    /// One poem is done (printed or failed): stop the reactor after the last (the
    /// tutorial's `poem_done`).
    fn poem_done(&self) {
        self.remaining.set(self.remaining.get() - 1);
        if self.remaining.get() == 0 {
            let _ = self.local.call_soon(|r| r.stop());
        }
    }
}

/// The tutorial's `try_to_cummingsify` and `got_poem` for one poem.
fn try_to_cummingsify(
    reactor: &mut Reactor,
    xform: &PoemAddress,
    poem: Vec<u8>,
    progress: Rc<Progress>,
) {
    let original = poem.clone();
    let address = (xform.host.as_str(), xform.port);
    let d = transform(
        reactor,
        address,
        "cummingsify",
        &poem,
        ClientOptions::default(),
    )
    .add_errback(move |_failure| {
        eprintln!("Cummingsify failed!");
        Ok(original)
    })
    .add_callback(move |poem| {
        println!("{}", String::from_utf8_lossy(&poem));
        progress.poem_done();
        Ok::<(), Failure>(())
    });
    drop(d); // the chain runs when the transform ends
}

fn main() -> ExitCode {
    let mut addresses = Vec::new();
    for arg in std::env::args().skip(1) {
        match parse_address(&arg) {
            Ok(address) => addresses.push(address),
            Err(e) => {
                eprintln!("transformed_poetry: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if addresses.len() < 2 {
        eprintln!("transformed_poetry: usage: transformed_poetry XFORM_ADDRESS ADDRESS...");
        return ExitCode::from(2);
    }
    let xform = Rc::new(addresses.remove(0));
    let mut reactor = match Reactor::new() {
        Ok(reactor) => reactor,
        Err(e) => {
            eprintln!("transformed_poetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let progress = Rc::new(Progress {
        remaining: Cell::new(addresses.len()),
        failed: Cell::new(0),
        local: reactor.local_handle(),
    });
    for address in &addresses {
        let (got, failed) = (progress.clone(), progress.clone());
        let (local, xform) = (reactor.local_handle(), xform.clone());
        let d = get_poetry(&mut reactor, address).add_callbacks(
            move |poem| {
                let start =
                    move |r: &mut Reactor| try_to_cummingsify(r, &xform, poem.to_vec(), got);
                local.call_soon(start).map_err(Failure::new)
            },
            move |failure| {
                eprintln!("The poem download failed. ({failure})");
                failed.failed.set(failed.failed.get() + 1);
                failed.poem_done();
                Ok(())
            },
        );
        drop(d);
    }
    if let Err(e) = reactor.run() {
        eprintln!("transformed_poetry: {e}");
        return ExitCode::FAILURE;
    }
    if progress.failed.get() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
