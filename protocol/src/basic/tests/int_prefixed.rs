use proptest::prelude::*;

use super::{cut, Log, SECOND};
use crate::basic::int_prefixed::sealed::Sealed;
use crate::basic::{
    Int16StringReceiver, Int32StringReceiver, Int8StringReceiver, IntNStringReceiver,
    IntStringContext, IntStringError, IntStringProtocol, LengthPrefix,
};
use crate::testing::{check_chunkings, ProtocolTest};
use crate::{DisconnectReason, Shared};

/// Records each string (and echoes it when asked), over any prefix width; `pause`
/// pauses delivery for a second.
struct Strings {
    max: usize,
    echo: bool,
}

impl<P: LengthPrefix> IntStringProtocol<P> for Strings {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut IntStringContext<'_, '_, P, Self>) {
        cx.set_max_length(self.max);
    }

    fn string_received(&mut self, cx: &mut IntStringContext<'_, '_, P, Self>, string: &[u8]) {
        cx.factory().received.push(string.to_vec());
        if string == b"pause" {
            cx.pause_receiving();
            cx.call_later(SECOND, |_, cx| cx.resume_receiving());
        }
        if self.echo {
            cx.send_string(string).unwrap();
        }
    }

    fn length_limit_exceeded(&mut self, cx: &mut IntStringContext<'_, '_, P, Self>, length: usize) {
        cx.factory().limits.push(length);
        cx.lose_connection();
    }

    fn connection_lost(
        &mut self,
        cx: &mut IntStringContext<'_, '_, P, Self>,
        reason: &DisconnectReason,
    ) {
        let error = cx.error().map(ToString::to_string);
        cx.factory().lost.push((reason.is_clean(), error));
    }
}

fn start<P: LengthPrefix>(max: usize) -> (IntNStringReceiver<P, Strings>, Shared<Log>) {
    (
        IntNStringReceiver::new(Strings { max, echo: false }),
        Shared::new(Log::default()),
    )
}

fn framed<P: LengthPrefix>(strings: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in strings {
        let mut prefix = vec![0; P::WIDTH];
        P::encode(s.len(), &mut prefix);
        out.extend_from_slice(&prefix);
        out.extend_from_slice(s);
    }
    out
}

/// Runs `test` for each prefix width.
macro_rules! for_each_width {
    ($test:ident) => {
        $test::<u8>();
        $test::<u16>();
        $test::<u32>();
    };
}

fn receives_at_every_chunk_size<P: LengthPrefix>() {
    let strings: Vec<&[u8]> = vec![b"a", b"", b"bb", b"hello world", &[0, 1, 2, 255], b"!"];
    let input = framed::<P>(&strings);
    check_chunkings(
        || start::<P>(50),
        &input,
        |test| {
            assert_eq!(test.factory().borrow().received(), strings);
            assert!(!test.is_lost());
        },
    );
}

#[test]
fn strings_arrive_at_every_chunk_size() {
    for_each_width!(receives_at_every_chunk_size);
}

fn partial_strings_deliver_nothing<P: LengthPrefix>() {
    let whole = framed::<P>(&[b"abcd"]);
    for end in 0..whole.len() {
        check_chunkings(
            || start::<P>(50),
            &whole[..end],
            |test| assert!(test.factory().borrow().received.is_empty()),
        );
    }
}

#[test]
fn partial_strings_deliver_nothing_yet() {
    for_each_width!(partial_strings_deliver_nothing);
}

fn many_in_one_read<P: LengthPrefix>() {
    let owned: Vec<Vec<u8>> = (0..300).map(|i| format!("s{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let (receiver, log) = start::<P>(50);
    let mut test = ProtocolTest::new(receiver, log);
    test.feed(&framed::<P>(&refs));
    assert_eq!(test.factory().borrow().received, owned);
}

#[test]
fn many_strings_in_one_read() {
    for_each_width!(many_in_one_read);
}

fn send_frames<P: LengthPrefix>() {
    let mut test = ProtocolTest::new(
        IntNStringReceiver::<P, _>::new(Strings {
            max: 50,
            echo: true,
        }),
        Shared::new(Log::default()),
    );
    let input = framed::<P>(&[&[b'b'; 16], b"x"]);
    test.feed(&input);
    assert_eq!(test.take_written(), input);
}

#[test]
fn send_string_frames_with_the_prefix() {
    for_each_width!(send_frames);
}

fn limit_exceeded<P: LengthPrefix>() {
    // The limit is checked on the prefix alone, before any of the string arrives.
    let mut prefix = vec![0; P::WIDTH];
    P::encode(11, &mut prefix);
    check_chunkings(
        || start::<P>(10),
        &[framed::<P>(&[b"ok"]), prefix.clone()].concat(),
        |test| {
            let log = test.factory().borrow();
            assert_eq!(log.received(), [&b"ok"[..]]);
            assert_eq!(log.limits, [11]);
            let error = IntStringError::LengthLimitExceeded {
                length: 11,
                max: 10,
            };
            assert_eq!(log.lost, [(true, Some(error.to_string()))]);
        },
    );
    // The string after a refused prefix is never delivered.
    let (receiver, log) = start::<P>(10);
    let mut test = ProtocolTest::new(receiver, log);
    test.feed(&framed::<P>(&[&[b'x'; 11], b"ok"]));
    assert!(test.factory().borrow().received.is_empty());
    assert!(test.is_lost());
}

#[test]
fn length_limit_exceeded_gets_the_announced_length() {
    for_each_width!(limit_exceeded);
}

#[test]
fn send_string_refuses_what_the_prefix_cannot_announce() {
    fn refuses<P: LengthPrefix>(length: usize) -> Result<(), IntStringError> {
        let (receiver, log) = start::<P>(10);
        let mut test = ProtocolTest::new(receiver, log);
        let result = test
            .with_protocol(|r, cx| r.with_context(cx, |_, cx| cx.send_string(&vec![0; length])))
            .unwrap();
        if result.is_err() {
            assert_eq!(test.take_written(), b"");
        }
        result
    }
    assert_eq!(refuses::<u8>(255), Ok(()));
    assert_eq!(
        refuses::<u8>(256),
        Err(IntStringError::TooLongToSend {
            length: 256,
            max: 255
        })
    );
    assert_eq!(refuses::<u16>(65535), Ok(()));
    assert_eq!(
        refuses::<u16>(65536),
        Err(IntStringError::TooLongToSend {
            length: 65536,
            max: 65535
        })
    );
    assert_eq!(refuses::<u32>(65536), Ok(()));
    assert_eq!(
        IntStringError::TooLongToSend {
            length: 256,
            max: 255
        }
        .to_string(),
        "string of 256 bytes is too long for its length prefix (at most 255)"
    );
}

#[test]
fn pausing_keeps_strings_until_resumed() {
    check_chunkings(
        || start::<u16>(50),
        &framed::<u16>(&[b"one", b"pause", b"two", b"three"]),
        |test| {
            assert_eq!(test.factory().borrow().received(), [&b"one"[..], b"pause"]);
            test.advance(SECOND);
            assert_eq!(
                test.factory().borrow().received(),
                [&b"one"[..], b"pause", b"two", b"three"]
            );
        },
    );
}

#[test]
fn the_aliases_name_the_widths() {
    let _: Int8StringReceiver<Strings> = IntNStringReceiver::new(Strings {
        max: 1,
        echo: false,
    });
    let _: Int16StringReceiver<Strings> = IntNStringReceiver::new(Strings {
        max: 1,
        echo: false,
    });
    let _: Int32StringReceiver<Strings> = IntNStringReceiver::new(Strings {
        max: 1,
        echo: false,
    });
    assert_eq!((u8::WIDTH, u16::WIDTH, u32::WIDTH), (1, 2, 4));
    assert_eq!(u32::decode(&[0, 0, 1, 2]), 258);
    let mut out = [0; 4];
    u32::encode(258, &mut out);
    assert_eq!(out, [0, 0, 1, 2]);
    let mut out = [0; 2];
    u16::encode(65535, &mut out);
    assert_eq!((out, u16::decode(&out)), ([255, 255], 65535));
}

proptest! {
    /// However the stream is cut, the same strings come out, for each width.
    #[test]
    fn any_chunking_gives_the_same_strings(
        strings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
        fn run<P: LengthPrefix>(refs: &[&[u8]], cuts: &[usize]) -> Vec<Vec<u8>> {
            let stream = framed::<P>(refs);
            let (receiver, log) = start::<P>(50);
            let mut test = ProtocolTest::new(receiver, log);
            for chunk in cut(&stream, cuts) {
                test.feed(chunk);
            }
            let received = test.factory().borrow().received.clone();
            received
        }
        prop_assert_eq!(&run::<u8>(&refs, &cuts), &strings);
        prop_assert_eq!(&run::<u16>(&refs, &cuts), &strings);
        prop_assert_eq!(&run::<u32>(&refs, &cuts), &strings);
    }
}
