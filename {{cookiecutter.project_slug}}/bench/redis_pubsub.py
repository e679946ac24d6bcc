"""Redis pub/sub benchmark: the messages/s one Redis channel carries between two server processes.

Run it from the project root with the project's virtualenv (``make bench``)::

    .venv/bin/python -m bench.redis_pubsub [--messages 20000] [--senders 4] [--text-bytes 32]
                                           [--window 16] [--timeout 300]

It starts a throwaway ``redis-server`` (through ``tests/support/redis_server.py``), two
single-worker project servers that share it (one ``REDIS_PREFIX``) and the two processes of the
floor (``bench/redis_relay.py``), all on free ports of 127.0.0.1, then measures, one after the
other (``bench/redis_measure.py``):

- two servers: ``--senders`` clients of server 1 join one room and send ``--messages`` messages
  in all, as fast as the server lets them: like well-behaved clients, each keeps at most
  ``--window`` messages sent but not yet echoed back to it. A receiver on server 2, in the same
  room, counts them: every message crosses the Redis channel from one server process to the other.
- one server: the same, with the receiver on server 1. With the Redis broker a process's own
  members get room messages back through the subscription too, so this path crosses Redis as
  well; what it leaves out is the second server.
- history off: the two-server measurement through two more servers that keep no room history
  (``HISTORY_SIZE=0``): what numbering and keeping every message in a Redis stream costs.
- floor: the two-server measurement through two processes of a bare relay (picows and
  redis-py, no validation, presence or limits) instead of the project's servers: the least any
  server carrying these messages between two processes through Redis costs on this machine.
- reference: the same messages, of the size the project publishes on the channel, through raw
  redis-py (asyncio): ``PUBLISH`` from this process (``--senders`` connections, each with at most
  ``--window`` commands pipelined and not yet answered), ``SUBSCRIBE`` in another one: what the
  channel carries with nothing else around it.
- one at a time: two servers, the floor, then the raw reference, again, with one sender and one
  message in flight (at most 2,000 messages): what each path adds to a message's latency when
  nothing queues.

The receiver always runs in a process of its own (``bench/redis_receiver.py``). Each message's
text carries its sender, its number and its send time, so the receiver measures every message's
latency. Messages/s is the count delivered over the time from the first send to the last arrival.

Every process's CPU time over each measurement is shown too: the process near 100% of a CPU is
the one that limits the figures (on a machine with few CPUs, they also take turns on them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from redis.exceptions import RedisError
from websockets.exceptions import ConnectionClosed

from bench.common import BenchError, positive, run_bench, run_on_uvloop
from bench.redis_measure import (
    QUIET_MESSAGES,
    RELAYS,
    SERVERS,
    WITHOUT_HISTORY,
    Measurement,
    measure_all,
    plans,
    require_redis_server,
    servers_on_redis,
)
from bench.redis_messages import STAMP_LENGTH, Load
from bench.redis_report import header, log_tail, notes_on, report
from bench.servers import RunningServer, tree_cpu_seconds

MAX_MESSAGES = 1_000_000
MAX_SENDERS = 64
MAX_IN_FLIGHT = 128  # all senders' windows together: well inside a server's outbox (256)
MAX_TEXT = 4096  # the project's longest message text


def bench(options: argparse.Namespace) -> int:
    deadline = time.monotonic() + options.timeout
    require_redis_server()
    load = Load(options.messages, options.senders, options.window)
    quiet = min(options.messages, QUIET_MESSAGES)
    print(header(load, quiet, options.text_bytes), flush=True)
    servers: list[RunningServer] = []
    with tempfile.TemporaryDirectory(prefix="redis-pubsub-") as tmp:
        log_dir = Path(tmp)
        try:
            specs = SERVERS + RELAYS + WITHOUT_HISTORY
            with servers_on_redis(specs, log_dir, servers) as (redis_url, redis_pid):
                meters = {server.label: server.cpu_seconds for server in servers}
                meters["redis-server"] = lambda: tree_cpu_seconds(redis_pid)
                work = plans(servers, redis_url, load, options.text_bytes)
                measuring = measure_all(work, meters, log_dir, options.timeout, deadline)
                measurements: list[Measurement] = run_on_uvloop(measuring)
                notes = notes_on(measurements, servers)
        except (BenchError, OSError, ConnectionClosed, RedisError) as error:
            raise BenchError(f"{error}{''.join(log_tail(server) for server in servers)}") from None

    print()
    print(report(measurements, notes))
    incomplete = [measurement.label for measurement in measurements if not measurement.complete]
    if incomplete:
        print(
            f"\nredis_pubsub: ERROR: not every message arrived once: {'; '.join(incomplete)}",
            file=sys.stderr,
        )
        return 1
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--messages", type=positive, default=20_000, help="messages per measurement (default 20000)"
    )
    parser.add_argument("--senders", type=positive, default=4, help="sending clients (default 4)")
    parser.add_argument(
        "--window", type=positive, default=16, help="messages in flight per sender (default 16)"
    )
    parser.add_argument(
        "--text-bytes", type=int, default=32, help="length of the message text (default 32)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds the whole run may take (default 300)"
    )
    options = parser.parse_args(argv)
    if options.messages > MAX_MESSAGES or options.senders > MAX_SENDERS:
        parser.error(f"use --messages up to {MAX_MESSAGES}, --senders up to {MAX_SENDERS}")
    if options.senders * options.window > MAX_IN_FLIGHT:
        parser.error(f"--senders times --window must be at most {MAX_IN_FLIGHT}")
    if not STAMP_LENGTH <= options.text_bytes <= MAX_TEXT:
        parser.error(f"--text-bytes must be from {STAMP_LENGTH} to {MAX_TEXT}")
    if options.timeout <= 0:
        parser.error("--timeout must be positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    return run_bench("redis_pubsub", lambda: bench(options))


if __name__ == "__main__":
    sys.exit(main())
