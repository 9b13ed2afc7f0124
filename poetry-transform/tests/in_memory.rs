//! The transform protocol over the real transport on an in-memory stream, on a manual
//! clock: every request replayed at every chunk size, every way of being refused,
//! and the bounds.

use std::time::Duration;

use poetry_transform::{
    FlakyCummingsify, ServerOptions, SlowCummingsify, TransformFactory, TransformProtocol,
    Transforms,
};
use protocol::basic::NetstringReceiver;
use protocol::testing::{check_chunkings, ProtocolTest};
use protocol::{DisconnectReason, Shared};

type Test = ProtocolTest<NetstringReceiver<TransformProtocol>>;

fn server(
    options: ServerOptions,
) -> (
    NetstringReceiver<TransformProtocol>,
    Shared<TransformFactory>,
) {
    let transforms = Transforms::standard()
        .with(FlakyCummingsify::new(2))
        .with(SlowCummingsify::new(Duration::from_secs(5)));
    (
        NetstringReceiver::new(TransformProtocol::default()),
        Shared::new(TransformFactory::new(transforms, options)),
    )
}

fn start(options: ServerOptions) -> Test {
    let (protocol, factory) = server(options);
    ProtocolTest::new(protocol, factory)
}

fn netstring(payload: &[u8]) -> Vec<u8> {
    [format!("{}:", payload.len()).as_bytes(), payload, b","].concat()
}

/// The connection ended with a clean close (our `lose_connection`), after `reply`.
#[track_caller]
fn assert_answered_and_closed(test: &mut Test, reply: &[u8]) {
    assert_eq!(test.take_written(), reply);
    assert!(test.is_lost(), "the server closes after answering");
    assert!(test.reason().unwrap().is_clean(), "{:?}", test.reason());
    assert!(test.peer_sees_eof());
}

#[test]
fn the_tutorials_request_at_every_chunk_size() {
    check_chunkings(
        || server(ServerOptions::default()),
        b"27:cummingsify.HERE IS MY POEM,",
        |test| {
            assert_answered_and_closed(test, b"15:here is my poem,");
            let stats = test.factory().borrow().stats();
            assert_eq!((stats.answered, stats.refused_requests), (1, 0));
        },
    );
}

#[test]
fn unicode_poems_are_lowered_and_framed_by_length() {
    let poem = "ÉTÉ, Straße.\r\nΘΑΛΑΣΣΑ, МОРЕ: 1,2,3";
    let request = netstring(format!("cummingsify.{poem}").as_bytes());
    let reply = netstring(poem.to_lowercase().as_bytes());
    check_chunkings(
        || server(ServerOptions::default()),
        &request,
        |test| assert_answered_and_closed(test, &reply),
    );
}

#[test]
fn every_refusal_closes_without_a_reply() {
    let long = b"9".repeat(7);
    let cases: [(&str, Vec<u8>); 7] = [
        ("unknown transform", netstring(b"shout.HELLO")),
        ("no dot", netstring(b"cummingsify")),
        (
            "a failing transform (not UTF-8)",
            netstring(b"cummingsify.\xff\xfe"),
        ),
        ("malformed length", b"x7:abc,".to_vec()),
        ("leading zero", b"05:a.bcd,".to_vec()),
        ("missing comma", b"5:a.bcd;".to_vec()),
        ("over the limit", [long.as_slice(), b":"].concat()),
    ];
    for (what, input) in cases {
        check_chunkings(
            || {
                server(ServerOptions {
                    max_request: 1000,
                    ..ServerOptions::default()
                })
            },
            &input,
            |test| {
                assert_eq!(test.take_written(), b"", "{what}: no reply");
                assert!(test.is_lost(), "{what}: closed");
                assert!(
                    test.reason().unwrap().is_clean(),
                    "{what}: {:?}",
                    test.reason()
                );
                let stats = test.factory().borrow().stats();
                assert_eq!((stats.answered, stats.refused_requests), (0, 1), "{what}");
            },
        );
    }
}

#[test]
fn an_over_long_request_is_refused_at_its_length() {
    // The limit is 10: "11:" is refused at its second digit, before any payload.
    let mut test = start(ServerOptions {
        max_request: 10,
        ..ServerOptions::default()
    });
    test.feed(b"1");
    assert!(!test.is_lost());
    test.feed(b"1");
    assert!(
        test.is_lost(),
        "refused as soon as the length passes the limit"
    );
    // A request exactly at the limit is answered.
    let request = netstring(b"cummingsify.AB");
    let mut test = start(ServerOptions {
        max_request: request.len() - 4,
        ..ServerOptions::default()
    });
    test.feed(&request);
    assert_eq!(test.take_written(), b"2:ab,");
}

#[test]
fn two_requests_in_one_write_are_both_answered() {
    let input = [
        netstring(b"cummingsify.ONE"),
        netstring(b"cummingsify.TWO."),
    ]
    .concat();
    let mut test = start(ServerOptions::default());
    test.feed(&input);
    assert_answered_and_closed(&mut test, b"3:one,4:two.,");
    assert_eq!(test.factory().borrow().stats().answered, 2);
}

#[test]
fn a_request_in_a_later_read_is_not_answered() {
    let mut test = start(ServerOptions::default());
    test.feed(&netstring(b"cummingsify.ONE"));
    assert_answered_and_closed(&mut test, b"3:one,");
    test.feed(&netstring(b"cummingsify.TWO"));
    assert_eq!(test.take_written(), b"");
    assert_eq!(test.factory().borrow().stats().answered, 1);
}

#[test]
fn answers_stop_at_the_first_refusal() {
    let input = [
        netstring(b"cummingsify.ONE"),
        netstring(b"nothing.TWO"),
        netstring(b"cummingsify.THREE"),
    ]
    .concat();
    let mut test = start(ServerOptions::default());
    test.feed(&input);
    assert_answered_and_closed(&mut test, b"3:one,");
    let stats = test.factory().borrow().stats();
    assert_eq!((stats.answered, stats.refused_requests), (1, 1));
}

#[test]
fn the_flaky_transform_fails_every_other_time_here() {
    let request = netstring(b"flaky-cummingsify.A");
    let factory = server(ServerOptions::default()).1;
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let mut test = ProtocolTest::new(
            NetstringReceiver::new(TransformProtocol::default()),
            factory.clone(),
        );
        test.feed(&request);
        outcomes.push(test.take_written());
        assert!(test.is_lost());
    }
    assert_eq!(
        outcomes,
        [b"1:a,".to_vec(), vec![], b"1:a,".to_vec(), vec![]]
    );
    assert_eq!(factory.borrow().open_connections(), 0);
}

#[test]
fn a_slow_transform_answers_later_and_is_not_idle() {
    let options = ServerOptions {
        idle_timeout: Some(Duration::from_secs(1)),
        ..ServerOptions::default()
    };
    let mut test = start(options);
    test.feed(
        &[
            netstring(b"cummingsify.QUICK"),
            netstring(b"slow-cummingsify.SLOW"),
        ]
        .concat(),
    );
    assert_eq!(
        test.take_written(),
        b"5:quick,",
        "what is ready goes at once"
    );
    test.advance(Duration::from_secs(4));
    assert!(
        !test.is_lost(),
        "waiting for our own answer is not idleness"
    );
    test.advance(Duration::from_secs(1));
    assert_answered_and_closed(&mut test, b"4:slow,");
}

#[test]
fn a_quick_answer_waits_behind_a_slow_one() {
    let mut test = start(ServerOptions::default());
    test.feed(
        &[
            netstring(b"slow-cummingsify.SLOW"),
            netstring(b"cummingsify.QUICK"),
        ]
        .concat(),
    );
    assert_eq!(test.take_written(), b"", "the replies keep their order");
    test.advance(Duration::from_secs(5));
    assert_answered_and_closed(&mut test, b"4:slow,5:quick,");
}

#[test]
fn garbage_after_a_request_in_the_same_read_does_not_lose_its_answer() {
    let mut test = start(ServerOptions::default());
    test.feed(&[netstring(b"cummingsify.ONE").as_slice(), b"x:garbage"].concat());
    assert_answered_and_closed(&mut test, b"3:one,");
}

#[test]
fn a_client_that_leaves_before_a_slow_answer_cancels_it() {
    let mut test = start(ServerOptions::default());
    test.feed(&netstring(b"slow-cummingsify.SLOW"));
    test.disconnect_peer(true);
    assert!(test.is_lost());
    test.advance(Duration::from_secs(10));
    let factory = test.factory().borrow();
    assert_eq!(factory.stats().answered, 0);
    assert_eq!(factory.open_connections(), 0);
}

#[test]
fn a_half_close_after_the_request_still_gets_the_answer() {
    let mut test = start(ServerOptions::default());
    test.feed(&netstring(b"slow-cummingsify.HALF"));
    test.close_peer_write();
    test.advance(Duration::from_secs(5));
    assert_answered_and_closed(&mut test, b"4:half,");
}

#[test]
fn a_half_close_before_a_whole_request_is_refused() {
    let mut test = start(ServerOptions::default());
    test.feed(b"12:cummingsify");
    test.close_peer_write();
    assert!(test.is_lost());
    assert_eq!(test.take_written(), b"");
    assert_eq!(test.factory().borrow().stats().refused_requests, 1);
}

#[test]
fn an_idle_client_is_cut_off() {
    let options = ServerOptions {
        idle_timeout: Some(Duration::from_secs(3)),
        ..ServerOptions::default()
    };
    let mut test = start(options);
    test.feed(b"100:cummingsify.");
    test.advance(Duration::from_secs(7));
    assert!(test.is_lost());
    assert!(matches!(
        test.reason().as_deref(),
        Some(DisconnectReason::TimedOut)
    ));
}

/// The README's promise about the binary's transforms, on [`Transforms::standard`]
/// exactly as `poetry-transform-server` configures it: `flaky-cummingsify` fails
/// every third request (3 and 6 here) and `slow-cummingsify` answers after two
/// seconds (not a moment before, on the manual clock).
#[test]
fn the_standard_transforms_are_what_the_readme_says() {
    let mut standard = Transforms::standard();
    assert_eq!(
        standard.get_mut(b"slow-cummingsify").unwrap().delay(),
        Duration::from_secs(2)
    );
    let factory = Shared::new(TransformFactory::new(
        Transforms::standard(),
        ServerOptions::default(),
    ));
    let connect = || {
        ProtocolTest::new(
            NetstringReceiver::new(TransformProtocol::default()),
            factory.clone(),
        )
    };
    let answered: Vec<bool> = (0..6)
        .map(|_| {
            let mut test = connect();
            test.feed(&netstring(b"flaky-cummingsify.A"));
            let reply = test.take_written();
            assert!(test.is_lost());
            reply == b"1:a,"
        })
        .collect();
    assert_eq!(answered, [true, true, false, true, true, false]);

    let mut test = connect();
    test.feed(&netstring(b"slow-cummingsify.SLOW"));
    test.advance(Duration::from_millis(1999));
    assert_eq!(test.take_written(), b"", "not before two seconds");
    assert!(!test.is_lost());
    test.advance(Duration::from_millis(1));
    assert_answered_and_closed(&mut test, b"4:slow,");
}
