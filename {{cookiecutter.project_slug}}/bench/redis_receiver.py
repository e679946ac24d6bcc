"""The Redis benchmark's receiver: one process that counts one measurement's messages.

``bench/redis_pubsub.py`` starts it for each measurement, from the project root::

    python -m bench.redis_receiver --receive project|redis --url URL --target ROOM_OR_CHANNEL
                                   --result FILE --messages N --senders N --timeout SECONDS

It joins the room on the project server at ``--url`` (or subscribes to the Redis channel),
prints ``receiver ready``, counts until every message has come, nothing came for a while or
time is up, and writes what it counted to ``--result`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from bench.common import now_us, positive, run_on_uvloop
from bench.loadclient import MESSAGE_PREFIX, Connection, LoadClient
from bench.redis_messages import TEXT_KEY, Tally
from bench.redis_reference import receive_redis

IDLE_TIMEOUT = 10.0  # the receiver gives up once nothing has arrived for this long


class Member(Connection):
    """The receiving member of the room: it counts each message on arrival."""

    def __init__(self, client: LoadClient, tally: Tally) -> None:
        super().__init__(client)
        self.tally = tally
        self.joined = asyncio.Event()

    def on_message(self, payload: bytes) -> None:
        arrived = now_us()
        if payload.startswith(MESSAGE_PREFIX):  # the hot path: no JSON parsing
            text = payload.decode()
            self.tally.add(text, text.find(TEXT_KEY) + len(TEXT_KEY), arrived)
        elif payload.startswith(b'{"type":"joined"'):
            self.joined.set()
        elif payload.startswith(b'{"type":"error"'):
            self.stop(f"the server sent an error: {payload[:200]!r}")

    def on_lost(self) -> None:
        if not self.client.closing:
            self.stop("the server closed the connection")

    def stop(self, problem: str) -> None:
        self.tally.problem = self.tally.problem or problem
        self.tally.done.set()
        self.joined.set()


async def receive_project(url: str, room: str, tally: Tally) -> None:
    """Join ``room`` on the server at ``url`` (a ``picows`` client, as every benchmark's load
    clients are), say ready, and count its messages."""
    client = LoadClient()
    try:
        (member,) = await client.open(f"{url}/ws", 1, lambda: Member(client, tally))
        member.send_text(json.dumps({"type": "join", "room": room}).encode())
        await cast(Member, member).joined.wait()
        if not tally.problem:
            tally.say_ready()
            await tally.done.wait()
    finally:
        await client.close()


async def watch(tally: Tally, deadline: float) -> None:
    """Return once the count is complete, has stalled for ``IDLE_TIMEOUT`` or time is up."""
    while not tally.done.is_set():
        now = time.monotonic()
        if now > deadline:
            tally.problem = "the receiver ran out of time"
            return
        if tally.received and now - tally.last_progress > IDLE_TIMEOUT:
            tally.problem = f"nothing arrived for {IDLE_TIMEOUT:g} s"
            return
        await asyncio.sleep(0.2)


async def serve_receiver(options: argparse.Namespace) -> None:
    """Count, then write what was counted to ``options.result``."""
    deadline = time.monotonic() + options.timeout
    tally = Tally(options.messages, options.senders)
    if options.receive == "project":
        counting = receive_project(options.url, options.target, tally)
    else:
        counting = receive_redis(options.url, options.target, tally)
    task = asyncio.ensure_future(counting)
    watcher = asyncio.ensure_future(watch(tally, deadline))
    await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    cpu = time.process_time()
    watcher.cancel()
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task  # raises what the counting raised
    result = {
        "received": tally.received,
        "duplicates": tally.duplicates,
        "out_of_order": tally.out_of_order,
        "latencies_us": tally.latencies,
        "last_us": tally.last_us,
        "cpu_seconds": cpu - tally.ready_cpu,
        "problem": tally.problem,
    }
    Path(options.result).write_text(json.dumps(result))


def command(
    kind: str, url: str, target: str, result: Path, messages: int, senders: int, timeout: float
) -> list[str]:
    """The command line that starts this receiver (from the project root)."""
    return [
        *(sys.executable, "-m", "bench.redis_receiver", "--receive", kind),
        *("--url", url, "--target", target, "--result", str(result)),
        *("--messages", str(messages), "--senders", str(senders)),
        *("--timeout", f"{timeout:.1f}"),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--receive", choices=["project", "redis"], required=True)
    parser.add_argument("--url", required=True, help="the project server's, or Redis's")
    parser.add_argument("--target", required=True, help="the room, or the channel")
    parser.add_argument("--result", required=True, help="the JSON file to write")
    parser.add_argument("--messages", type=positive, required=True)
    parser.add_argument("--senders", type=positive, required=True)
    parser.add_argument("--timeout", type=float, required=True, help="seconds it may take")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    run_on_uvloop(serve_receiver(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
