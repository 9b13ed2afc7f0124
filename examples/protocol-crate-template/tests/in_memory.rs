//! The protocols tested with no socket: the real transport over an in-memory stream,
//! every input replayed at every chunk size.

use protocol::basic::LineReceiver;
use protocol::prelude::*;
use protocol::testing::{check_chunkings, Loopback, ProtocolTest};
use upper_echo::{server_factory, UpperClientFactory, UpperEcho, UpperEchoFactory};

fn server() -> (LineReceiver<UpperEcho>, Shared<UpperEchoFactory>) {
    (LineReceiver::new(UpperEcho), server_factory())
}

#[test]
fn each_line_comes_back_in_upper_case_however_the_input_is_cut() {
    check_chunkings(server, b"hello\r\nWorld 42\r\n\r\n", |test| {
        assert_eq!(test.take_written(), b"HELLO\r\nWORLD 42\r\n\r\n");
        assert!(!test.is_lost());
    });
}

#[test]
fn quit_hangs_up_cleanly_and_nothing_after_it_is_answered() {
    check_chunkings(server, b"a\r\nquit\r\nb\r\n", |test| {
        assert_eq!(test.take_written(), b"A\r\n");
        assert!(test.is_lost());
        assert!(test.reason().is_some_and(|r| r.is_clean()));
    });
}

#[test]
fn an_unfinished_line_waits_for_its_end() {
    let mut test = ProtocolTest::new(LineReceiver::new(UpperEcho), server_factory());
    test.feed(b"half a li");
    assert_eq!(test.take_written(), b"");
    test.feed(b"ne\r\n");
    assert_eq!(test.take_written(), b"HALF A LINE\r\n");
}

#[test]
fn the_client_and_the_server_talk_in_memory() {
    let lines = vec![b"one".to_vec(), b"Two".to_vec()];
    let client_factory = Shared::new(UpperClientFactory::new(lines));
    // Each side's protocol comes from its factory, as a connector and a port build it.
    let loopback = Loopback::from_factories(&client_factory, (), &server_factory())
        .expect("neither factory refuses");
    assert!(loopback.client_reason().is_some_and(|r| r.is_clean()));
    let factory = client_factory.borrow();
    assert_eq!(factory.outcome(), Some(&Ok(())));
    assert_eq!(factory.answers(), [b"ONE".to_vec(), b"TWO".to_vec()]);
}
