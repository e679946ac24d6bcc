"""The senders: clients of a project server that send stamped messages into one room.

They are ``loadclient.py``'s ``picows`` connections, as every benchmark's load clients are, so
that the servers, not the clients, are what is measured.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence

from bench.common import BenchError, now_us, retrieve
from bench.loadclient import MESSAGE_PREFIX, TEXT_KEY, Connection, LoadClient
from bench.redis_messages import SETUP_TIMEOUT, Load, stamped


class Sender(Connection):
    """One client of a project server that sends its share of the messages into a room,
    each as soon as fewer than ``window`` of its own are unanswered (not echoed back)."""

    def __init__(
        self, client: LoadClient, index: int, room: str, numbers: range, window: int
    ) -> None:
        super().__init__(client)
        loop = asyncio.get_running_loop()
        self.index = index
        self.numbers = numbers  # of the messages it sends
        self.window = window
        self.text_bytes = 0
        self.head = ('{"type":"message","room":"' + room + '","text":"').encode()
        self.sent = self.echoed = 0
        self.joined = asyncio.Event()
        self.all_echoed: asyncio.Future[None] = loop.create_future()
        self.problem = ""
        self.failed = asyncio.Event()

    def on_message(self, payload: bytes) -> None:
        if payload.startswith(MESSAGE_PREFIX):  # the hot path: no JSON parsing
            at = payload.find(TEXT_KEY) + len(TEXT_KEY)
            if int(payload[at : at + 3]) == self.index:
                self.echoed += 1
                if self.sent < len(self.numbers):
                    self._send_next()
                elif self.echoed == len(self.numbers) and not self.all_echoed.done():
                    self.all_echoed.set_result(None)
        elif payload.startswith(b'{"type":"joined"'):
            self.joined.set()
        elif payload.startswith(b'{"type":"error"'):
            self.fail(f"the server sent an error: {payload[:200]!r}")

    def on_lost(self) -> None:
        if not self.client.closing:
            self.fail("the server closed the connection")

    def fail(self, problem: str) -> None:
        self.problem = self.problem or f"sender {self.index}: {problem}"
        self.failed.set()

    def send_all(self, text_bytes: int) -> None:
        """Send the first ``window`` messages; each echo sends the next."""
        self.text_bytes = text_bytes
        for _ in range(min(self.window, len(self.numbers))):
            self._send_next()
        if not self.numbers:
            self.all_echoed.set_result(None)

    def _send_next(self) -> None:
        number = self.numbers[self.sent]
        self.sent += 1
        self.send_text(self.head + stamped(self.index, number, self.text_bytes).encode() + b'"}')


async def within(
    awaitable: Awaitable[object], timeout: float, what: str, senders: Sequence[Sender] = ()
) -> None:
    """Await ``awaitable``; fail after ``timeout`` s, or as soon as a sender has failed."""
    task = asyncio.ensure_future(awaitable)
    failures = [asyncio.ensure_future(sender.failed.wait()) for sender in senders]
    try:
        await asyncio.wait(
            {task, *failures}, timeout=max(timeout, 0.001), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for failure in failures:
            failure.cancel()
        if not task.done():
            task.cancel()
            task.add_done_callback(retrieve)
    problems = [sender.problem for sender in senders if sender.problem]
    if problems:
        raise BenchError(problems[0])
    if not task.done():
        raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
    task.result()  # raises what it raised


async def send_through_project(
    ws_url: str, room: str, load: Load, text_bytes: int, deadline: float
) -> int:
    """Connect and join the senders, then send every message; return the first send's time."""
    client = LoadClient()
    senders: list[Sender] = []

    def make() -> Sender:
        index = len(senders)
        numbers = range(index, load.messages, load.senders)
        senders.append(Sender(client, index, room, numbers, load.window))
        return senders[-1]

    joining = json.dumps({"type": "join", "room": room}).encode()

    async def join(sender: Connection) -> None:
        sender.send_text(joining)

    try:
        opening = client.open(f"{ws_url}/ws", load.senders, make, join)
        await within(opening, SETUP_TIMEOUT, "the senders to connect", senders)
        joined = asyncio.gather(*(sender.joined.wait() for sender in senders))
        await within(joined, SETUP_TIMEOUT, "the senders to join", senders)
        started = now_us()
        for sender in senders:
            sender.send_all(text_bytes)
        echoes = asyncio.gather(*(sender.all_echoed for sender in senders))
        await within(echoes, deadline - time.monotonic(), "the senders' echoes", senders)
        return started
    finally:
        await client.close()
