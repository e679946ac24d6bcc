"""Fan-out benchmark: the time one broadcast takes to reach N connected clients.

Run it from the project root with the project's virtualenv::

    .venv/bin/python bench/fanout.py [--clients 1000] [--rounds 20] [--warmup 3] [--text-bytes 32]

It starts the project's real server on a free port of 127.0.0.1 (as ``make run`` does, through
``tests/live_server.py``) and, for comparison, a minimal reference server written with the raw
``websockets`` library (same frames, same compression as the project server negotiates). Each
server runs in a process of its own; the load client runs in this one.

Against each server the client opens N receivers and one sender on ``/ws`` (a bounded number of
handshakes at a time), has them all join one room, and waits until the room has settled (the
sender counts N + 1 members, then every receiver has had a pong). Then, round after round, the
sender sends one message and the client times its arrival at every receiver; a round ends when
all N have it, or after ``--round-timeout`` (reported, not waited for). Warm-up rounds are
discarded. Rounds alternate between the two servers, so that slow drifts in the load of a shared
machine hit both alike: the project/reference ratio is the number to compare between runs.

The client's own work is part of every number; the table shows what it spent per round. When
that is close to the time the round took, the client is the limit and the ratio understates
the difference between the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import inspect
import json
import math
import os
import platform
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

PROJECT_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ROOM = "bench"
FD_HEADROOM = 64  # descriptors beyond one per client: logs, pipes, the listening socket...
ROUND_PAUSE = 0.02  # seconds between a completed round and the next send
CONNECT_TIMEOUT = 30.0
SETUP_STEP_TIMEOUT = 120.0
SERVER_START_TIMEOUT = 30.0
# Receivers skip these frames without parsing them: N joins make about N*N/2 of them.
PRESENCE_PREFIX = '{"type":"presence"'
READY = "reference server listening"
CLOSE_REASONS = {1001: "going away", 1008: "outbox overflow", 1011: "server error"}


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


# --- the reference server: raw websockets, one room, the same frames as the project ---


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


async def serve_reference(port: int, compression: str | None) -> None:
    """Welcome, join (joined + presence to the others), ping/pong, and broadcast messages."""
    members: dict[ServerConnection, str] = {}

    async def handler(ws: ServerConnection) -> None:
        me = secrets.token_urlsafe(6)
        await ws.send(encode({"type": "welcome", "id": me}))
        try:
            async for frame in ws:
                event = json.loads(frame)
                if event["type"] == "message":
                    ts = int(time.time() * 1000)
                    message = {"type": "message", "room": ROOM, "from": me, "text": event["text"]}
                    broadcast(members, encode({**message, "ts": ts}))
                elif event["type"] == "join":
                    members[ws] = me
                    count = len(members)
                    presence = {"type": "presence", "room": ROOM, "members": count, "id": me}
                    others = [member for member in members if member is not ws]
                    broadcast(others, encode({**presence, "event": "join"}))
                    await ws.send(encode({"type": "joined", "room": ROOM, "members": count}))
                elif event["type"] == "ping":
                    await ws.send(encode({"type": "pong"}))
        except ConnectionClosed:
            pass  # the benchmark drops its clients without a closing handshake
        finally:
            members.pop(ws, None)

    async with serve(handler, HOST, port, compression=compression, ping_interval=None):
        print(READY, flush=True)
        await asyncio.get_running_loop().create_future()


# --- the load client ---


@dataclass
class RoundState:
    """Arrivals of one round's message."""

    expected: int
    started: float = 0.0
    cpu_started: float = 0.0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Result:
    label: str
    clients: int
    setup_seconds: float = 0.0
    compression: str = "none"
    all_reached: list[float] = field(default_factory=list)
    per_receiver: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    log_findings: list[str] = field(default_factory=list)


class Load:
    """One server's sender and receivers, all in one room, and what they measured."""

    def __init__(self, label: str, ws_url: str, options: argparse.Namespace, deflate: bool) -> None:
        self.url = f"{ws_url}/ws"
        self.options = options
        self.deflate = deflate
        self.result = Result(label, options.clients)
        self.clients: list[Client] = []
        self.sender: Client | None = None
        self.rounds: dict[int, RoundState] = {}
        self.lost: list[tuple[int | None, str]] = []
        self.failed = asyncio.Event()
        self.closing = False
        self.gate = asyncio.Semaphore(options.connect_concurrency)

    @property
    def label(self) -> str:
        return self.result.label

    async def open(self) -> None:
        """Connect the sender and the receivers, join them, and wait until the room settles."""
        clients = self.options.clients
        began = time.perf_counter()
        opening = asyncio.ensure_future(self._open_client(-1))
        await self._within(opening, CONNECT_TIMEOUT, "the sender to join")
        sender = self.sender = opening.result()
        sender.members_wanted = clients + 1
        response = sender.ws.response
        extensions = response.headers.get("Sec-WebSocket-Extensions") if response else None
        self.result.compression = "permessage-deflate" if extensions else "none"
        joining = asyncio.gather(*(self._open_client(index) for index in range(clients)))
        await self._within(joining, SETUP_STEP_TIMEOUT, f"{clients} receivers to join")
        receivers = joining.result()
        if sender.members >= sender.members_wanted:
            sender.enough_members.set()
        what = f"the sender to see {clients + 1} members"
        await self._within(sender.enough_members.wait(), SETUP_STEP_TIMEOUT, what)
        # Ping barrier: once a receiver has its pong, every earlier frame has reached it.
        pinging = asyncio.gather(*(client.send(type="ping") for client in receivers))
        await self._within(pinging, SETUP_STEP_TIMEOUT, "the pings to go out")
        ponged = asyncio.gather(*(client.ponged.wait() for client in receivers))
        await self._within(ponged, SETUP_STEP_TIMEOUT, "every receiver's pong")
        self.result.setup_seconds = time.perf_counter() - began

    async def _open_client(self, index: int) -> Client:
        async with self.gate:
            try:
                ws = await connect(self.url, **connect_options(self.deflate))
            except Exception as error:
                raise BenchError(
                    f"{self.label}: a handshake failed ({error}) with {len(self.clients)} of "
                    f"{self.options.clients + 1} connections open; if the server caps concurrent "
                    "connections at that number, raise its cap or use fewer --clients"
                ) from None
            client = Client(index, ws, self)
            self.clients.append(client)
            await client.send(type="join", room=ROOM)
            await client.joined.wait()
            return client

    async def play(self, number: int) -> None:
        """One round: the sender sends, every receiver gets it (or the round times out)."""
        if self.sender is None:
            raise BenchError(f"{self.label}: play() before open()")
        options = self.options
        state = self.rounds[number] = RoundState(options.clients)
        state.cpu_started = time.process_time()
        state.started = time.perf_counter()
        await self.sender.send(type="message", room=ROOM, text=round_text(number, options))
        finished = asyncio.ensure_future(state.done.wait())
        failed = asyncio.ensure_future(self.failed.wait())
        # A round that times out is reported, not waited for any longer.
        await asyncio.wait(
            {finished, failed}, timeout=options.round_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        finished.cancel()
        failed.cancel()
        cpu = time.process_time() - state.cpu_started
        del self.rounds[number]
        if self.failed.is_set():
            raise BenchError(f"{self.label}: connections closed in round {number}: {self.losses()}")
        if number < options.warmup:
            return
        if state.done.is_set():
            self.result.all_reached.append(max(state.latencies))
            self.result.per_receiver.extend(state.latencies)
            self.result.client_cpu.append(cpu)
        else:
            self.result.timeouts.append(
                f"round {number - options.warmup + 1}: {len(state.latencies)} of "
                f"{state.expected} receivers had the message after {options.round_timeout:g} s"
            )

    def check(self) -> None:
        errors = [error for client in self.clients for error in client.errors]
        if errors:
            raise BenchError(f"{self.label}: {len(errors)} error events, the first: {errors[0]}")

    async def close(self) -> None:
        """Drop every connection at once (a closing handshake each would take a while)."""
        self.closing = True
        for client in self.clients:
            client.abort()
        await asyncio.gather(*(client.reader for client in self.clients), return_exceptions=True)

    def arrived(self, number: int, now: float) -> None:
        state = self.rounds.get(number)
        if state is not None:
            state.latencies.append(now - state.started)
            if len(state.latencies) == state.expected:
                state.done.set()

    def lose(self, code: int | None, reason: str) -> None:
        if not self.closing:
            self.lost.append((code, reason))
            self.failed.set()

    def losses(self) -> str:
        codes: dict[int | None, int] = {}
        for code, _ in self.lost:
            codes[code] = codes.get(code, 0) + 1
        parts = [
            f"{count} with {code} ({CLOSE_REASONS.get(code or 0, 'closed')})"
            for code, count in sorted(codes.items(), key=lambda item: str(item[0]))
        ]
        reason = self.lost[0][1] if self.lost else ""
        return ", ".join(parts) + (f"; reason: {reason!r}" if reason else "")

    async def _within(self, awaitable: Awaitable[object], timeout: float, what: str) -> None:
        """Await ``awaitable``; fail after ``timeout`` s, or as soon as a connection is lost."""
        task = asyncio.ensure_future(awaitable)
        failed = asyncio.ensure_future(self.failed.wait())
        try:
            await asyncio.wait({task, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not task.done():
                task.cancel()
                task.add_done_callback(retrieve)
        if task.done():
            task.result()  # raises what it raised
        elif self.failed.is_set():
            raise BenchError(f"{self.label}: connections closed during setup: {self.losses()}")
        else:
            raise BenchError(f"{self.label}: timed out after {timeout:g} s waiting for {what}")


class Client:
    """One ``/ws`` connection and the task that reads everything it is sent."""

    def __init__(self, index: int, ws: ClientConnection, load: Load) -> None:
        self.index = index  # -1 for the sender
        self.ws = ws
        self.load = load
        self.members = 0
        self.members_wanted = 0
        self.enough_members = asyncio.Event()
        self.joined = asyncio.Event()
        self.ponged = asyncio.Event()
        self.last_round = -1
        self.errors: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                now = time.perf_counter()
                if not isinstance(frame, str):
                    continue
                if self.index >= 0 and frame.startswith(PRESENCE_PREFIX):
                    continue
                self._handle(json.loads(frame), now)
        except ConnectionClosed:
            pass
        finally:
            self.load.lose(self.ws.close_code, self.ws.close_reason or "")

    def _handle(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        if kind == "message":
            number = round_of(event.get("text"))
            if self.index >= 0 and number > self.last_round:
                self.last_round = number
                self.load.arrived(number, now)
        elif kind in ("joined", "presence"):
            self.members = int(event.get("members", 0))
            if kind == "joined":
                self.joined.set()
            if self.members_wanted and self.members >= self.members_wanted:
                self.enough_members.set()
        elif kind == "pong":
            self.ponged.set()
        elif kind == "error":
            self.errors.append(str(event.get("detail")))

    async def send(self, **message: object) -> None:
        await self.ws.send(json.dumps(message))

    def abort(self) -> None:
        self.reader.cancel()
        self.ws.transport.abort()


def round_text(number: int, options: argparse.Namespace) -> str:
    return f"{number:06d}".ljust(options.text_bytes, ".")


def round_of(text: object) -> int:
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            return int(text[:6])
    return -1


def connect_options(deflate: bool) -> dict[str, Any]:
    options: dict[str, Any] = {
        "open_timeout": CONNECT_TIMEOUT,
        "ping_interval": None,  # no keepalive traffic of our own during the measurement
        "close_timeout": 1,
        "compression": "deflate" if deflate else None,
    }
    if "proxy" in inspect.signature(connect).parameters:
        options["proxy"] = None  # never route 127.0.0.1 through a proxy from the environment
    return options


def retrieve(future: asyncio.Future[Any]) -> None:
    """Collect the outcome of a future given up on, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


async def run_loads(loads: Sequence[Load], options: argparse.Namespace) -> None:
    """Set every load up, then play the rounds, alternating which server goes first."""
    try:
        for load in loads:
            await load.open()
        # No collector pauses of this process in the timings: what setup made is frozen, and
        # the rounds make little garbage that reference counting does not free at once.
        gc.collect()
        gc.freeze()
        gc.disable()
        for number in range(options.warmup + options.rounds):
            for load in loads if number % 2 == 0 else reversed(loads):
                await load.play(number)
                await asyncio.sleep(ROUND_PAUSE)
        for load in loads:
            load.check()
    finally:
        gc.enable()
        gc.unfreeze()
        for load in loads:
            await load.close()


async def measure(
    servers: Sequence[RunningServer], options: argparse.Namespace, deflate: bool, timeout: float
) -> list[Result]:
    """Run the loads within the ``timeout`` (the overall budget that is left)."""
    loads = [Load(server.label, server.ws_url, options, deflate) for server in servers]
    task = asyncio.ensure_future(run_loads(loads, options))
    await asyncio.wait({task}, timeout=max(timeout, 0.001))
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise BenchError(f"the overall --timeout of {options.timeout:g} s ran out")
    task.result()
    return [load.result for load in loads]


# --- the servers, each in a process of its own ---


def read_log(path: Path) -> str:
    """A process's log so far; empty if it has none yet."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass
class RunningServer:
    label: str
    ws_url: str
    log_path: Path

    def log(self) -> str:
        return read_log(self.log_path)


@contextlib.contextmanager
def project_server(log_dir: Path) -> Iterator[RunningServer]:
    """The project's real server, started as ``make run`` does (see ``tests/live_server.py``)."""
    sys.path.insert(0, str(PROJECT_DIR / "tests"))
    import live_server

    try:
        server = live_server.start_server(log_dir, {"LOG_LEVEL": "warning"})
    except live_server.ServerStartError as error:
        raise BenchError(f"the project server did not start: {error}") from None
    try:
        yield RunningServer("project", server.ws_url, server.log_path)
    finally:
        live_server.stop_server(server)


@contextlib.contextmanager
def reference_server(log_dir: Path, deflate: bool) -> Iterator[RunningServer]:
    """This script's raw ``websockets`` server, in a subprocess."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    log_path = log_dir / f"reference-{port}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--reference-server", str(port)]
    command += ["--compression", "deflate" if deflate else "none"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningServer("reference (raw websockets)", f"ws://{HOST}:{port}", log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while READY not in server.log():
            if process.poll() is not None:
                code = process.returncode
                raise BenchError(f"the reference server exited with {code}:\n{server.log()}")
            if time.monotonic() > deadline:
                limit = SERVER_START_TIMEOUT
                raise BenchError(f"the reference server did not listen within {limit:g} s")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- measuring, reporting ---


def log_findings(text: str) -> list[str]:
    """What in a server log looks like trouble: the count of tracebacks, then distinct lines.

    The servers log at warning level and above, so the log is normally empty.
    """
    pattern = re.compile(r"error|exception|warning|critical|traceback", re.IGNORECASE)
    chained = ("During handling of the above exception", "The above exception was the direct")
    tracebacks = text.count("Traceback (most recent call")
    tracebacks -= sum(text.count(marker) for marker in chained)
    lines = [
        shorten(line.strip(), 160)
        for line in text.splitlines()
        if pattern.search(line)
        and not line[:1].isspace()
        and not line.startswith(("Traceback", "During handling", "The above exception"))
    ]
    findings = [f"{tracebacks} tracebacks"] if tracebacks else []
    return findings + list(dict.fromkeys(lines))


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def milliseconds(values: Sequence[float], q: float) -> float | None:
    return percentile(values, q) * 1000 if values else None


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    return "-" if ours is None or not theirs else f"{ours / theirs:.2f}x"


def summary(result: Result) -> list[float | None]:
    return [
        milliseconds(result.all_reached, 50),
        milliseconds(result.all_reached, 99),
        milliseconds(result.all_reached, 100),
        milliseconds(result.per_receiver, 50),
        milliseconds(result.per_receiver, 99),
        milliseconds(result.client_cpu, 50),
    ]


def table(results: Sequence[Result]) -> str:
    header = [
        "server",
        "clients",
        "rounds",
        "all reached p50 (ms)",
        "all reached p99 (ms)",
        "all reached max (ms)",
        "per receiver p50 (ms)",
        "per receiver p99 (ms)",
        "client CPU p50 (ms)",
        "setup (s)",
    ]
    rows = [header, ["---"] * len(header)]
    for result in results:
        rounds = str(len(result.all_reached))
        if result.timeouts:
            rounds += f" ({len(result.timeouts)} timed out)"
        numbers = [cell(value) for value in summary(result)]
        setup = f"{result.setup_seconds:.1f}"
        rows.append([result.label, str(result.clients), rounds, *numbers, setup])
    if len(results) == 2:
        ratios = [
            ratio(a, b)
            for a, b in zip(summary(results[0])[:5], summary(results[1])[:5], strict=True)
        ]
        rows.append(["project / reference", "", "", *ratios, "", ""])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def project_metadata() -> tuple[str, list[str]]:
    """The project's name and version, and its runtime dependencies with installed versions."""
    text = (PROJECT_DIR / "pyproject.toml").read_text()
    match = re.search(r'^name = "([^"]+)"', text, re.MULTILINE)
    name = match.group(1) if match else "?"
    try:
        version = importlib.metadata.version(name)
        requirements = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return name, []
    dependencies = []
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        dependency = re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0]
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            dependencies.append(f"{dependency} {importlib.metadata.version(dependency)}")
    return f"{name} {version}", dependencies


def ensure_fd_limit(clients: int) -> str | None:
    """Raise the soft open-file limit if it is too low for ``clients``; fail if it cannot be.

    This process holds two connections per client (one to each server); each server, which
    inherits the limit, holds one.
    """
    need = 2 * (clients + 1) + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    if hard != resource.RLIM_INFINITY and hard < need:
        raise BenchError(
            f"the open-file limit (ulimit -n) is {soft}, at most {hard}; {clients} clients need "
            f"at least {need}: raise it (ulimit -n {need}) or use fewer --clients"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return f"raised the open-file limit (ulimit -n) from {soft} to {need}"


async def offers_deflate(server: RunningServer) -> bool:
    """Whether ``server`` accepts permessage-deflate (the reference then does the same)."""
    async with connect(f"{server.ws_url}/ws", **connect_options(deflate=True)) as ws:
        return bool(ws.response and ws.response.headers.get("Sec-WebSocket-Extensions"))


def log_tail(server: RunningServer, lines: int = 15) -> str:
    tail = "\n".join(server.log().splitlines()[-lines:]) or "(empty)"
    return f"\n--- last lines of the {server.label} server log ---\n{tail}"


def print_header(options: argparse.Namespace) -> None:
    project, dependencies = project_metadata()
    load_average = " ".join(f"{value:.2f}" for value in os.getloadavg())
    uname = platform.uname()
    print(f"## Fan-out: one broadcast to {options.clients} clients in one room\n")
    print(
        f"- machine: {os.cpu_count()} CPUs, {uname.system} {uname.release} {uname.machine}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"load average {load_average} at start"
    )
    print(f"- project: {project} ({', '.join(dependencies) or 'dependencies unknown'})")
    print(f"- client and reference server: websockets {importlib.metadata.version('websockets')}")
    print(
        f"- run: {options.clients} receivers + 1 sender per server, {options.rounds} rounds "
        f"after {options.warmup} warm-up, alternating between the servers, "
        f"{options.text_bytes}-character text",
        flush=True,
    )


def bench(options: argparse.Namespace) -> int:
    deadline = time.monotonic() + options.timeout
    notes = [note for note in [ensure_fd_limit(options.clients)] if note]
    print_header(options)
    servers: list[RunningServer] = []
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        log_dir = Path(tmp)
        try:
            with contextlib.ExitStack() as stack:
                servers.append(stack.enter_context(project_server(log_dir)))
                deflate = options.compression == "deflate" and asyncio.run(
                    offers_deflate(servers[0])
                )
                servers.append(stack.enter_context(reference_server(log_dir, deflate)))
                remaining = deadline - time.monotonic()
                results = asyncio.run(measure(servers, options, deflate, remaining))
        except (BenchError, OSError, ConnectionClosed) as error:
            raise BenchError(f"{error}{''.join(log_tail(server) for server in servers)}") from None
        for result, server in zip(results, servers, strict=True):
            result.log_findings = log_findings(server.log())

    compression = "permessage-deflate" if deflate else "none"
    print(f"- compression: {compression} (as the project server negotiates it)\n")
    print(table(results))
    print(
        "\nall reached: per round, from the send until the last receiver had the message; "
        "per receiver: every receiver's latency in every measured round; client CPU: what this "
        "process spent per round (near 'all reached', the client is what limits the numbers)."
    )
    for result in results:
        notes += [f"{result.label}: {timeout}" for timeout in result.timeouts]
        if result.compression != compression:
            notes.append(f"{result.label}: negotiated compression {result.compression}")
        if result.log_findings:
            shown = "; ".join(result.log_findings[:4])
            notes.append(f"{result.label} server log looks troubled: {shown}")
    if notes:
        print("\nnotes:\n" + "\n".join(f"- {note}" for note in notes))
    timeouts = sum(len(result.timeouts) for result in results)
    if timeouts:
        print(f"\nfanout: ERROR: {timeouts} measured rounds timed out", file=sys.stderr)
        return 1
    return 0


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=positive, default=1000, help="receivers (default 1000)")
    parser.add_argument("--rounds", type=positive, default=20, help="measured rounds (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded rounds first (default 3)")
    parser.add_argument(
        "--text-bytes", type=int, default=32, help="length of the message text (default 32)"
    )
    parser.add_argument(
        "--round-timeout", type=float, default=10.0, help="seconds one round may take (default 10)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds the whole run may take (default 300)"
    )
    parser.add_argument(
        "--connect-concurrency",
        type=positive,
        default=50,
        help="handshakes in flight at once (default 50)",
    )
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="what the clients offer, like browsers by default (default deflate)",
    )
    parser.add_argument("--reference-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if not 0 <= options.warmup <= 1000 or options.rounds > 10_000 or options.clients > 100_000:
        parser.error("use --warmup 0-1000, --rounds up to 10000, --clients up to 100000")
    if not 8 <= options.text_bytes <= 4096:
        parser.error("--text-bytes must be from 8 to 4096")
    if options.round_timeout <= 0 or options.timeout <= 0:
        parser.error("timeouts must be positive")
    return options


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every cleanup, like Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.reference_server is not None:
        compression = "deflate" if options.compression == "deflate" else None
        asyncio.run(serve_reference(options.reference_server, compression))
        return 0
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return bench(options)
    except BenchError as error:
        print(f"fanout: ERROR: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fanout: interrupted; the servers are stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
