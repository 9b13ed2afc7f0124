#!/usr/bin/env python3
"""A Twisted poetry client, in the style of the Twisted Introduction, Part 5.

    python3 get_poetry.py [--timeout SECONDS] [HOST:]PORT ...

Downloads one poem from each server at once (HOST defaults to 127.0.0.1). When all are
done, writes each poem's bytes to stdout, unchanged and in the order of the arguments,
and one line per poem to stderr ("Task 1: 3003 bytes from 127.0.0.1:10000").
Exits 1 if any download failed or the timeout (default 30 s) passed; the poems that
did arrive are still printed. Exits 2 on bad arguments.
"""

import argparse
import sys

from twisted.internet import reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, Protocol


class PoetryProtocol(Protocol):
    def connectionMade(self):
        self.chunks = []

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        # A clean close ends the poem; a reset or other error loses it.
        if reason.check(ConnectionDone):
            self.factory.poem_finished(b"".join(self.chunks))
        else:
            self.factory.poem_failed(reason.getErrorMessage())


class PoetryClientFactory(ClientFactory):
    protocol = PoetryProtocol

    def __init__(self, task, address, on_done):
        self.task = task
        self.address = address
        self.on_done = on_done

    def poem_finished(self, poem):
        self.on_done(self.task, poem, None)

    def poem_failed(self, error):
        self.on_done(self.task, None, error)

    def clientConnectionFailed(self, connector, reason):
        self.poem_failed(reason.getErrorMessage())


def parse_address(text):
    host, sep, port = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("not [HOST:]PORT: %r" % text)
    return host or "127.0.0.1", int(port)


def main():
    parser = argparse.ArgumentParser(description="Get a poem from each server.")
    parser.add_argument("servers", nargs="+", type=parse_address, metavar="[HOST:]PORT")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds in all")
    args = parser.parse_args()

    results = {}

    def on_done(task, poem, error):
        results[task] = (poem, error)
        if len(results) == len(args.servers) and reactor.running:
            reactor.stop()

    for task, (host, port) in enumerate(args.servers, 1):
        factory = PoetryClientFactory(task, "%s:%d" % (host, port), on_done)
        reactor.connectTCP(host, port, factory, timeout=args.timeout)
    reactor.callLater(args.timeout, lambda: reactor.running and reactor.stop())
    reactor.run()

    failed = False
    for task, (host, port) in enumerate(args.servers, 1):
        poem, error = results.get(task, (None, "timed out"))
        where = "%s:%d" % (host, port)
        if poem is None:
            failed = True
            sys.stderr.write("Task %d: failed, %s: %s\n" % (task, where, error))
            continue
        sys.stderr.write("Task %d: %d bytes from %s\n" % (task, len(poem), where))
        sys.stdout.buffer.write(poem)
    sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
