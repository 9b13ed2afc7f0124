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
//! A Deferred's callbacks get no reactor here, so the callback that has a poem asks
//! the reactor to start its transform through the reactor's call path
//! (`ReactorHandle::call_from_thread`, which also works from the reactor's own thread).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deferred::Failure;
use poetry_proxy::{get_poetry, FetchOptions, Upstream};
use poetry_transform::{transform, ClientOptions};
use protocol::reactor::{Reactor, ReactorHandle};

/// What the run shares between its callbacks: poems still to finish, failures.
#[derive(Debug)]
struct Progress {
    remaining: AtomicUsize,
    failed: AtomicUsize,
    handle: ReactorHandle,
}

impl Progress {
    /// One poem is done (printed or failed): stop the reactor after the last.
    fn poem_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _ = self.handle.stop();
        }
    }
}

/// The tutorial's `try_to_cummingsify`, `got_poem` and `poem_done` for one poem.
fn try_to_cummingsify(
    reactor: &mut Reactor,
    xform: Upstream,
    poem: Vec<u8>,
    progress: Arc<Progress>,
) {
    let original = poem.clone();
    let d = transform(
        reactor,
        (&xform.host, xform.port),
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
    drop(d); // the chain runs when the transform ends; the reactor keeps it going
}

fn main() -> ExitCode {
    let mut addresses = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.parse::<Upstream>() {
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
    let xform = addresses.remove(0);
    let mut reactor = match Reactor::new() {
        Ok(reactor) => reactor,
        Err(e) => {
            eprintln!("transformed_poetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let progress = Arc::new(Progress {
        remaining: AtomicUsize::new(addresses.len()),
        failed: AtomicUsize::new(0),
        handle: reactor.handle(),
    });
    for address in &addresses {
        let (got, failed) = (progress.clone(), progress.clone());
        let (handle, xform) = (reactor.handle(), xform.clone());
        let d = get_poetry(
            &mut reactor,
            &address.host,
            address.port,
            FetchOptions::default(),
        )
        .add_callbacks(
            move |poem| {
                let poem = poem.to_vec();
                let start = move |r: &mut Reactor| try_to_cummingsify(r, xform, poem, got);
                handle.call_from_thread(start).map_err(Failure::new)
            },
            move |failure| {
                eprintln!("The poem download failed. ({failure})");
                failed.failed.fetch_add(1, Ordering::SeqCst);
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
    if progress.failed.load(Ordering::SeqCst) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
