//! ARCHITECTURE.md's figure for what an idle connection costs, kept true: change the
//! connection's layout and this test, and the figure, move together.

use transport::{Connection, DisconnectReason, Handler, Transport};

/// A handler that holds nothing, so the size measured is the connection's own.
struct Nothing;

impl Handler for Nothing {
    fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {}
    fn connection_lost(&mut self, _: &mut Transport<'_>, _: &DisconnectReason) {}
}

/// ARCHITECTURE.md (`transport/`): an idle connection is 120 bytes
/// (`Connection<H>` for a handler of no size, its socket inline) plus its handler and
/// its reactor slot. Everything it rarely uses is out of line; a field added inline
/// grows it past the figure. (In debug builds mio's sockets carry a selector id: 8
/// bytes more.)
#[test]
fn an_idle_connection_is_as_small_as_the_architecture_says() {
    let debug_extra = std::mem::size_of::<mio::net::TcpStream>().max(8) - 8;
    let size = std::mem::size_of::<Connection<Nothing>>() - debug_extra;
    assert!(
        size <= 120,
        "Connection is {size} bytes: move ARCHITECTURE.md's figure with this test"
    );
}
