//! `get_poetry(reactor, address) -> Deferred<Poem>` (client 4.0): a whole poem, each
//! way a download fails, cancelling (Part 19), and awaiting it from an `async fn`.

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use deferred::{catch_unhandled, ensure_deferred, Deferred, DeferredError, Failure};
use poetry_client::{get_poetry, get_poetry_with, parse_address, GetOptions, PoetryError};
use reactor::Reactor;
use util::{assert_same_bytes, dead_port, fast, poem_bytes, slow, RawServer, ServerThread};

/// Turns the reactor until `d` has a result (bounded), and takes it.
fn wait<T: 'static>(reactor: &mut Reactor, d: &mut Deferred<T>) -> Result<T, Failure> {
    let deadline = Instant::now() + util::PATIENCE;
    while !d.has_result() {
        assert!(
            Instant::now() < deadline,
            "no result within {:?}",
            util::PATIENCE
        );
        reactor.iterate(Some(Duration::from_millis(20))).unwrap();
    }
    d.take_result().expect("it has a result")
}

fn poetry_error(failure: Failure) -> PoetryError {
    failure
        .trap::<PoetryError>()
        .unwrap_or_else(|f| panic!("not a PoetryError: {}", f.report()))
}

#[test]
fn a_whole_poem_arrives_as_the_deferreds_value() {
    let _guard = catch_unhandled();
    let poem = poem_bytes("ete.txt");
    let server = ServerThread::start(&poem, slow(50, Duration::from_millis(5)));
    let mut reactor = Reactor::new().unwrap();
    let address = parse_address(&server.address()).unwrap();
    let mut d = get_poetry(&mut reactor, &address);
    assert!(!d.has_result(), "a poem takes time");
    assert_same_bytes(&wait(&mut reactor, &mut d).unwrap(), &poem, "the poem");
}

#[test]
fn a_connection_that_fails_fails_the_deferred() {
    let _guard = catch_unhandled();
    let mut reactor = Reactor::new().unwrap();
    let address = parse_address(&dead_port().to_string()).unwrap();
    let mut d = get_poetry(&mut reactor, &address);
    let error = poetry_error(wait(&mut reactor, &mut d).unwrap_err());
    assert!(matches!(error, PoetryError::Connect(_)), "{error:?}");
}

#[test]
fn a_poem_cut_short_is_incomplete_never_a_poem() {
    let _guard = catch_unhandled();
    let server = RawServer::start(1, |mut stream| {
        stream.write_all(b"half a po").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        util::reset(stream);
    });
    let mut reactor = Reactor::new().unwrap();
    let mut d = get_poetry(&mut reactor, &parse_address(&server.address()).unwrap());
    match poetry_error(wait(&mut reactor, &mut d).unwrap_err()) {
        PoetryError::Incomplete { received, .. } => assert_eq!(received, 9),
        other => panic!("expected Incomplete, got {other:?}"),
    }
}

#[test]
fn a_reset_before_the_first_byte_is_a_refusal() {
    let _guard = catch_unhandled();
    let server = RawServer::start(1, util::reset);
    let mut reactor = Reactor::new().unwrap();
    let mut d = get_poetry(&mut reactor, &parse_address(&server.address()).unwrap());
    let error = poetry_error(wait(&mut reactor, &mut d).unwrap_err());
    assert!(matches!(error, PoetryError::Refused(_)), "{error:?}");
}

#[test]
fn a_poem_past_the_limit_is_cut_off() {
    let _guard = catch_unhandled();
    let poem = poem_bytes("lighthouse.txt");
    let server = ServerThread::start(&poem, fast());
    let mut reactor = Reactor::new().unwrap();
    let options = GetOptions {
        max_poem_bytes: 100,
        ..GetOptions::default()
    };
    let mut d = get_poetry_with(
        &mut reactor,
        &parse_address(&server.address()).unwrap(),
        options,
    );
    let error = poetry_error(wait(&mut reactor, &mut d).unwrap_err());
    assert_eq!(error, PoetryError::TooLarge { limit: 100 });
}

#[test]
fn cancelling_aborts_the_download() {
    let _guard = catch_unhandled();
    let poem = poem_bytes("lighthouse.txt");
    let server = ServerThread::start(&poem, slow(10, Duration::from_millis(20)));
    let mut reactor = Reactor::new().unwrap();
    let mut d = get_poetry(&mut reactor, &parse_address(&server.address()).unwrap());
    // Let the download start, then cancel it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(100) {
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    d.cancel();
    let failure = d.take_result().expect("failed at once").unwrap_err();
    assert_eq!(failure.downcast_ref(), Some(&DeferredError::Cancelled));
    for _ in 0..5 {
        reactor.iterate(Some(Duration::from_millis(10))).unwrap(); // the reset goes out
    }
    let stats = server.stop();
    assert_eq!(
        (stats.completed, stats.interrupted),
        (0, 1),
        "the server saw the client go"
    );
}

#[test]
fn cancelling_while_connecting_stops_the_attempt() {
    let _guard = catch_unhandled();
    let server = ServerThread::start(&poem_bytes("haiku.txt"), fast());
    let mut reactor = Reactor::new().unwrap();
    let mut d = get_poetry(&mut reactor, &parse_address(&server.address()).unwrap());
    d.cancel(); // before the reactor even turned
    assert!(d.take_result().unwrap().unwrap_err().is_cancelled());
    for _ in 0..10 {
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(
        server.stop().completed,
        0,
        "no poem was sent to a cancelled download"
    );
}

#[test]
fn an_async_fn_awaits_several_poems() {
    let _guard = catch_unhandled();
    let poems = [poem_bytes("haiku.txt"), poem_bytes("crlf.txt")];
    let servers = poems.clone().map(|p| ServerThread::start(&p, fast()));
    let addresses = servers
        .each_ref()
        .map(|s| parse_address(&s.address()).unwrap());
    let mut reactor = Reactor::new().unwrap();
    let (first, second) = (
        get_poetry(&mut reactor, &addresses[0]),
        get_poetry(&mut reactor, &addresses[1]),
    );
    let mut both = ensure_deferred(&mut reactor, async move {
        let a = first.await?;
        let b = second.await?;
        Ok::<_, Failure>((a, b))
    });
    let (a, b) = wait(&mut reactor, &mut both).unwrap();
    assert_same_bytes(&a, &poems[0], "first");
    assert_same_bytes(&b, &poems[1], "second");
}
