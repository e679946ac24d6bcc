"""The three websocket workloads, driven from here through a pool of load-client processes.

1. echo: connections each doing 32-byte request/response round trips for a fixed time;
2. fan-out: one sender and many receivers in one room: when every receiver has each message;
3. idle: the server's resident memory per open, quiet connection.

Each function measures every server given and returns plain numbers (see :class:`Result`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import BenchError, at_most, connect_options, percentile
from bench.loadclient import stamp
from bench.servers import RunningServer
from tests.support.live_server import PROJECT_DIR

ROOM = "bench"
# A load client answers within the time its command is given plus this (its own setup
# timeout is 300 s), or it counts as hung.
COMMAND_TIMEOUT = 330.0
WARMUP_CONNECTIONS = 50  # opened and closed before an idle baseline


@dataclass
class Result:
    """What one server measured; times in milliseconds, memory in KiB."""

    label: str
    reference: bool = False
    deflate_offer: str = "?"  # what the server answered an offer of permessage-deflate
    echo_rate: float | None = None  # round trips per second, all connections together
    echo_p50: float | None = None
    echo_p99: float | None = None
    echo_server_cpu: float | None = None  # share of one CPU the server used
    echo_client_cpu: float | None = None  # share of one CPU each load client used
    echo_server_us: float | None = None  # server CPU per round trip, in µs
    echo_client_us: float | None = None  # load-client CPU per round trip, in µs
    fanout_p50: float | None = None  # all reached: from the send until the last receiver has it
    fanout_p99: float | None = None
    fanout_rounds: int = 0
    fanout_timeouts: int = 0
    fanout_client_cpu: float | None = None  # client CPU per round / the round's time
    fanout_server_ms: float | None = None  # server CPU per round: the work of one broadcast
    idle_kib: dict[str, float] = field(default_factory=dict)  # open connections: KiB each
    problems: list[str] = field(default_factory=list)


def milliseconds(latencies_us: Sequence[int], q: float) -> float | None:
    return percentile(latencies_us, q) / 1000 if latencies_us else None


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares that differ by one at most."""
    return [total // parts + (index < total % parts) for index in range(parts)]


class ClientPool:
    """Load-client processes (``bench/loadclient.py``, or ``module``), each answering one
    command at a time."""

    def __init__(self, processes: int, module: str = "bench.loadclient") -> None:
        self.size = processes
        self.module = module  # what each process runs: loadclient.py's serve_commands
        self.processes: list[asyncio.subprocess.Process] = []
        self.broken = False  # a command failed: answers may no longer match questions

    async def __aenter__(self) -> ClientPool:
        for _ in range(self.size):
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    self.module,
                    cwd=PROJECT_DIR,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=2**28,  # an answer holds every latency it measured
                )
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.stdin:
                process.stdin.close()
        for process in self.processes:
            # Out of step after an error: there may be a command still running.
            if self.broken or not await at_most(5, asyncio.ensure_future(process.wait())):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def ask(self, index: int, op: str, timeout: float, **args: Any) -> dict[str, Any]:
        process = self.processes[index]
        assert process.stdin  # noqa: S101 - made with pipes above
        assert process.stdout  # noqa: S101
        process.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        await process.stdin.drain()
        reading = asyncio.ensure_future(process.stdout.readline())
        if not await at_most(timeout + COMMAND_TIMEOUT, reading):
            raise BenchError(f"load client {index} did not answer {op!r} in time")
        line = reading.result()
        if not line:
            raise BenchError(f"load client {index} exited during {op!r}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise BenchError(f"load client {index}: {reply['error']}")
        return reply

    async def each(
        self, op: str, args: Sequence[dict[str, Any]], timeout: float = 0.0
    ) -> list[dict[str, Any]]:
        """Send ``op`` to every process at once, with its own arguments; their answers."""
        if self.broken:
            raise BenchError("the load clients are out of step after an error")
        asking = [
            asyncio.ensure_future(self.ask(index, op, timeout, **arg))
            for index, arg in enumerate(args)
        ]
        try:
            return list(await asyncio.gather(*asking))
        except BaseException:
            self.broken = True
            for task in asking:
                task.cancel()
            await asyncio.gather(*asking, return_exceptions=True)
            raise

    async def close_all(self) -> None:
        """Every process drops its connections (unless an error left them out of step)."""
        if not self.broken:
            await self.each("close", [{}] * self.size)


@dataclass
class EchoSample:
    """Round trips measured on one server, possibly over several slices of time."""

    latencies_us: list[int] = field(default_factory=list)
    client_seconds: float = 0.0  # wall time of every load client, added up
    client_cpu: float = 0.0
    server_seconds: float = 0.0
    server_cpu: float = 0.0
    processes: int = 1  # load clients at once

    def store(self, result: Result) -> None:
        latencies = self.latencies_us
        result.echo_rate = len(latencies) / self.client_seconds * self.processes
        result.echo_p50, result.echo_p99 = milliseconds(latencies, 50), milliseconds(latencies, 99)
        result.echo_server_cpu = self.server_cpu / self.server_seconds
        result.echo_client_cpu = self.client_cpu / self.client_seconds
        if latencies:
            result.echo_server_us = self.server_cpu / len(latencies) * 1e6
            result.echo_client_us = self.client_cpu / len(latencies) * 1e6


async def echo(
    pool: ClientPool, server: RunningServer, sample: EchoSample, connections: int, seconds: float
) -> None:
    """Round trips of 32-character texts on ``/ws/echo`` for ``seconds``, added to ``sample``."""
    url = f"{server.ws_url}/ws/echo"
    args = [
        {"url": url, "connections": share, "seconds": seconds, "text_bytes": 32}
        for share in split(connections, pool.size)
    ]
    cpu, started = server.cpu_seconds(), time.perf_counter()
    replies = await pool.each("echo", args, seconds)
    sample.server_cpu += server.cpu_seconds() - cpu
    sample.server_seconds += time.perf_counter() - started
    sample.processes = pool.size
    for reply in replies:
        sample.latencies_us += reply["latencies_us"]
        sample.client_seconds += reply["wall"]
        sample.client_cpu += reply["cpu"]


class Sender:
    """The one member of a server's room that sends, and drains what it is sent."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.joined = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if isinstance(frame, str) and '"type":"joined"' in frame:
                self.joined.set()

    async def close(self) -> None:
        self.reader.cancel()
        self.ws.transport.abort()
        await asyncio.gather(self.reader, return_exceptions=True)


async def fanout(
    pool: ClientPool,
    servers: Sequence[RunningServer],
    results: Sequence[Result],
    receivers: int,
    rounds: int,
    warmup: int,
    round_timeout: float,
) -> None:
    """Rounds of one message to ``receivers`` members of one room, alternating the servers.

    All servers' rooms are filled first; then each round visits every server, in turn
    forward and backward, so that drifts in the load of a shared machine hit all alike.
    """
    shares = split(receivers, pool.size)
    senders: list[Sender] = []
    try:
        for server in servers:
            args = [{"url": f"{server.ws_url}/ws", "count": n, "room": ROOM} for n in shares]
            await pool.each("join", args)
            ws = await connect(f"{server.ws_url}/ws", **connect_options(deflate=False))
            senders.append(Sender(ws))
            await ws.send(json.dumps({"type": "join", "room": ROOM}))
            if not await at_most(COMMAND_TIMEOUT, asyncio.ensure_future(senders[-1].joined.wait())):
                raise BenchError(f"{server.label}: the sender was not joined in time")
        all_reached: list[list[int]] = [[] for _ in servers]
        cpu_shares: list[list[float]] = [[] for _ in servers]
        server_cpu = [0.0 for _ in servers]
        for number in range(warmup + rounds):
            order = list(range(len(servers)))
            for index in order if number % 2 == 0 else reversed(order):
                message = number * len(servers) + index
                started, before = time.perf_counter(), servers[index].cpu_seconds()
                text = stamp(message, 32)
                await senders[index].ws.send(
                    json.dumps({"type": "message", "room": ROOM, "text": text})
                )
                args = [{"number": message, "expected": n, "wait": round_timeout} for n in shares]
                replies = await pool.each("collect", args, round_timeout)
                took = time.perf_counter() - started
                used = servers[index].cpu_seconds() - before
                latencies = [latency for reply in replies for latency in reply["latencies_us"]]
                if number < warmup:
                    continue
                if len(latencies) < receivers:
                    results[index].fanout_timeouts += 1
                    continue
                all_reached[index].append(max(latencies))
                server_cpu[index] += used
                cpu_shares[index].append(max(reply["cpu"] for reply in replies) / took)
                await asyncio.sleep(0.01)  # let the servers catch their breath between rounds
        for result, reached, client_cpu, used in zip(
            results, all_reached, cpu_shares, server_cpu, strict=True
        ):
            result.fanout_rounds = len(reached)
            # Summed over the rounds: the clock ticks (10 ms) are too coarse for one round.
            result.fanout_server_ms = used / len(reached) * 1000 if reached else None
            result.fanout_p50, result.fanout_p99 = (
                milliseconds(reached, 50),
                milliseconds(reached, 99),
            )
            result.fanout_client_cpu = sum(client_cpu) / len(client_cpu) if client_cpu else None
    finally:
        await pool.close_all()
        await asyncio.gather(*(sender.close() for sender in senders))


async def idle(
    pool: ClientPool, server: RunningServer, result: Result, levels: Sequence[int], settle: float
) -> None:
    """The server's RSS per connection with each number of ``levels`` open (ascending).

    Memory is read ``settle`` seconds after the connections are open, for the allocator.
    """
    url = f"{server.ws_url}/ws"
    try:
        # Whatever the first connections allocate once (imports, caches) is not per connection.
        await pool.each(
            "idle", [{"url": url, "count": n} for n in split(WARMUP_CONNECTIONS, pool.size)]
        )
        await pool.close_all()
        await asyncio.sleep(settle)
        baseline = server.rss_kib()
        opened = 0
        for level in sorted(levels):
            args = [{"url": url, "count": n} for n in split(level - opened, pool.size)]
            await pool.each("idle", args)
            opened = level
            await asyncio.sleep(settle)
            result.idle_kib[str(level)] = (server.rss_kib() - baseline) / level
    finally:
        await pool.close_all()


async def deflate_offer(server: RunningServer) -> str:
    """What the server answers an offer of permessage-deflate: ``declined`` or ``accepted``.

    The load clients offer none, so no server compresses in the benchmark; this says which
    would with a browser, which always offers it.
    """
    async with connect(f"{server.ws_url}/ws/echo", **connect_options(deflate=True)) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
        return "accepted" if extensions else "declined"
