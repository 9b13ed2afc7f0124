//! No panic through the public API from factory borrows (issue 11, §1): the framework
//! never borrows a factory over a borrow of user code. A `do_stop` that comes due while
//! a protocol holds `cx.factory()` runs on the next turn.

use protocol::testing::ProtocolTest;
use protocol::{
    listen_tcp, Context, DisconnectReason, Factory, ListeningPort, Protocol, Shared,
    TcpListenOptions,
};
use reactor::Reactor;
use transport::Address;

#[derive(Debug, Default)]
struct Ports {
    port: Option<ListeningPort>,
    stopped: Option<bool>,
    events: Vec<&'static str>,
}

impl Ports {
    /// The docs' idiom: the factory finishes, and stops its last port.
    fn finished(&mut self, reactor: &mut Reactor) {
        if let Some(port) = self.port.take() {
            self.stopped = Some(port.stop_listening(reactor));
        }
    }
}

#[derive(Clone, Copy)]
enum Stop {
    /// `if let Some(port) = cx.factory().port.take() { port.stop_listening(..) }`
    IfLet,
    /// `cx.factory().finished(cx.reactor())`
    Finished,
}

struct Stopper(Stop);

impl Protocol for Stopper {
    type Factory = Ports;

    fn data_received(&mut self, cx: &mut Context<'_, Self>, _: &[u8]) {
        match self.0 {
            Stop::IfLet => {
                let mut stopped = None;
                if let Some(port) = cx.factory().port.take() {
                    // The guard of `cx.factory()` lives to the end of this block.
                    stopped = Some(port.stop_listening(cx.reactor()));
                }
                cx.factory().stopped = stopped;
            }
            Stop::Finished => cx.factory().finished(cx.reactor()),
        }
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, Self>, reason: &DisconnectReason) {
        assert!(!matches!(reason, DisconnectReason::Panicked(_)), "{reason}");
        cx.factory().events.push("lost");
    }
}

impl Factory for Ports {
    type Protocol = Stopper;

    fn build_protocol(&mut self, _: &Address) -> Option<Stopper> {
        None
    }

    fn do_start(&mut self, _: &mut Reactor) {
        self.events.push("do_start");
    }

    fn do_stop(&mut self, _: &mut Reactor) {
        self.events.push("do_stop");
    }
}

fn stop_the_last_port_while_holding_the_factory(how: Stop) {
    let factory = Shared::new(Ports::default());
    let mut test = ProtocolTest::new(Stopper(how), factory.clone());
    let port = listen_tcp(test.reactor(), 0, &factory, &TcpListenOptions::default()).unwrap();
    factory.borrow_mut().port = Some(port);
    test.feed(b"stop");
    assert!(
        !test.is_lost(),
        "the connection goes on: {:?}",
        test.reason()
    );
    let ports = factory.borrow();
    assert_eq!(ports.stopped, Some(true), "stop_listening tells the truth");
    assert_eq!(ports.events, ["do_start", "do_stop"], "do_stop ran, once");
    assert_eq!(factory.users(), 0);
}

#[test]
fn stop_listening_under_an_if_let_guard_of_the_factory_does_not_panic() {
    stop_the_last_port_while_holding_the_factory(Stop::IfLet);
}

#[test]
fn the_docs_idiom_finished_stopping_the_last_port_does_not_panic() {
    stop_the_last_port_while_holding_the_factory(Stop::Finished);
}
