#!/usr/bin/env python3
"""A Twisted poetry transform server, in the shape of the Twisted Introduction's
transformedpoetry.py (Part 12).

    python3 transform_server.py [--port N]

Each client sends one netstring "<transform>.<poem>"; the server answers with one
netstring holding the transformed poem, then closes. An unknown transform, a request
with no ".", or a transform that raises gets a close with no reply. Transforms:
cummingsify (lower case). Prints "Serving transforms on port N."
"""

from twisted.internet import reactor
from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import NetstringReceiver

from _common import BACKLOG, port_parser


class TransformProtocol(NetstringReceiver):
    def stringReceived(self, request):
        name, dot, poem = request.partition(b".")
        if not dot:
            self.transport.loseConnection()
            return
        answer = self.factory.transform(name, poem)
        if answer is not None:
            self.sendString(answer)
        self.transport.loseConnection()


class TransformFactory(ServerFactory):
    protocol = TransformProtocol

    def transform(self, name, poem):
        method = getattr(self, "xform_" + name.decode("ascii", "replace"), None)
        if method is None:
            return None
        try:
            return method(poem)
        except Exception:
            return None

    def xform_cummingsify(self, poem):
        return poem.decode("utf-8").lower().encode("utf-8")


def main():
    args = port_parser("A netstring poetry transform server.").parse_args()
    port = reactor.listenTCP(args.port, TransformFactory(), backlog=BACKLOG, interface="127.0.0.1")
    print("Serving transforms on port %d." % port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
