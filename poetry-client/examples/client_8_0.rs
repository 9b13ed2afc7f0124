//! cargo run -p poetry-client --example client_8_0 -- SECONDS ADDRESS...
//!
//! Client 8.0's style (`twisted-client-8`, Parts 17–18: `inlineCallbacks` and
//! `DeferredList`) with async/await: one `async fn` starts every download at once,
//! gives each SECONDS before its timeout cancels it (the download is aborted), and
//! awaits them all with `gather_results`. Poems go to stdout in address order; a
//! download that failed or timed out gets a line on stderr and the exit status 1.

use std::process::ExitCode;
use std::time::Duration;

use deferred::{ensure_deferred, gather_results, with_reactor, Failure};
use poetry_client::{get_poetry, parse_address, PoemAddress};
use reactor::Reactor;

/// Every poem, or why it is missing, in address order.
async fn get_poems(
    addresses: Vec<PoemAddress>,
    timeout: Duration,
) -> Result<Vec<Option<Vec<u8>>>, Failure> {
    let downloads = with_reactor(move |reactor| {
        let each = addresses.iter().map(|address| {
            let (address, d) = (address.clone(), get_poetry(reactor, address));
            d.add_timeout(reactor, timeout).add_callbacks(
                |poem| Ok::<_, Failure>(Some(poem)),
                move |failure| {
                    eprintln!("Poem from {address} failed: {failure}");
                    Ok(None)
                },
            )
        });
        each.collect::<Vec<_>>()
    })
    .await?;
    gather_results(downloads).await
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args
        .next()
        .ok_or("usage: client_8_0 SECONDS ADDRESS...")?
        .parse()?;
    let addresses = args
        .map(|a| parse_address(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut reactor = Reactor::new()?;
    let local = reactor.local_handle();
    let poems = ensure_deferred(
        &mut reactor,
        get_poems(addresses, Duration::try_from_secs_f64(seconds)?),
    );
    let mut poems = poems.add_both(move |poems| {
        let _ = local.call_soon(|r| r.stop());
        poems
    });
    reactor.run()?;
    let poems = poems.take_result().ok_or("the reactor stopped early")??;
    for poem in poems.iter().flatten() {
        println!("{}", String::from_utf8_lossy(poem));
    }
    Ok(if poems.iter().all(Option::is_some) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
