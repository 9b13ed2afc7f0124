//! `ProtocolTest::feed` never loses what the peer sent (issue 17, item 9): bytes the
//! protocol does not read because it paused wait until it resumes.

use protocol::testing::ProtocolTest;
use protocol::{for_protocol, Context, DisconnectReason, Protocol, SimpleFactory};

/// Pauses reading as soon as it is connected; counts what it receives.
#[derive(Default)]
struct Paused {
    received: Vec<u8>,
    eof_after: Option<usize>,
}

impl Protocol for Paused {
    type Factory = SimpleFactory<Self>;

    fn connection_made(&mut self, cx: &mut Context<'_, Self>) {
        cx.pause_reading();
    }

    fn data_received(&mut self, _: &mut Context<'_, Self>, data: &[u8]) {
        self.received.extend_from_slice(data);
    }

    fn connection_lost(&mut self, _: &mut Context<'_, Self>, reason: &DisconnectReason) {
        assert!(reason.is_clean(), "{reason}");
    }

    fn read_connection_lost(&mut self, _: &mut Context<'_, Self>) -> transport::EofAction {
        self.eof_after = Some(self.received.len());
        transport::EofAction::KeepWriting
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn feed_keeps_what_a_paused_protocol_has_not_read() {
    let mut test = ProtocolTest::with_capacity(Paused::default(), for_protocol(), 1024);
    let sent = pattern(50_000);
    test.feed(&sent);
    let received = test.with_protocol(|p, _| p.received.len()).unwrap();
    assert_eq!(received, 0, "paused: nothing delivered yet");
    assert_eq!(test.unsent(), sent.len() - 1024, "the stream holds 1024");
    // The peer's half-close waits behind its bytes.
    test.close_peer_write();
    test.with_protocol(|_, cx| cx.resume_reading());
    let (received, eof_after) = test
        .with_protocol(|p, _| (p.received.clone(), p.eof_after))
        .unwrap();
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "every byte, in order");
    assert_eq!(
        eof_after,
        Some(sent.len()),
        "end of file after the last byte"
    );
    assert_eq!(test.unsent(), 0);
}
