"""One load-client process: it opens websockets and runs what ``workloads.py`` tells it.

The connections are ``picows`` ones: a websocket client in C with a callback per frame, on
uvloop, so that a round trip costs the client a few microseconds and the server is what is
measured (each answer carries the CPU time this process spent on the command; the tables
report it per round trip). It offers no compression, so every server runs without it.

Commands arrive on stdin and answers leave on stdout, one JSON object a line. Several of
these run at once, one per CPU.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.common import CONNECT_TIMEOUT, BenchError, at_most, now_us, run_on_uvloop

CONNECTS_AT_ONCE = 50  # handshakes in flight per process
MESSAGE_PREFIX = b'{"type":"message"'
TEXT_KEY = b'"text":"'
STAMP_LENGTH = 22  # of a message text: its number and send time, see stamp()
# For opening and settling connections, however many: 1,000 joins to a room make the project
# server send 500,000 presence events.
SETUP_TIMEOUT = 300.0
MAX_FRAME = 2**24


def stamp(number: int, length: int) -> str:
    """A message text: its number (6 digits) and send time in µs (16), padded to ``length``."""
    return f"{number:06d}{now_us():016d}".ljust(length, ".")


class Connection(WSListener):
    """One client connection: whole messages to :meth:`on_message`, a lost one reported."""

    def __init__(self, client: LoadClient) -> None:
        self.client = client
        self.transport: WSTransport | None = None
        self.fragments = bytearray()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            if not self.client.closing:
                self.client.lost.append(f"{frame.get_close_code()} {frame.get_close_reason()}")
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif kind == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            if frame.fin and not self.fragments:
                self.on_message(frame.get_payload_as_bytes())
            else:  # servers may split a message; none here does for these sizes
                self.fragments += frame.get_payload_as_memoryview()
                if frame.fin:
                    message, self.fragments = bytes(self.fragments), bytearray()
                    self.on_message(message)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.client.closing and not transport.is_close_frame_sent:
            self.client.lost.append("dropped without a close frame")
        self.on_lost()

    def on_message(self, payload: bytes) -> None:
        """A whole message arrived."""

    def on_lost(self) -> None:
        """The connection is gone: whoever waits for it waits no longer."""

    def send_text(self, text: bytes) -> None:
        assert self.transport is not None  # noqa: S101 - connected before it is handed out
        self.transport.send(WSMsgType.TEXT, text)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.underlying_transport.abort()


class Echoer(Connection):
    """Sends ``payload``, waits for it back, again until the deadline: one round trip a time."""

    def __init__(self, client: LoadClient, payload: bytes) -> None:
        super().__init__(client)
        self.payload = payload
        self.deadline_ns = 0
        self.sent_ns = 0
        self.latencies: list[int] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, deadline_ns: int) -> None:
        self.deadline_ns = deadline_ns
        self.sent_ns = time.perf_counter_ns()
        self.send_text(self.payload)

    def on_message(self, payload: bytes) -> None:
        arrived = time.perf_counter_ns()
        if self.done.done():
            return
        if payload != self.payload:
            self.done.set_exception(BenchError("the echo differed from what was sent"))
            return
        self.latencies.append((arrived - self.sent_ns) // 1000)
        if arrived < self.deadline_ns:
            self.sent_ns = time.perf_counter_ns()
            self.send_text(self.payload)
        else:
            self.done.set_result(None)

    def on_lost(self) -> None:
        if not self.done.done():
            self.done.set_exception(BenchError("an echo connection was lost"))


class Receiver(Connection):
    """A ``/ws`` member that notes when each numbered message reaches it."""

    def __init__(self, client: LoadClient) -> None:
        super().__init__(client)
        self.joined = asyncio.Event()
        self.ponged = asyncio.Event()

    def on_message(self, payload: bytes) -> None:
        arrived = now_us()
        if payload.startswith(MESSAGE_PREFIX):  # the hot path: no JSON parsing
            at = payload.find(TEXT_KEY) + len(TEXT_KEY)
            self.note(payload[at : at + STAMP_LENGTH].decode(), arrived)
            return
        event = json.loads(payload)
        kind = event.get("type")
        if kind == "message":
            self.note(event["text"], arrived)
        elif kind == "joined":
            self.joined.set()
        elif kind == "pong":
            self.ponged.set()

    def on_lost(self) -> None:
        self.joined.set()
        self.ponged.set()

    def note(self, text: str, arrived: int) -> None:
        self.client.arrived(int(text[:6]), arrived - int(text[6:STAMP_LENGTH]))


class LoadClient:
    """The connections of this process and what they measured."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.rounds: dict[int, list[int]] = {}  # message number: latencies (µs)
        self.expected: dict[int, int] = {}  # message number: receivers it is for here
        self.complete: dict[int, asyncio.Event] = {}
        self.lost: list[str] = []
        self.closing = False

    async def open(
        self,
        url: str,
        count: int,
        make: Callable[[], Connection],
        prepare: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> list[Connection]:
        """``count`` connections, a few at a time, each ``prepare``d before the next opens.

        Preparing in step (a join, say) keeps bursts small: every join sends a presence event
        to every member, and a member sent hundreds at once overflows its outbox.
        """
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

        async def one() -> Connection:
            async with gate:
                _, listener = await ws_connect(
                    make, url, websocket_handshake_timeout=CONNECT_TIMEOUT, max_frame_size=MAX_FRAME
                )
                assert isinstance(listener, Connection)  # noqa: S101 - what make() makes
                connection = listener
                self.connections.append(connection)
                if prepare is not None:
                    await prepare(connection)
                return connection

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def echo(
        self, url: str, connections: int, seconds: float, text_bytes: int
    ) -> dict[str, Any]:
        """Round trips of ``text_bytes`` characters on each connection for ``seconds``."""
        payload = b"x" * text_bytes
        opening = asyncio.ensure_future(self.open(url, connections, lambda: Echoer(self, payload)))
        await self.setup(opening)
        echoers = [c for c in opening.result() if isinstance(c, Echoer)]
        cpu, started = time.process_time(), time.perf_counter()
        deadline = time.perf_counter_ns() + int(seconds * 1e9)
        for echoer in echoers:
            echoer.start(deadline)
        looping = asyncio.gather(*(echoer.done for echoer in echoers))
        if not await at_most(seconds + SETUP_TIMEOUT, looping):
            raise BenchError("the echo round trips did not end in time")
        looping.result()  # raises what a connection raised
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        await self.close()
        latencies = [latency for echoer in echoers for latency in echoer.latencies]
        return {"latencies_us": latencies, "wall": wall, "cpu": cpu}

    async def join(self, url: str, count: int, room: str) -> dict[str, Any]:
        """``count`` receivers in ``room``, each settled: it has its pong after its join."""
        cpu = time.process_time()
        joining = json.dumps({"type": "join", "room": room}).encode()
        receivers: list[Receiver] = []

        async def join_one(connection: Connection) -> None:
            assert isinstance(connection, Receiver)  # noqa: S101 - made by Receiver below
            receivers.append(connection)
            connection.send_text(joining)
            await connection.joined.wait()

        async def settle() -> None:
            await self.open(url, count, lambda: Receiver(self), join_one)
            # Once a receiver has its pong, every frame sent to it before has reached it.
            for receiver in receivers:
                receiver.send_text(b'{"type":"ping"}')
            await asyncio.gather(*(r.ponged.wait() for r in receivers))

        await self.setup(asyncio.ensure_future(settle()))
        return {"opened": len(receivers), "cpu": time.process_time() - cpu}

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

        async def settle(connection: Connection) -> None:
            assert isinstance(connection, Receiver)  # noqa: S101 - made by Receiver below
            connection.send_text(b'{"type":"ping"}')
            await connection.ponged.wait()

        opening = self.open(url, count, lambda: Receiver(self), settle)
        await self.setup(asyncio.ensure_future(opening))
        return {"open": len(self.connections)}

    def commands(self) -> dict[str, Callable[..., Awaitable[dict[str, Any]]]]:
        """The commands this client answers, by their ``op``."""
        return {
            "echo": self.echo,
            "join": self.join,
            "collect": self.collect,
            "idle": self.idle,
            "close": self.close,
        }

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
        for connection in self.connections:
            connection.abort()
        await asyncio.sleep(0)  # the disconnect callbacks run
        closed = len(self.connections)
        self.connections = []
        self.rounds, self.expected, self.complete = {}, {}, {}
        self.closing = False
        return {"closed": closed}


async def serve_commands(make: Callable[[], LoadClient] = LoadClient) -> None:
    """Answer the commands on stdin with the client ``make`` makes (see its ``commands``)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = make()
    handlers = client.commands()
    while line := await reader.readline():
        command = json.loads(line)
        operation = command.pop("op")
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
    run_on_uvloop(serve_commands())
