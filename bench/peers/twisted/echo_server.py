#!/usr/bin/env python3
"""An echo server in Twisted, as a benchmark peer.

    python3 echo_server.py --port 0

Writes back whatever dataReceived gets. Listens on 127.0.0.1 only, prints "Serving echo
on port N." and runs until SIGTERM or SIGINT. Sets TCP_NODELAY, as every echo peer in
the benchmark does.
"""

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from _common import BACKLOG, announce, port_parser, raise_fd_limit


class Echo(Protocol):
    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        self.transport.write(data)


def main():
    args = port_parser("Write back whatever is read.").parse_args()
    raise_fd_limit()
    port = reactor.listenTCP(
        args.port, Factory.forProtocol(Echo), backlog=BACKLOG, interface="127.0.0.1"
    )
    announce("echo", port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
