"""The senders: clients of a project server that send stamped messages into one room."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import BenchError, connect_options, now_us, retrieve
from bench.redis_messages import MESSAGE_PREFIX, SETUP_TIMEOUT, TEXT_KEY, Load, stamped


class Sender:
    """One client of a project server that sends its share of the messages into a room."""

    def __init__(
        self, index: int, ws: ClientConnection, room: str, numbers: range, window: int
    ) -> None:
        self.index = index
        self.ws = ws
        self.room = room
        self.numbers = numbers  # of the messages it sends
        self.window = asyncio.Semaphore(window)
        self.joined = asyncio.Event()
        self.echoed = 0
        self.all_echoed = asyncio.Event()
        self.problem = ""
        self.failed = asyncio.Event()
        self.closing = False
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if not isinstance(frame, str):
                    continue
                if frame.startswith(MESSAGE_PREFIX):
                    at = frame.find(TEXT_KEY) + len(TEXT_KEY)
                    if int(frame[at : at + 3]) == self.index:
                        self.echoed += 1
                        self.window.release()
                        if self.echoed == len(self.numbers):
                            self.all_echoed.set()
                elif frame.startswith('{"type":"joined"'):
                    self.joined.set()
                elif frame.startswith('{"type":"error"'):
                    self.fail(f"the server sent an error: {frame}")
        except ConnectionClosed:
            pass
        if not self.closing:
            self.fail(f"the server closed the connection ({self.ws.close_code})")

    def fail(self, problem: str) -> None:
        self.problem = self.problem or f"sender {self.index}: {problem}"
        self.failed.set()

    async def send_all(self, text_bytes: int) -> None:
        head = '{"type":"message","room":"' + self.room + '","text":"'
        for number in self.numbers:
            await self.window.acquire()
            await self.ws.send(head + stamped(self.index, number, text_bytes) + '"}')
        if not self.numbers:
            self.all_echoed.set()

    async def close(self) -> None:
        self.closing = True
        self.reader.cancel()
        self.ws.transport.abort()
        await asyncio.gather(self.reader, return_exceptions=True)


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
    senders: list[Sender] = []
    try:
        for index in range(load.senders):
            try:
                ws = await connect(f"{ws_url}/ws", **connect_options(deflate=False))
            except Exception as error:
                raise BenchError(f"sender {index} could not connect: {error}") from None
            numbers = range(index, load.messages, load.senders)
            senders.append(Sender(index, ws, room, numbers, load.window))
            await ws.send(json.dumps({"type": "join", "room": room}))
        joined = asyncio.gather(*(sender.joined.wait() for sender in senders))
        await within(joined, SETUP_TIMEOUT, "the senders to join", senders)
        started = now_us()
        sending = asyncio.gather(*(sender.send_all(text_bytes) for sender in senders))
        await within(sending, deadline - time.monotonic(), "the messages to go out", senders)
        echoes = asyncio.gather(*(sender.all_echoed.wait() for sender in senders))
        await within(echoes, deadline - time.monotonic(), "the senders' echoes", senders)
        return started
    finally:
        await asyncio.gather(*(sender.close() for sender in senders))
