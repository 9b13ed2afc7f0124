#!/usr/bin/env python3
"""A Twisted caching poetry proxy, in the shape of the Twisted Introduction's proxy 3.0.

    python3 poetry_proxy.py [--port N] HOST:PORT

Listens on 127.0.0.1 and gives every client the poem of the poetry server at
HOST:PORT: the first request downloads it (maybeDeferred over a Deferred with a
canceller), later ones get it from the cache. Prints "Proxying HOST:PORT on port N."
and the tutorial's lines ("Fetching poem from server.", "Using cached poem.",
"Canceling poem download."). Unlike the tutorial, a download whose connection did not
end cleanly is a failure: it is neither cached nor relayed, and the client's
connection is aborted.
"""

import argparse
import sys

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, Protocol, ServerFactory

from _common import BACKLOG


class ProxyProtocol(Protocol):
    def connectionMade(self):
        self.deferred = defer.maybeDeferred(self.factory.service.get_poem)
        self.deferred.addCallbacks(self.send_poem, self.download_failed)

    def send_poem(self, poem):
        self.deferred = None
        self.transport.write(poem)
        self.transport.loseConnection()

    def download_failed(self, failure):
        self.deferred = None
        if not failure.check(defer.CancelledError):
            self.transport.abortConnection()

    def connectionLost(self, reason):
        if self.deferred is not None:
            pending, self.deferred = self.deferred, None
            pending.cancel()


class ProxyFactory(ServerFactory):
    protocol = ProxyProtocol

    def __init__(self, service):
        self.service = service


class DownloadProtocol(Protocol):
    def connectionMade(self):
        self.chunks = []

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        if reason.check(ConnectionDone):
            self.factory.finished(b"".join(self.chunks), None)
        else:
            self.factory.finished(None, reason)


class DownloadFactory(ClientFactory):
    protocol = DownloadProtocol

    def __init__(self, deferred):
        self.deferred = deferred

    def finished(self, poem, failure):
        if self.deferred is not None:
            d, self.deferred = self.deferred, None
            if failure is None:
                d.callback(poem)
            else:
                d.errback(failure)

    def clientConnectionFailed(self, connector, reason):
        self.finished(None, reason)


class ProxyService:
    poem = None

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def get_poem(self):
        if self.poem is not None:
            print("Using cached poem.", flush=True)
            return self.poem

        def cancel(_):
            print("Canceling poem download.", flush=True)
            factory.deferred = None
            connector.disconnect()

        print("Fetching poem from server.", flush=True)
        deferred = defer.Deferred(cancel)
        deferred.addCallback(self.keep)
        factory = DownloadFactory(deferred)
        connector = reactor.connectTCP(self.host, self.port, factory)
        return deferred

    def keep(self, poem):
        self.poem = poem
        return poem


def parse_address(text):
    host, sep, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("not [HOST:]PORT: %r" % text)
    return (host if sep else "") or "127.0.0.1", int(port)


def main():
    parser = argparse.ArgumentParser(description="Proxy a poetry server's poem.")
    parser.add_argument("upstream", type=parse_address, metavar="[HOST:]PORT")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    service = ProxyService(*args.upstream)
    port = reactor.listenTCP(args.port, ProxyFactory(service), backlog=BACKLOG, interface="127.0.0.1")
    sys.stdout.write("Proxying %s:%d on port %d.\n" % (args.upstream + (port.getHost().port,)))
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
