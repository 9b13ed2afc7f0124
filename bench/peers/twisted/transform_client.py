#!/usr/bin/env python3
"""A Twisted transform client, in the shape of the Twisted Introduction's client 6.0.

    python3 transform_client.py [--timeout SECONDS] [--repeat N] HOST:PORT TRANSFORM POEM_FILE

Sends one netstring request "TRANSFORM.<poem>" with twisted.protocols.basic's
NetstringReceiver and writes the reply's payload to stdout, unchanged. With --repeat N
it makes N requests one after another and prints the reply once (the benchmark's
mode; stderr gets "N requests in S seconds"). Exits 1 if the server closed without a
reply (or the timeout passed), 2 on bad arguments.
"""

import argparse
import sys
import time

from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import NetstringReceiver


class TransformClient(NetstringReceiver):
    # A reply may be longer than the request (ß lowered stays, İ grows): allow 16 MiB.
    MAX_LENGTH = 16 * 1024 * 1024

    def connectionMade(self):
        self.reply = None
        self.sendString(self.factory.request)

    def stringReceived(self, string):
        self.reply = string
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.factory.finished(self.reply)


class TransformClientFactory(ClientFactory):
    protocol = TransformClient

    def __init__(self, request):
        self.request = request
        self.deferred = defer.Deferred()

    def finished(self, reply):
        if self.deferred is not None:
            d, self.deferred = self.deferred, None
            if reply is None:
                d.errback(Exception("the server closed without a reply"))
            else:
                d.callback(reply)

    def clientConnectionFailed(self, connector, reason):
        if self.deferred is not None:
            d, self.deferred = self.deferred, None
            d.errback(reason)


def transform(host, port, request):
    factory = TransformClientFactory(request)
    reactor.connectTCP(host, port, factory)
    return factory.deferred


def parse_address(text):
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("not HOST:PORT: %r" % text)
    return host or "127.0.0.1", int(port)


def main():
    parser = argparse.ArgumentParser(description="Ask a transform server for one transform.")
    parser.add_argument("server", type=parse_address, metavar="HOST:PORT")
    parser.add_argument("transform")
    parser.add_argument("poem_file")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with open(args.poem_file, "rb") as f:
        poem = f.read()
    request = args.transform.encode() + b"." + poem
    outcome = {}

    @defer.inlineCallbacks
    def run():
        started = time.perf_counter()
        try:
            for _ in range(args.repeat):
                outcome["reply"] = yield transform(*args.server, request)
        except Exception as e:  # any failure: report it, exit 1
            outcome["error"] = e
        outcome["seconds"] = time.perf_counter() - started
        if reactor.running:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.callLater(args.timeout, lambda: reactor.running and reactor.stop())
    reactor.run()
    if "reply" not in outcome or "error" in outcome:
        sys.stderr.write("transform failed: %s\n" % outcome.get("error", "timed out"))
        sys.exit(1)
    if args.repeat > 1:
        sys.stderr.write("%d requests in %.3f seconds\n" % (args.repeat, outcome["seconds"]))
    sys.stdout.buffer.write(outcome["reply"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
