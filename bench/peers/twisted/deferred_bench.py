"""deferred_bench.py [COUNT]: Twisted's Deferred, measured as deferred-bench measures
ours (cargo xtask bench deferred), printed as one RESULT {json} line.

chain_ns: a Deferred created, given 10 callbacks and fired; await_ns: inside one
coroutine run by ensureDeferred, a Deferred created, fired and awaited; wake_ns:
coroutines each awaiting its own Deferred, 1,000 at a time, all fired (Twisted resumes
each at once, inside callback()), per coroutine; bytes_per_pending: traced memory per pending
Deferred.
"""

import json
import sys
import time
import tracemalloc

from twisted.internet.defer import Deferred, ensureDeferred


def add_one(x):
    return x + 1


def chain(count):
    start = time.perf_counter_ns()
    for i in range(count):
        d = Deferred()
        for _ in range(10):
            d.addCallback(add_one)
        d.callback(i)
    return (time.perf_counter_ns() - start) / count


def awaited(count):
    async def loop():
        total = 0
        for i in range(count):
            d = Deferred()
            d.callback(i)
            total += await d
        return total

    start = time.perf_counter_ns()
    ensureDeferred(loop())
    return (time.perf_counter_ns() - start) / count


BATCH = 1000


def woken(count):
    done = [0]

    async def wait(d):
        await d
        done[0] += 1

    batches = max(1, -(-count // BATCH))
    took = 0
    for _ in range(batches):
        deferreds = [Deferred() for _ in range(BATCH)]
        tasks = [ensureDeferred(wait(d)) for d in deferreds]
        start = time.perf_counter_ns()
        for i, d in enumerate(deferreds):
            d.callback(i)
        took += time.perf_counter_ns() - start
        del tasks
    assert done[0] == batches * BATCH, done
    return took / (batches * BATCH)


def pending_bytes(count):
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pending = [Deferred() for _ in range(count)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del pending
    return (after - before) / count


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    result = {
        "chain_ns": chain(count),
        "await_ns": awaited(count),
        "wake_ns": woken(count),
        "bytes_per_pending": pending_bytes(count),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
