"""One load-client process: it opens websockets and runs what ``workloads.py`` tells it.

Commands arrive on stdin and answers leave on stdout, one JSON object a line; an answer carries
the CPU time this process spent on the command, so that the coordinator can tell when the
clients, not the server, are the limit. Several of these run at once, one per CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common import BenchError, at_most, connect_options, now_us
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

CONNECTS_AT_ONCE = 50  # handshakes in flight per process
MESSAGE_PREFIX = '{"type":"message"'
TEXT_KEY = '"text":"'
STAMP_LENGTH = 22  # of a message text: its number and send time, see stamp()
# For opening and settling connections, however many: 1,000 joins to a room make the project
# server send 500,000 presence events, each compressed for its connection.
SETUP_TIMEOUT = 300.0
PONG = '"type":"pong"'


def stamp(number: int, length: int) -> str:
    """A message text: its number (6 digits) and send time in µs (16), padded to ``length``."""
    return f"{number:06d}{now_us():016d}".ljust(length, ".")


class Receiver:
    """A ``/ws`` member that notes when each numbered message reaches it."""

    def __init__(self, ws: ClientConnection, client: LoadClient) -> None:
        self.ws = ws
        self.client = client
        self.joined = asyncio.Event()
        self.ponged = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                arrived = now_us()
                if not isinstance(frame, str):
                    continue
                if frame.startswith(MESSAGE_PREFIX):  # the hot path: no JSON parsing
                    at = frame.find(TEXT_KEY) + len(TEXT_KEY)
                    self.note(frame[at : at + STAMP_LENGTH], arrived)
                    continue
                event = json.loads(frame)
                kind = event.get("type")
                if kind == "message":
                    self.note(event["text"], arrived)
                elif kind == "joined":
                    self.joined.set()
                elif kind == "pong":
                    self.ponged.set()
        if not self.client.closing:
            self.client.lost.append(f"{self.ws.close_code} {self.ws.close_reason}")
        # Whoever waits for this connection's answers waits no longer.
        self.joined.set()
        self.ponged.set()

    def note(self, text: str, arrived: int) -> None:
        self.client.arrived(int(text[:6]), arrived - int(text[6:STAMP_LENGTH]))


class LoadClient:
    """The connections of this process and what they measured."""

    def __init__(self, deflate: bool) -> None:
        self.deflate = deflate
        self.connections: list[ClientConnection] = []
        self.receivers: list[Receiver] = []
        self.rounds: dict[int, list[int]] = {}  # message number: latencies (µs)
        self.expected: dict[int, int] = {}  # message number: receivers it is for here
        self.complete: dict[int, asyncio.Event] = {}
        self.lost: list[str] = []
        self.closing = False

    async def open(
        self,
        url: str,
        count: int,
        prepare: Callable[[ClientConnection], Awaitable[None]] | None = None,
    ) -> list[ClientConnection]:
        """``count`` connections, a few at a time, each ``prepare``d before the next opens.

        Preparing in step (a join, say) keeps bursts small: every join sends a presence event
        to every member, and a member sent hundreds at once overflows its outbox.
        """
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

        async def one() -> ClientConnection:
            async with gate:
                ws = await connect(url, **connect_options(self.deflate))
                self.connections.append(ws)
                if prepare is not None:
                    await prepare(ws)
                return ws

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def echo(
        self, url: str, connections: int, seconds: float, text_bytes: int
    ) -> dict[str, Any]:
        """Round trips of ``text_bytes`` characters on each connection for ``seconds``."""
        opening = asyncio.ensure_future(self.open(url, connections))
        await self.setup(opening)
        sockets = opening.result()
        text = "x" * text_bytes
        latencies: list[int] = []
        cpu, started = time.process_time(), time.perf_counter()
        deadline = started + seconds

        async def loop(ws: ClientConnection) -> None:
            while time.perf_counter() < deadline:
                sent = time.perf_counter_ns()
                await ws.send(text)
                if await ws.recv() != text:
                    raise BenchError("the echo differed from what was sent")
                latencies.append((time.perf_counter_ns() - sent) // 1000)

        looping = asyncio.gather(*(loop(ws) for ws in sockets))
        if not await at_most(seconds + SETUP_TIMEOUT, looping):
            raise BenchError("the echo round trips did not end in time")
        looping.result()  # raises what a loop raised
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        await self.close()
        return {"latencies_us": latencies, "wall": wall, "cpu": cpu}

    async def join(self, url: str, count: int, room: str) -> dict[str, Any]:
        """``count`` receivers in ``room``, each settled: it has its pong after its join."""
        cpu = time.process_time()
        joining = json.dumps({"type": "join", "room": room})

        receivers: list[Receiver] = []

        async def join_one(ws: ClientConnection) -> None:
            receivers.append(Receiver(ws, self))
            await ws.send(joining)
            await receivers[-1].joined.wait()

        async def settle() -> None:
            await self.open(url, count, join_one)
            self.receivers += receivers
            # Once a receiver has its pong, every frame sent to it before has reached it.
            await asyncio.gather(*(r.ws.send('{"type":"ping"}') for r in receivers))
            await asyncio.gather(*(r.ponged.wait() for r in receivers))

        await self.setup(asyncio.ensure_future(settle()))
        return {"opened": len(self.receivers), "cpu": time.process_time() - cpu}

    def arrived(self, number: int, latency: int) -> None:
        latencies = self.rounds.setdefault(number, [])
        latencies.append(latency)
        if len(latencies) == self.expected.get(number):
            self.complete.setdefault(number, asyncio.Event()).set()

    async def collect(self, number: int, expected: int, wait: float) -> dict[str, Any]:
        """Latencies of message ``number`` at its ``expected`` receivers here, once all have it.

        The answer comes after ``wait`` seconds at the latest, with those it reached by then.
        """
        cpu = time.process_time()
        self.expected[number] = expected
        done = self.complete.setdefault(number, asyncio.Event())
        if len(self.rounds.get(number, ())) >= expected:
            done.set()
        await at_most(wait, asyncio.ensure_future(done.wait()))
        self.complete.pop(number, None)
        self.expected.pop(number, None)
        return {"latencies_us": self.rounds.pop(number, []), "cpu": time.process_time() - cpu}

    async def idle(self, url: str, count: int) -> dict[str, Any]:
        """``count`` more connections that stay open and quiet once each has had its pong."""

        async def settle(ws: ClientConnection) -> None:
            await ws.send('{"type":"ping"}')
            while PONG not in str(await ws.recv()):
                pass

        async def settle_all() -> None:
            await asyncio.gather(*(settle(ws) for ws in await self.open(url, count)))

        await self.setup(asyncio.ensure_future(settle_all()))
        return {"open": len(self.connections)}

    async def setup(self, future: asyncio.Future[Any]) -> None:
        """Wait for ``future``; a :class:`BenchError` after ``SETUP_TIMEOUT`` seconds."""
        if not await at_most(SETUP_TIMEOUT, future):
            raise BenchError(f"opening connections took over {SETUP_TIMEOUT:g} s")
        future.result()  # raises what it raised
        if self.lost:
            raise BenchError(f"{len(self.lost)} connections closed by the server: {self.lost[0]}")

    async def close(self) -> dict[str, Any]:
        """Drop every connection at once (a closing handshake each would take a while)."""
        self.closing = True
        for receiver in self.receivers:
            receiver.reader.cancel()
        for ws in self.connections:
            ws.transport.abort()
        await asyncio.gather(*(r.reader for r in self.receivers), return_exceptions=True)
        closed = len(self.connections)
        self.connections, self.receivers = [], []
        self.rounds, self.expected, self.complete = {}, {}, {}
        self.closing = False
        return {"closed": closed}


async def serve_commands() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = LoadClient(deflate=False)
    handlers: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        "echo": client.echo,
        "join": client.join,
        "collect": client.collect,
        "idle": client.idle,
        "close": client.close,
    }
    while line := await reader.readline():
        command = json.loads(line)
        operation = command.pop("op")
        if operation == "deflate":
            client.deflate = bool(command["on"])
            reply: dict[str, Any] = {}
        else:
            try:
                reply = await handlers[operation](**command)
            except Exception as error:  # the coordinator reports it and stops
                reply = {"error": f"{operation}: {type(error).__name__}: {error}"}
        if client.lost:
            reply["lost"] = [*client.lost[:3], f"({len(client.lost)} in all)"]
            client.lost = []
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve_commands())
