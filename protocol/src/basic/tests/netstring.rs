use proptest::prelude::*;

use super::{cut, Log};
use crate::basic::{NetstringContext, NetstringError, NetstringProtocol, NetstringReceiver};
use crate::testing::{check_chunkings, ProtocolTest};
use crate::{DisconnectReason, Shared};

/// Records each string and echoes it, as Twisted's `TestNetstring`.
struct Echo {
    max: usize,
}

impl NetstringProtocol for Echo {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut NetstringContext<'_, '_, Self>) {
        cx.set_max_length(self.max);
        cx.factory().made += 1;
    }

    fn string_received(&mut self, cx: &mut NetstringContext<'_, '_, Self>, string: &[u8]) {
        cx.factory().received.push(string.to_vec());
        cx.send_string(string);
    }

    fn connection_lost(
        &mut self,
        cx: &mut NetstringContext<'_, '_, Self>,
        reason: &DisconnectReason,
    ) {
        let error = cx.error().map(ToString::to_string);
        cx.factory().lost.push((reason.is_clean(), error));
    }
}

fn echo(max: usize) -> (NetstringReceiver<Echo>, Shared<Log>) {
    (
        NetstringReceiver::new(Echo { max }),
        Shared::new(Log::default()),
    )
}

fn netstrings(strings: &[&[u8]]) -> Vec<u8> {
    strings
        .iter()
        .flat_map(|s| {
            [
                format!("{}:", s.len()).into_bytes(),
                s.to_vec(),
                b",".to_vec(),
            ]
            .concat()
        })
        .collect()
}

#[test]
fn strings_arrive_at_every_chunk_size() {
    let long = b"a".repeat(515);
    let strings: Vec<&[u8]> = vec![
        b"hello", b"world", b"how", b"are", b"you123", b":today", &long,
    ];
    let input = netstrings(&strings);
    check_chunkings(
        || echo(699),
        &input,
        |test| {
            assert_eq!(test.factory().borrow().received(), strings);
            // Each was echoed in the same framing.
            assert_eq!(test.take_written(), input);
            assert!(!test.is_lost());
        },
    );
}

#[test]
fn small_and_nested_netstrings() {
    for (input, expected) in [
        (&b"0:,"[..], &b""[..]),
        (b"1:a,", b"a"),
        (b"2:ab,", b"ab"),
        (b"4:1:a,,", b"1:a,"),
    ] {
        check_chunkings(
            || echo(50),
            input,
            |test| {
                assert_eq!(test.factory().borrow().received(), [expected]);
                assert!(!test.is_lost());
            },
        );
    }
}

#[test]
fn many_strings_in_one_read() {
    let strings: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("string {i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
    let (receiver, log) = echo(50);
    let mut test = ProtocolTest::new(receiver, log);
    test.feed(&netstrings(&refs));
    assert_eq!(test.factory().borrow().received, strings);
}

#[test]
fn malformed_input_closes_with_a_typed_reason() {
    let too_long = [b"51:".to_vec(), b"a".repeat(51), b",".to_vec()].concat();
    let cases: [(&[u8], NetstringError); 10] = [
        (
            b"9999999999999999999999",
            NetstringError::TooLong { max: 50 },
        ),
        (b"abc", NetstringError::MalformedLength { found: b'a' }),
        (b"4:abcde", NetstringError::MissingComma { found: b'e' }),
        (&too_long, NetstringError::TooLong { max: 50 }),
        (b"2:aaa,", NetstringError::MissingComma { found: b'a' }),
        (b"0:a,", NetstringError::MissingComma { found: b'a' }),
        (b":aaa,", NetstringError::MalformedLength { found: b':' }),
        (b"3aaa,", NetstringError::MalformedLength { found: b'a' }),
        (
            b"007:abcdefg,",
            NetstringError::MalformedLength { found: b'0' },
        ),
        (b"-1:,", NetstringError::MalformedLength { found: b'-' }),
    ];
    for (input, error) in cases {
        check_chunkings(
            || echo(50),
            input,
            |test| {
                assert!(test.is_lost(), "{error}");
                let log = test.factory().borrow();
                assert!(log.received.is_empty());
                assert_eq!(log.lost, [(true, Some(error.to_string()))]);
            },
        );
    }
}

#[test]
fn strings_before_the_error_are_delivered_and_answered() {
    check_chunkings(
        || echo(50),
        b"1:a,2:bb,2:ccX3:ddd,",
        |test| {
            assert_eq!(test.factory().borrow().received(), [&b"a"[..], b"bb"]);
            // The answers still reach the peer before the connection closes.
            assert_eq!(test.take_written(), b"1:a,2:bb,");
            assert!(test.peer_sees_eof());
            let log = test.factory().borrow();
            let error = NetstringError::MissingComma { found: b'X' };
            assert_eq!(log.lost, [(true, Some(error.to_string()))]);
        },
    );
}

#[test]
fn a_length_at_the_maximum_passes_and_one_above_fails() {
    let (receiver, log) = echo(12);
    let mut test = ProtocolTest::new(receiver, log);
    test.feed(b"12:abcdefghijkl,");
    assert_eq!(test.factory().borrow().received(), [&b"abcdefghijkl"[..]]);
    test.feed(b"13:");
    assert!(test.is_lost());
    // The error is reported before a single payload byte arrived.
    let (receiver, log) = echo(12);
    let mut test = ProtocolTest::new(receiver, log);
    test.feed(b"1000");
    assert!(test.is_lost());
}

#[test]
fn error_messages_are_lowercase_and_plain() {
    assert_eq!(
        NetstringError::MalformedLength { found: b'x' }.to_string(),
        "malformed netstring length: unexpected byte 'x'"
    );
    assert_eq!(
        NetstringError::TooLong { max: 10 }.to_string(),
        "netstring is longer than the maximum of 10 bytes"
    );
    assert_eq!(
        NetstringError::MissingComma { found: b';' }.to_string(),
        "netstring is not terminated by a comma: found ';'"
    );
}

proptest! {
    /// However the stream is cut, the same strings come out.
    #[test]
    fn any_chunking_gives_the_same_strings(
        strings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
        let stream = netstrings(&refs);
        let (receiver, log) = echo(50);
        let mut test = ProtocolTest::new(receiver, log);
        for chunk in cut(&stream, &cuts) {
            test.feed(chunk);
        }
        prop_assert_eq!(&test.factory().borrow().received, &strings);
        prop_assert_eq!(test.take_written(), stream);
    }
}
