//! The client library (`transform`, a Deferred) against our server on the same
//! reactor, against Twisted's transform server, and the `transformed_poetry` example
//! (client 6.0) end to end.

mod util;

use std::process::Command;
use std::time::Duration;

use deferred::{Deferred, Failure};
use poetry_transform::{
    serve, transform, ClientOptions, ServerOptions, SlowCummingsify, TransformClientError,
    Transforms,
};
use protocol::reactor::Reactor;
use test_support::{run_bounded, twisted_peer, twisted_python_or_skip, Running};
use util::PATIENCE;

/// Turns the reactor until `d` has a result (at most a minute: a Twisted peer on a
/// loaded machine can be slow).
fn wait<T: 'static>(reactor: &mut Reactor, mut d: Deferred<T>) -> Result<T, Failure> {
    for _ in 0..6000 {
        if let Some(result) = d.take_result() {
            return result;
        }
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    panic!("the Deferred never fired");
}

fn our_server(
    reactor: &mut Reactor,
) -> (u16, protocol::Shared<poetry_transform::TransformFactory>) {
    let transforms = Transforms::standard().with(SlowCummingsify::new(Duration::from_secs(10)));
    let (port, factory) = serve(reactor, transforms, ServerOptions::default()).unwrap();
    (port.get_host().port().unwrap(), factory)
}

#[test]
fn a_poem_is_transformed_and_every_failure_is_a_failure() {
    let mut reactor = Reactor::new().unwrap();
    let (port, factory) = our_server(&mut reactor);
    let address = ("127.0.0.1", port);
    let options = ClientOptions::default();
    let poem = "ÉTÉ. Here is my poem.".as_bytes();
    let d = transform(&mut reactor, address, "cummingsify", poem, options);
    assert_eq!(
        wait(&mut reactor, d).unwrap(),
        "été. here is my poem.".as_bytes()
    );

    let d = transform(&mut reactor, address, "shout", poem, options);
    let failure = wait(&mut reactor, d).unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref(),
            Some(TransformClientError::NoReply(_))
        ),
        "{failure}"
    );

    // The fallback of client 6.0: the errback recovers with the original poem.
    let d = transform(&mut reactor, address, "cummingsify", b"\xffbinary", options)
        .add_errback(|_| Ok(b"\xffbinary".to_vec()));
    assert_eq!(wait(&mut reactor, d).unwrap(), b"\xffbinary");
    assert_eq!(factory.borrow().stats().answered, 1);
}

#[test]
fn no_server_and_a_slow_server_fail_with_their_reasons() {
    let mut reactor = Reactor::new().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let d = transform(
        &mut reactor,
        ("127.0.0.1", dead_port),
        "cummingsify",
        b"A",
        ClientOptions::default(),
    );
    let failure = wait(&mut reactor, d).unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref(),
            Some(TransformClientError::Connect(_))
        ),
        "{failure}"
    );

    let (port, factory) = our_server(&mut reactor);
    let options = ClientOptions {
        timeout: Some(Duration::from_millis(200)),
        ..ClientOptions::default()
    };
    let d = transform(
        &mut reactor,
        ("127.0.0.1", port),
        "slow-cummingsify",
        b"A",
        options,
    );
    let failure = wait(&mut reactor, d).unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref(),
            Some(TransformClientError::TimedOut(_))
        ),
        "{failure}"
    );
    for _ in 0..100 {
        if factory.borrow().open_connections() == 0 {
            break;
        }
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(
        factory.borrow().open_connections(),
        0,
        "the server saw the client go"
    );
}

#[test]
fn cancelling_resets_the_request() {
    let mut reactor = Reactor::new().unwrap();
    let (port, factory) = our_server(&mut reactor);
    let mut d = transform(
        &mut reactor,
        ("127.0.0.1", port),
        "slow-cummingsify",
        b"A",
        ClientOptions::default(),
    );
    for _ in 0..100 {
        if factory.borrow().open_connections() == 1 {
            break;
        }
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(factory.borrow().open_connections(), 1);
    d.cancel();
    assert!(d.take_result().unwrap().unwrap_err().is_cancelled());
    for _ in 0..100 {
        if factory.borrow().open_connections() == 0 {
            break;
        }
        reactor.iterate(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(
        factory.borrow().open_connections(),
        0,
        "the connection was reset"
    );
    assert_eq!(factory.borrow().stats().answered, 0);
}

#[test]
fn our_client_against_twisted_transform_server() {
    let Some(python) = twisted_python_or_skip() else {
        return;
    };
    let mut command = Command::new(python);
    command
        .arg(twisted_peer("transform_server.py").expect("a peer script of the repository"))
        .args(["--port", "0"]);
    let twisted = Running::start(command);
    assert!(
        twisted.banner.starts_with("Serving transforms on port"),
        "{}",
        twisted.banner
    );
    let mut reactor = Reactor::new().unwrap();
    let address = ("127.0.0.1", twisted.port);
    for name in ["ete.txt", "lighthouse.txt", "crlf.txt"] {
        let poem = std::fs::read(test_support::workspace().join("poems").join(name)).unwrap();
        let d = transform(
            &mut reactor,
            address,
            "cummingsify",
            &poem,
            ClientOptions::default(),
        );
        let want = String::from_utf8(poem).unwrap().to_lowercase().into_bytes();
        assert!(
            wait(&mut reactor, d).unwrap() == want,
            "{name}: other bytes"
        );
    }
    let d = transform(
        &mut reactor,
        address,
        "nothing",
        b"A",
        ClientOptions::default(),
    );
    let failure = wait(&mut reactor, d).unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref(),
            Some(TransformClientError::NoReply(_))
        ),
        "{failure}"
    );
}

/// A poetry server on a thread serving `poem` to the next connection.
fn poetry_server(poem: &'static [u8]) -> u16 {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut socket, _)) = listener.accept() {
            let _ = socket.write_all(poem);
        }
    });
    port
}

#[test]
fn the_client_6_example_transforms_and_falls_back() {
    let example = test_support::build_example("poetry-transform", "transformed_poetry");
    let server = util::transform_server(&[]);
    let text = poetry_server("ÉTÉ, HERE IS MY POEM.".as_bytes());
    let binary = poetry_server(b"\xff BINARY POEM");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut command = Command::new(example);
    command.args([server.port, text, binary, dead_port].map(|p| p.to_string()));
    let output = run_bounded(command, PATIENCE);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "a download failed: {stderr}");
    assert!(stdout.contains("été, here is my poem.\n"), "{stdout}");
    assert!(
        stdout.contains("\u{fffd} BINARY POEM\n"),
        "the original poem is used: {stdout}"
    );
    assert_eq!(stderr.matches("Cummingsify failed!").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("The poem download failed.").count(),
        1,
        "{stderr}"
    );
}
