#!/usr/bin/env python3
"""The fast poetry server of the Twisted Introduction, as a benchmark peer.

    python3 poetry_server.py --port 0 poem.txt

Reads the poem whole at start. Each client gets it written at connectionMade, then
loseConnection (the transport sends everything first). Listens on 127.0.0.1 only,
prints "Serving poetry on port N." and runs until SIGTERM or SIGINT (the reactor's own
signal handlers stop it cleanly).
"""

from twisted.internet import reactor
from twisted.internet.protocol import Protocol, ServerFactory

from _common import BACKLOG, announce, port_parser, raise_fd_limit


class PoetryProtocol(Protocol):
    def connectionMade(self):
        self.transport.write(self.factory.poem)
        self.transport.loseConnection()


class PoetryFactory(ServerFactory):
    protocol = PoetryProtocol

    def __init__(self, poem):
        self.poem = poem


def main():
    parser = port_parser("Serve one poem to every client, then close.")
    parser.add_argument("poetry_file", help="the poem")
    args = parser.parse_args()
    try:
        with open(args.poetry_file, "rb") as f:
            poem = f.read()
    except OSError as e:
        parser.exit(1, "poetry_server: cannot read %s: %s\n" % (args.poetry_file, e.strerror))
    raise_fd_limit()
    port = reactor.listenTCP(
        args.port, PoetryFactory(poem), backlog=BACKLOG, interface="127.0.0.1"
    )
    announce("poetry", port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
