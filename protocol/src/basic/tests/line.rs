use proptest::prelude::*;

use super::{cut, Log, SECOND};
use crate::basic::{LineContext, LineError, LineProtocol, LineReceiver, DEFAULT_MAX_LINE_LENGTH};
use crate::testing::{check_chunkings, ProtocolTest};
use crate::{DisconnectReason, Shared};

/// Acts on some lines, as Twisted's `LineTester` does: `len N` announces N raw bytes,
/// an empty line switches to raw mode, `pause` and `rawpause` pause for a second,
/// `stop` stops; a too-long line is partly fed back.
struct Tester {
    delimiter: &'static [u8],
    max: usize,
    length: usize,
}

impl Tester {
    fn new() -> Self {
        Tester {
            delimiter: b"\n",
            max: 64,
            length: 0,
        }
    }

    fn start(self) -> (LineReceiver<Tester>, Shared<Log>) {
        (LineReceiver::new(self), Shared::new(Log::default()))
    }
}

impl LineProtocol for Tester {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        cx.set_delimiter(self.delimiter).expect("a delimiter");
        cx.set_max_length(self.max);
        cx.factory().made += 1;
    }

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        cx.factory().received.push(line.to_vec());
        match line {
            b"" => cx.set_raw_mode(),
            b"pause" => {
                cx.pause_receiving();
                cx.call_later(SECOND, |_, cx| cx.resume_receiving());
            }
            b"rawpause" => {
                cx.pause_receiving();
                cx.set_raw_mode();
                cx.factory().received.push(Vec::new());
                cx.call_later(SECOND, |_, cx| cx.resume_receiving());
            }
            b"stop" => cx.stop_receiving(),
            _ => {
                if let Some(n) = line.strip_prefix(b"len ") {
                    self.length = std::str::from_utf8(n).unwrap().parse().unwrap();
                }
            }
        }
    }

    fn raw_data_received(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        let (data, rest) = data.split_at(self.length.min(data.len()));
        self.length -= data.len();
        cx.factory()
            .received
            .last_mut()
            .expect("raw mode follows a line")
            .extend_from_slice(data);
        if self.length == 0 {
            cx.set_line_mode(rest);
        }
    }

    fn line_length_exceeded(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        cx.factory().exceeded.push(data.to_vec());
        let max = cx.max_length();
        if data.len() > max + 1 {
            cx.set_line_mode(&data[max + 1..]);
        }
    }

    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, reason: &DisconnectReason) {
        let error = cx.error().map(ToString::to_string);
        cx.factory().lost.push((reason.is_clean(), error));
    }
}

fn received(test: &ProtocolTest<LineReceiver<Tester>>) -> Vec<Vec<u8>> {
    test.factory().borrow().received.clone()
}

fn lines(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn lines_and_raw_data_at_every_chunk_size() {
    let long = "L".repeat(70);
    let input = format!(
        "len 4\n\nabcdlen 3\n\nxy\nlen 12\nhello\n\n0123\n567890\nok\n{long}\nlen 0\n\nend\nlen 1\n\na"
    );
    let expected = lines(&[
        "len 4",
        "abcd",
        "len 3",
        "xy\n",
        "len 12",
        "hello",
        "0123\n567890\n",
        "ok",
        "LLLLL",
        "len 0",
        "",
        "end",
        "len 1",
        "a",
    ]);
    check_chunkings(
        || Tester::new().start(),
        input.as_bytes(),
        |test| {
            assert_eq!(received(test), expected);
            assert_eq!(test.factory().borrow().exceeded.len(), 1);
            assert!(!test.is_lost());
        },
    );
}

#[test]
fn many_lines_in_one_read() {
    let input: String = (0..1000).map(|i| format!("line {i}\r\n")).collect();
    let mut test = ProtocolTest::new(
        LineReceiver::new(Tester {
            delimiter: b"\r\n",
            ..Tester::new()
        }),
        Shared::new(Log::default()),
    );
    test.feed(input.as_bytes());
    let got = received(&test);
    assert_eq!(got.len(), 1000);
    assert_eq!(got[999], b"line 999");
}

#[test]
fn pausing_keeps_lines_until_resumed() {
    check_chunkings(
        || Tester::new().start(),
        b"one\ntwo\npause\nthree\n",
        |test| {
            assert_eq!(received(test), lines(&["one", "two", "pause"]));
            test.advance(SECOND);
            assert_eq!(received(test), lines(&["one", "two", "pause", "three"]));
        },
    );
}

#[test]
fn pausing_in_raw_mode() {
    check_chunkings(
        || Tester::new().start(),
        b"one\nlen 3\nrawpause\nabcfour\n",
        |test| {
            assert_eq!(received(test), lines(&["one", "len 3", "rawpause", ""]));
            test.advance(SECOND);
            assert_eq!(
                received(test),
                lines(&["one", "len 3", "rawpause", "abc", "four"])
            );
        },
    );
}

#[test]
fn stopping_delivers_nothing_more_and_closes() {
    check_chunkings(
        || Tester::new().start(),
        b"a\nb\nstop\nc\nd\n",
        |test| {
            assert_eq!(received(test), lines(&["a", "b", "stop"]));
            assert!(test.is_lost());
            assert_eq!(test.factory().borrow().lost, vec![(true, None)]);
        },
    );
}

/// Switches to raw mode after each line and back after one raw byte, thousands of
/// times over one read (Twisted's `test_stackRecursion`).
struct Flipper;

impl LineProtocol for Flipper {
    type Factory = Log;
    const DELIMITER: &'static [u8] = b"\n";

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        cx.factory().received.push(line.to_vec());
        cx.set_raw_mode();
    }

    fn raw_data_received(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        cx.set_line_mode(&data[1..]);
    }
}

#[test]
fn flipping_modes_many_times_in_one_read() {
    let mut test = ProtocolTest::new(LineReceiver::new(Flipper), Shared::new(Log::default()));
    test.feed(&b"x\nx".repeat(3000));
    let log = test.factory().borrow();
    assert_eq!(log.received.len(), 3000);
    assert_eq!(log.received.concat(), b"x".repeat(3000));
}

/// Records the line and takes what follows it out of the buffer (Twisted's
/// `test_clearLineBuffer`).
#[derive(Default)]
struct Clearing;

impl LineProtocol for Clearing {
    type Factory = Log;

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        let rest = cx.clear_line_buffer();
        let mut log = cx.factory();
        log.received.push(line.to_vec());
        log.exceeded.push(rest);
    }
}

#[test]
fn clear_line_buffer_returns_and_drops_the_rest() {
    let mut test = ProtocolTest::new(LineReceiver::new(Clearing), Shared::new(Log::default()));
    test.feed(b"foo\r\nbar\r\nbaz");
    test.feed(b"quux\r\n");
    let log = test.factory().borrow();
    assert_eq!(log.received(), [&b"foo"[..], b"quux"]);
    assert_eq!(log.exceeded, [b"bar\r\nbaz".to_vec(), Vec::new()]);
}

/// Answers lines; `;` switches the delimiter.
#[derive(Default)]
struct Switcher;

impl LineProtocol for Switcher {
    type Factory = Log;

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        cx.factory().received.push(line.to_vec());
        if line == b"semicolons" {
            cx.set_delimiter(b";").expect("a delimiter");
        }
        cx.send_line(line);
    }
}

#[test]
fn delimiter_changes_apply_to_the_rest_of_the_buffer() {
    check_chunkings(
        || (LineReceiver::new(Switcher), Shared::new(Log::default())),
        b"a\r\nsemicolons\r\nb;c\r\nd;",
        |test| {
            assert_eq!(
                test.factory().borrow().received(),
                [&b"a"[..], b"semicolons", b"b", b"c\r\nd"]
            );
            // The answer to "semicolons" already ends with the new delimiter.
            assert_eq!(test.take_written(), b"a\r\nsemicolons;b;c\r\nd;".to_vec());
        },
    );
}

#[test]
fn delimiter_changed_from_a_timer_applies_to_buffered_bytes() {
    let mut test = ProtocolTest::new(LineReceiver::new(Switcher), Shared::new(Log::default()));
    // The receiver has searched these bytes for "\r\n" already.
    test.feed(b"abc;de\r");
    assert!(test.factory().borrow().received.is_empty());
    test.with_protocol(|receiver, cx| receiver.with_context(cx, |_, cx| cx.set_delimiter(b";")));
    assert_eq!(test.factory().borrow().received(), [&b"abc"[..]]);
    test.feed(b"f;");
    assert_eq!(test.factory().borrow().received(), [&b"abc"[..], b"de\rf"]);
}

// ----- line length limits (Twisted's LineReceiverLineLengthExceededTests) -----

/// Records what was too long, and keeps the connection.
struct Catcher {
    max: usize,
}

impl LineProtocol for Catcher {
    type Factory = Log;

    fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
        cx.set_max_length(self.max);
    }

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        cx.factory().received.push(line.to_vec());
    }

    fn line_length_exceeded(&mut self, cx: &mut LineContext<'_, '_, Self>, data: &[u8]) {
        cx.factory().exceeded.push(data.to_vec());
    }
}

fn catcher(max: usize) -> ProtocolTest<LineReceiver<Catcher>> {
    ProtocolTest::new(
        LineReceiver::new(Catcher { max }),
        Shared::new(Log::default()),
    )
}

#[test]
fn a_long_unended_line_is_refused_whole() {
    let mut test = catcher(6);
    let excessive = b"x".repeat(14);
    test.feed(&excessive);
    assert_eq!(test.factory().borrow().exceeded, [excessive]);
}

#[test]
fn a_long_line_after_a_short_one() {
    let mut test = catcher(6);
    let excessive = b"x".repeat(14);
    test.feed(&[&b"x\r\n"[..], &excessive].concat());
    assert_eq!(test.factory().borrow().received(), [&b"x"[..]]);
    assert_eq!(test.factory().borrow().exceeded, [excessive]);
}

#[test]
fn a_long_line_with_delimiters_gets_everything_after_it() {
    let mut test = catcher(6);
    let excessive = [b"x".repeat(14), b"x".repeat(14)].join(&b"\r\n"[..]);
    test.feed(&excessive);
    assert_eq!(test.factory().borrow().exceeded, [excessive]);
    let mut test = catcher(6);
    let excessive = [b"x".repeat(14), b"\r\n".to_vec()].concat().repeat(2);
    test.feed(&excessive);
    assert_eq!(test.factory().borrow().exceeded, [excessive]);
}

#[test]
fn a_line_of_exactly_the_maximum_passes() {
    let mut test = catcher(4);
    test.feed(b"xxxx\r");
    test.feed(b"\nxxx");
    let log = test.factory().borrow();
    assert!(log.exceeded.is_empty());
    assert_eq!(log.received(), [&b"xxxx"[..]]);
}

/// The default: a too-long line closes the connection, and the error says why.
#[derive(Default)]
struct Plain;

impl LineProtocol for Plain {
    type Factory = Log;

    fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
        cx.factory().received.push(line.to_vec());
    }

    fn connection_lost(&mut self, cx: &mut LineContext<'_, '_, Self>, reason: &DisconnectReason) {
        let error = cx.error().map(ToString::to_string);
        cx.factory().lost.push((reason.is_clean(), error));
    }
}

fn plain() -> ProtocolTest<LineReceiver<Plain>> {
    ProtocolTest::new(LineReceiver::new(Plain), Shared::new(Log::default()))
}

#[test]
fn a_too_long_line_closes_the_connection() {
    let mut test = plain();
    test.feed(b"ok\r\n");
    test.feed(&[&b"x".repeat(DEFAULT_MAX_LINE_LENGTH + 1)[..], b"\r\nr"].concat());
    assert!(test.is_lost());
    let log = test.factory().borrow();
    assert_eq!(log.received(), [&b"ok"[..]]);
    let error = LineError::TooLong {
        length: DEFAULT_MAX_LINE_LENGTH + 1,
        max: DEFAULT_MAX_LINE_LENGTH,
    };
    assert_eq!(log.lost, [(true, Some(error.to_string()))]);
    assert_eq!(
        error.to_string(),
        "line of 16385 bytes is longer than the maximum of 16384"
    );
}

#[test]
fn an_unfinished_line_is_refused_before_it_is_buffered_further() {
    let mut test = plain();
    // A full-length line whose delimiter has half arrived is still fine.
    test.feed(&[&b"x".repeat(DEFAULT_MAX_LINE_LENGTH)[..], b"\r"].concat());
    assert!(!test.is_lost());
    let buffered = test.with_protocol(|receiver, _| receiver.buffered());
    assert_eq!(buffered, Some(DEFAULT_MAX_LINE_LENGTH + 1));
    // One byte more cannot be a line any longer.
    test.feed(b"x");
    assert!(test.is_lost());
    // A flood without delimiters is cut off at the limit, not buffered whole.
    let mut test = plain();
    for _ in 0..100 {
        test.feed(&[b'y'; 1000]);
        if test.is_lost() {
            break;
        }
        let buffered = test
            .with_protocol(|receiver, _| receiver.buffered())
            .unwrap();
        assert!(buffered < DEFAULT_MAX_LINE_LENGTH + 2);
    }
    assert!(test.is_lost());
}

#[test]
fn no_lines_are_delivered_after_the_protocol_closes() {
    struct Quitter;
    impl LineProtocol for Quitter {
        type Factory = Log;
        fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, line: &[u8]) {
            cx.factory().received.push(line.to_vec());
            if line == b"quit" {
                cx.lose_connection();
            }
        }
    }
    check_chunkings(
        || (LineReceiver::new(Quitter), Shared::new(Log::default())),
        b"a\r\nquit\r\nb\r\n",
        |test| {
            assert_eq!(test.factory().borrow().received(), [&b"a"[..], b"quit"]);
            assert!(test.is_lost());
        },
    );
}

#[test]
fn raw_mode_without_raw_data_received_aborts_the_connection() {
    struct Raw;
    impl LineProtocol for Raw {
        type Factory = Log;
        fn line_received(&mut self, cx: &mut LineContext<'_, '_, Self>, _: &[u8]) {
            cx.set_raw_mode();
        }
    }
    let mut test = ProtocolTest::new(LineReceiver::new(Raw), Shared::new(Log::default()));
    test.feed(b"raw please\r\nsome bytes");
    assert!(matches!(
        test.reason().as_deref(),
        Some(DisconnectReason::Aborted)
    ));
}

#[test]
fn send_line_and_timers_reach_the_line_protocol() {
    #[derive(Default)]
    struct Ticker {
        ticks: u32,
    }
    impl LineProtocol for Ticker {
        type Factory = Log;
        fn connection_made(&mut self, cx: &mut LineContext<'_, '_, Self>) {
            cx.call_later(SECOND, |ticker, cx| {
                ticker.ticks += 1;
                cx.send_line(format!("tick {}", ticker.ticks).as_bytes());
            });
        }
        fn line_received(&mut self, _: &mut LineContext<'_, '_, Self>, _: &[u8]) {}
    }
    let mut test = ProtocolTest::new(
        LineReceiver::new(Ticker::default()),
        Shared::new(Log::default()),
    );
    assert_eq!(test.take_written(), b"");
    test.advance(SECOND);
    assert_eq!(test.take_written(), b"tick 1\r\n");
    assert_eq!(test.with_protocol(|r, _| r.protocol().ticks), Some(1));
}

#[test]
fn connection_made_and_lost_are_forwarded_once() {
    check_chunkings(
        || Tester::new().start(),
        b"a\nb\n",
        |test| {
            test.disconnect_peer(false);
            let log = test.factory().borrow();
            assert_eq!(log.made, 1);
            assert_eq!(log.lost, [(true, None)]);
        },
    );
}

proptest! {
    /// However the stream is cut, the same lines come out.
    #[test]
    fn any_chunking_gives_the_same_lines(
        // Lines may hold a '\r' anywhere, even just before the delimiter.
        lines in prop::collection::vec(prop::collection::vec(prop::sample::select(&b"ab\r"[..]), 0..20), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for line in &lines {
            stream.extend_from_slice(line);
            stream.extend_from_slice(b"\r\n");
        }
        let mut test = plain();
        for chunk in cut(&stream, &cuts) {
            test.feed(chunk);
        }
        prop_assert_eq!(&test.factory().borrow().received, &lines);
        prop_assert!(!test.is_lost());
    }
}

/// Issue 17, item 8: an empty delimiter would find a line at every byte and never move
/// on. It is refused with a typed error, and the delimiter in force stays.
#[test]
fn an_empty_delimiter_is_refused_and_the_old_one_stays() {
    let mut test = ProtocolTest::new(LineReceiver::new(Switcher), Shared::new(Log::default()));
    let refused =
        test.with_protocol(|receiver, cx| receiver.with_context(cx, |_, cx| cx.set_delimiter(b"")));
    assert_eq!(refused, Some(Err(crate::basic::EmptyDelimiter)));
    test.feed(b"a\r\nb\r\n");
    assert_eq!(test.factory().borrow().received(), [&b"a"[..], b"b"]);
    assert_eq!(
        crate::basic::EmptyDelimiter.to_string(),
        "a line delimiter cannot be empty"
    );
}
