"""Shared bits of the benchmark peers: arguments, descriptor limit, start line."""

import argparse
import resource
import sys

# The same accept backlog as mio's and tokio's TcpListener::bind (Twisted's default is
# 50, which drops SYNs at 100 concurrent connects and adds 1 s retries to the figures).
BACKLOG = 1024


def raise_fd_limit():
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (10,000 idle connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def port_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--port", type=int, required=True, help="port on 127.0.0.1 (0: any free port)"
    )
    return parser


def announce(what, port):
    """Print the one start line the harness waits for, and flush it."""
    sys.stdout.write("Serving %s on port %d.\n" % (what, port))
    sys.stdout.flush()
