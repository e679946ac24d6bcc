"""Redis pub/sub benchmark: the messages/s one Redis channel carries between two server processes.

Run it from the project root with the project's virtualenv::

    .venv/bin/python bench/redis_pubsub.py [--messages 20000] [--senders 4] [--text-bytes 32]
                                           [--window 16] [--timeout 300]

It starts a throwaway ``redis-server`` (through ``tests/support/redis_server.py``) and two
single-worker project servers that share it (one ``REDIS_PREFIX``), all on free ports of
127.0.0.1 (through ``tests/support/live_server.py``), then measures, one after the other:

- two servers: ``--senders`` clients of server 1 join one room and send ``--messages`` messages
  in all, as fast as the server lets them: like well-behaved clients, each keeps at most
  ``--window`` messages sent but not yet echoed back to it. A receiver on server 2, in the same
  room, counts them: every message crosses the Redis channel from one server process to the other.
- one server: the same, with the receiver on server 1. With the Redis broker a process's own
  members get room messages back through the subscription too, so this path crosses Redis as
  well; what it leaves out is the second server.
- reference: the same messages, of the size the project publishes on the channel, through raw
  redis-py (asyncio): ``PUBLISH`` from this process (``--senders`` connections, each with at most
  ``--window`` commands pipelined and not yet answered), ``SUBSCRIBE`` in another one: what the
  channel carries with nothing else around it.
- one at a time: two servers, then the raw reference, again, with one sender and one message in
  flight (at most 2,000 messages): what each path adds to a message's latency when nothing queues.

The receiver always runs in a process of its own (this script, started again).
Each message's text carries its sender, its number and its send time (``CLOCK_MONOTONIC``, the
same clock in every process of the machine), so the receiver measures every message's latency.
Messages/s is the count delivered over the time from the first send to the last arrival.

Every process's CPU time over each measurement is shown too: the process near 100% of a CPU is
the one that limits the figures (on a machine with few CPUs, they also take turns on them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from common import (
    BenchError,
    connect_options,
    log_findings,
    now_us,
    percentile,
    positive,
    project_metadata,
    ratio,
    read_log,
    retrieve,
    run_bench,
)
from redis.exceptions import RedisError
from servers import PROJECT_ENV
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREFIX = "bench-pubsub"  # the REDIS_PREFIX both servers share
ACROSS, WITHIN = "across", "within"  # the rooms: receiver on the other server, on the same one
QUIET = "quiet"  # the room of the one-message-at-a-time measurement
QUIET_MESSAGES = 2000  # at most, one at a time
READY = "receiver ready"
SETUP_TIMEOUT = 30.0
IDLE_TIMEOUT = 10.0  # the receiver gives up once nothing has arrived for this long
MESSAGE_PREFIX = '{"type":"message"'
TEXT_KEY = '"text":"'
# The head of every message text: sender (3 digits), number (7), send time in µs (16).
STAMP_LENGTH = 26
MAX_MESSAGES = 1_000_000
MAX_SENDERS = 64
MAX_IN_FLIGHT = 128  # all senders' windows together: well inside a server's outbox (256)
MAX_TEXT = 4096  # the project's longest message text


def stamped(sender: int, number: int, length: int) -> str:
    return f"{sender:03d}{number:07d}{now_us():016d}".ljust(length, ".")


def project_payload_length(text_bytes: int) -> int:
    """Characters the project publishes on the channel for one message of ``text_bytes``.

    The envelope is the room, who to skip and who only (both empty), then the frame as
    clients get it (see ``redis_pubsub.py`` and ``protocol.py``).
    """
    frame = {"type": "message", "room": ACROSS, "from": "x" * 8, "text": "x" * text_bytes}
    encoded = json.dumps({**frame, "ts": 1_700_000_000_000}, separators=(",", ":"))
    return len(f"{ACROSS}\x00\x00\x00{encoded}")


# --- the receiver, in a process of its own ---


@dataclass(frozen=True)
class Load:
    """``messages`` from ``senders``, each with at most ``window`` of them in flight."""

    messages: int
    senders: int
    window: int


@dataclass
class Tally:
    """What the receiver counted."""

    expected: int
    senders: int
    seen: bytearray = field(init=False)
    last: list[int] = field(init=False)
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    latencies: list[int] = field(default_factory=list)  # µs
    last_us: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ready_cpu: float = 0.0  # this process's CPU seconds when it said ready
    problem: str = ""

    def __post_init__(self) -> None:
        self.seen = bytearray(self.expected)
        self.last = [-1] * self.senders

    def add(self, text: str, at: int, arrived: int) -> None:
        sender = int(text[at : at + 3])
        number = int(text[at + 3 : at + 10])
        if not (0 <= number < self.expected and 0 <= sender < self.senders):
            self.problem = f"a message that no sender sent: {text[at : at + STAMP_LENGTH]!r}"
            self.done.set()
            return
        if self.seen[number]:
            self.duplicates += 1
            return
        self.seen[number] = 1
        if number < self.last[sender]:
            self.out_of_order += 1
        self.last[sender] = number
        self.latencies.append(arrived - int(text[at + 10 : at + STAMP_LENGTH]))
        self.received += 1
        self.last_us = arrived
        self.last_progress = time.monotonic()
        if self.received == self.expected:
            self.done.set()


def say_ready(tally: Tally) -> None:
    tally.ready_cpu = time.process_time()
    print(READY, flush=True)


async def receive_project(url: str, room: str, tally: Tally) -> None:
    """Join ``room`` on the server at ``url``, say ready, and count its messages."""
    async with connect(f"{url}/ws", **connect_options(deflate=False)) as ws:
        await ws.send(json.dumps({"type": "join", "room": room}))
        async for frame in ws:
            if isinstance(frame, str) and frame.startswith('{"type":"joined"'):
                break
        say_ready(tally)
        try:
            async for frame in ws:
                arrived = now_us()
                if not isinstance(frame, str):
                    continue
                if frame.startswith(MESSAGE_PREFIX):
                    tally.add(frame, frame.find(TEXT_KEY) + len(TEXT_KEY), arrived)
                    if tally.done.is_set():
                        return
                elif frame.startswith('{"type":"error"'):
                    tally.problem = f"the server sent an error: {frame}"
                    return
        except ConnectionClosed:
            pass
        tally.problem = f"the server closed the connection ({ws.close_code} {ws.close_reason})"


async def receive_redis(url: str, channel: str, tally: Tally) -> None:
    """Subscribe to ``channel``, say ready, and count its messages."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            while await pubsub.get_message(timeout=SETUP_TIMEOUT) is None:
                pass  # the subscription's confirmation
            say_ready(tally)
            async for message in pubsub.listen():
                arrived = now_us()
                if message["type"] == "message":
                    tally.add(message["data"], 0, arrived)
                    if tally.done.is_set():
                        return
    finally:
        await client.aclose()


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
    """The receiver process: count, then write what it counted to ``options.result``."""
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


# --- the senders, in this process ---


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


async def publish_to_redis(
    url: str, channel: str, load: Load, text_bytes: int, deadline: float
) -> int:
    """Publish every message with raw redis-py; return the first send's time.

    One connection per sender, each with at most ``load.window`` commands not yet answered
    (pipelined when that is more than one).
    """
    length = project_payload_length(text_bytes)
    clients = [redis.Redis.from_url(url, decode_responses=True) for _ in range(load.senders)]

    async def publish(index: int) -> None:
        client = clients[index]
        numbers = range(index, load.messages, load.senders)
        for start in range(0, len(numbers), load.window):
            if load.window == 1:
                number = numbers[start]
                receivers = [await client.publish(channel, stamped(index, number, length))]
            else:
                async with client.pipeline(transaction=False) as pipe:
                    for number in numbers[start : start + load.window]:
                        pipe.publish(channel, stamped(index, number, length))
                    receivers = await pipe.execute()
            if 0 in receivers:
                raise BenchError("a reference PUBLISH reached no subscriber")

    try:
        for client in clients:
            await client.ping()  # connected before the clock starts
        started = now_us()
        sending = asyncio.gather(*(publish(index) for index in range(load.senders)))
        await within(sending, deadline - time.monotonic(), "the reference messages to go out")
        return started
    finally:
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)


# --- the processes: Redis, the servers, the receiver ---


@dataclass
class Processes:
    """The processes at work during a measurement, by the label the table gives them."""

    groups: dict[str, int] = field(default_factory=dict)  # label: process group (a server)
    pids: dict[str, int] = field(default_factory=dict)  # label: process id

    def cpu_seconds(self) -> dict[str, float | None]:
        """CPU time used so far by each (read from /proc; None where there is none)."""
        labels = [*self.groups, *self.pids]
        try:
            entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
        except OSError:
            return dict.fromkeys(labels)
        ticks: dict[str, int] = dict.fromkeys(labels, 0)
        for entry in entries:
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command) "
            group, used = int(fields[2]), int(fields[11]) + int(fields[12])  # utime + stime
            for label, wanted in self.groups.items():
                if group == wanted:
                    ticks[label] += used
            for label, pid in self.pids.items():
                if int(entry) == pid:
                    ticks[label] += used
        per_second = os.sysconf("SC_CLK_TCK")
        return {label: used / per_second for label, used in ticks.items()}


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[tuple[str, int]]:
    """A throwaway ``redis-server`` (``tests/support/redis_server.py``): its URL and process id."""
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server not found: install it (apt-get install redis-server)")
    sys.path.insert(0, str(PROJECT_DIR))
    from tests.support import redis_server as helper

    server = helper.RedisServer(directory)
    try:
        try:
            server.start()
        except RuntimeError as error:
            raise BenchError(str(error)) from None
        if server.process is None:
            raise BenchError("redis-server did not start")
        yield server.url, server.process.pid
    finally:
        server.kill()


@dataclass
class RunningServer:
    label: str
    ws_url: str
    pid: int
    log_path: Path

    def log(self) -> str:
        return read_log(self.log_path)


@contextlib.contextmanager
def project_server(label: str, log_dir: Path, redis_url: str) -> Iterator[RunningServer]:
    """One single-worker project server on the shared Redis (``tests/support/live_server.py``)."""
    sys.path.insert(0, str(PROJECT_DIR))
    from tests.support import live_server

    env = {**PROJECT_ENV, "REDIS_URL": redis_url, "REDIS_PREFIX": PREFIX, "WORKERS": "1"}
    try:
        server = live_server.start_server(log_dir, env)
    except live_server.ServerStartError as error:
        raise BenchError(f"{label} did not start: {error}") from None
    try:
        yield RunningServer(label, server.ws_url, server.process.pid, server.log_path)
    finally:
        live_server.stop_server(server)


@dataclass
class Receiver:
    process: subprocess.Popen[bytes]
    log_path: Path
    result_path: Path

    def log(self) -> str:
        return read_log(self.log_path)


@contextlib.contextmanager
def receiver_process(plan: Plan, log_dir: Path, timeout: float) -> Iterator[Receiver]:
    """This script, started again as the receiver of the plan's room or channel."""
    name = f"receiver-{plan.kind}-{plan.target.replace(':', '-')}"
    log_path, result_path = log_dir / f"{name}.log", log_dir / f"{name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--receive", plan.kind]
    command += ["--url", plan.url, "--target", plan.target, "--result", str(result_path)]
    command += ["--messages", str(plan.load.messages), "--senders", str(plan.load.senders)]
    command += ["--timeout", f"{max(timeout, 1.0):.1f}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield Receiver(process, log_path, result_path)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def wait_until_ready(receiver: Receiver) -> None:
    deadline = time.monotonic() + SETUP_TIMEOUT
    while READY not in receiver.log():
        if receiver.process.poll() is not None:
            raise BenchError(
                f"the receiver exited with {receiver.process.returncode}:\n{receiver.log()}"
            )
        if time.monotonic() > deadline:
            raise BenchError(f"the receiver was not ready within {SETUP_TIMEOUT:g} s")
        await asyncio.sleep(0.02)


async def wait_for_exit(receiver: Receiver, timeout: float) -> dict[str, Any]:
    """What the receiver counted, once it has exited."""
    deadline = time.monotonic() + timeout
    while receiver.process.poll() is None:
        if time.monotonic() > deadline:
            raise BenchError(f"the receiver did not finish within {timeout:g} s")
        await asyncio.sleep(0.005)
    if receiver.process.returncode != 0 or not receiver.result_path.exists():
        code = receiver.process.returncode
        raise BenchError(f"the receiver failed with exit code {code}:\n{receiver.log()}")
    result: dict[str, Any] = json.loads(receiver.result_path.read_text())
    return result


# --- measuring ---


@dataclass
class Measurement:
    label: str
    expected: int
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    latencies_us: list[int] = field(default_factory=list)
    seconds: float = 0.0  # from the first send to the last arrival
    cpu: dict[str, float | None] = field(default_factory=dict)  # label: % of one CPU
    problem: str = ""

    @property
    def rate(self) -> float | None:
        return self.received / self.seconds if self.received and self.seconds > 0 else None

    def latency(self, q: float) -> float | None:
        """The ``q`` percentile of the latencies in milliseconds."""
        return percentile(self.latencies_us, q) / 1000 if self.latencies_us else None

    @property
    def complete(self) -> bool:
        return self.received == self.expected and not self.duplicates and not self.problem


@dataclass
class Plan:
    """One measurement: where the receiver listens, and how the messages are sent."""

    label: str
    kind: str  # the receiver's: "project" or "redis"
    url: str  # the receiver's server
    target: str  # the receiver's room or channel
    load: Load
    send: Callable[[float], Awaitable[int]]  # (deadline) -> the first send's time in µs


async def measure(plan: Plan, processes: Processes, log_dir: Path, deadline: float) -> Measurement:
    """Start the plan's receiver, send, and gather the figures."""
    measurement = Measurement(plan.label, plan.load.messages)
    timeout = deadline - time.monotonic()
    with receiver_process(plan, log_dir, timeout) as receiver:
        await wait_until_ready(receiver)
        before = processes.cpu_seconds()
        cpu_before = time.process_time()
        began = time.monotonic()
        started = await plan.send(deadline)
        cpu_senders = time.process_time() - cpu_before
        result = await wait_for_exit(receiver, min(IDLE_TIMEOUT + 5, deadline - time.monotonic()))
        wall = time.monotonic() - began
        after = processes.cpu_seconds()
    measurement.received = result["received"]
    measurement.duplicates = result["duplicates"]
    measurement.out_of_order = result["out_of_order"]
    measurement.latencies_us = result["latencies_us"]
    measurement.problem = result["problem"]
    if measurement.received:
        measurement.seconds = (result["last_us"] - started) / 1e6
    for label, used in after.items():
        first = before.get(label)
        share = None if used is None or first is None else (used - first) / wall * 100
        measurement.cpu[label] = share
    measurement.cpu["senders (this process)"] = cpu_senders / wall * 100
    measurement.cpu["receiver"] = result["cpu_seconds"] / wall * 100
    return measurement


async def measure_all(
    plans: Sequence[Plan],
    processes: Processes,
    options: argparse.Namespace,
    log_dir: Path,
    deadline: float,
) -> list[Measurement]:
    """Run the plans one after the other within the overall ``--timeout``."""

    async def run() -> list[Measurement]:
        return [await measure(plan, processes, log_dir, deadline) for plan in plans]

    task = asyncio.ensure_future(run())
    await asyncio.wait({task}, timeout=max(deadline - time.monotonic(), 0.001))
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise BenchError(f"the overall --timeout of {options.timeout:g} s ran out")
    return task.result()


def plans(
    servers: Sequence[RunningServer], redis_url: str, options: argparse.Namespace
) -> list[Plan]:
    """The measurements, in the order they run (the order of the table's rows)."""
    one, two = servers
    busy = Load(options.messages, options.senders, options.window)
    quiet = Load(min(options.messages, QUIET_MESSAGES), 1, 1)

    def project(label: str, receiver: RunningServer, room: str, load: Load) -> Plan:
        def send(deadline: float) -> Awaitable[int]:
            return send_through_project(one.ws_url, room, load, options.text_bytes, deadline)

        return Plan(label, "project", receiver.ws_url, room, load, send)

    def reference(label: str, load: Load) -> Plan:
        channel = f"{PREFIX}:reference-{load.senders}x{load.window}"

        def send(deadline: float) -> Awaitable[int]:
            return publish_to_redis(redis_url, channel, load, options.text_bytes, deadline)

        return Plan(label, "redis", redis_url, channel, load, send)

    return [
        project("project, two servers: 1 → Redis → 2", two, ACROSS, busy),
        project("project, one server: 1 → Redis → 1", one, WITHIN, busy),
        reference("reference: redis-py, pipelined PUBLISH", busy),
        project("one at a time: project, two servers", two, QUIET, quiet),
        reference("one at a time: reference, redis-py", quiet),
    ]


# --- reporting ---


def cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def figures(measurement: Measurement) -> list[float | None]:
    return [
        measurement.rate,
        measurement.latency(50),
        measurement.latency(99),
        measurement.latency(100),
    ]


def markdown(rows: Sequence[Sequence[str]]) -> str:
    lines = [rows[0], ["---"] * len(rows[0]), *rows[1:]]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines)


def table(measurements: Sequence[Measurement]) -> str:
    header = ["path", "delivered", "messages/s", "latency p50 (ms)", "p99 (ms)", "max (ms)"]
    rows = [header]
    for measurement in measurements:
        numbers = figures(measurement)
        delivered = f"{measurement.received:,} of {measurement.expected:,}"
        cells = [cell(numbers[0], 0), *(cell(value) for value in numbers[1:])]
        rows.append([measurement.label, delivered, *cells])
    busy, capacity, quiet, hop = (figures(measurements[index]) for index in (0, 2, 3, 4))
    # Latencies under load are mostly queueing, at different rates: not compared.
    rows.append(
        ["two servers / pipelined reference", "", ratio(busy[0], capacity[0]), "-", "-", "-"]
    )
    ratios = [ratio(a, b) for a, b in zip(quiet, hop, strict=True)]
    rows.append(["one at a time: project / reference", "", *ratios])
    return markdown(rows)


def cpu_table(measurements: Sequence[Measurement]) -> str:
    labels = list(measurements[0].cpu)
    rows = [["path", *labels]]
    for measurement in measurements:
        rows.append([measurement.label, *(percent(measurement.cpu[label]) for label in labels)])
    return markdown(rows)


def redis_server_version() -> str:
    try:
        output = subprocess.run(
            ["redis-server", "--version"],  # noqa: S607 - whichever the tests would start
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    version = next((word[2:] for word in output.split() if word.startswith("v=")), "?")
    return version


def print_header(options: argparse.Namespace) -> None:
    project, dependencies = project_metadata()
    load_average = " ".join(f"{value:.2f}" for value in os.getloadavg())
    uname = platform.uname()
    print(f"## Redis pub/sub: {options.messages} messages between two server processes\n")
    print(
        f"- machine: {os.cpu_count()} CPUs, {uname.system} {uname.release} {uname.machine}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"load average {load_average} at start"
    )
    print(f"- project: {project} ({', '.join(dependencies) or 'dependencies unknown'})")
    print(
        f"- redis-server {redis_server_version()}; clients: websockets "
        f"{importlib.metadata.version('websockets')} (no compression offered), "
        f"redis-py {importlib.metadata.version('redis')} (asyncio)"
    )
    quiet = min(options.messages, QUIET_MESSAGES)
    print(
        f"- run: {options.messages} messages from {options.senders} "
        f"sender{'' if options.senders == 1 else 's'}, at most {options.window} in flight per "
        f"sender; one at a time: {quiet} messages from 1 sender; {options.text_bytes}-character "
        f"text ({project_payload_length(options.text_bytes)} characters on the channel); two "
        "single-worker servers on one Redis; each receiver in a process of its own",
        flush=True,
    )


def notes_on(measurements: Sequence[Measurement], servers: Sequence[RunningServer]) -> list[str]:
    notes = []
    for measurement in measurements:
        if measurement.problem:
            notes.append(f"{measurement.label}: {measurement.problem}")
        if measurement.duplicates:
            notes.append(f"{measurement.label}: {measurement.duplicates} messages came twice")
        if measurement.out_of_order:
            count = measurement.out_of_order
            notes.append(f"{measurement.label}: {count} messages overtook an earlier one")
    for server in servers:
        findings = log_findings(server.log())
        if findings:
            notes.append(f"{server.label} log looks troubled: {'; '.join(findings[:4])}")
    return notes


def log_tail(server: RunningServer, lines: int = 15) -> str:
    tail = "\n".join(server.log().splitlines()[-lines:]) or "(empty)"
    return f"\n--- last lines of the {server.label} log ---\n{tail}"


def bench(options: argparse.Namespace) -> int:
    deadline = time.monotonic() + options.timeout
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server not found: install it (apt-get install redis-server)")
    print_header(options)
    servers: list[RunningServer] = []
    with tempfile.TemporaryDirectory(prefix="redis-pubsub-") as tmp:
        log_dir = Path(tmp)
        try:
            with contextlib.ExitStack() as stack:
                redis_url, redis_pid = stack.enter_context(redis_server(log_dir))
                for label in ("server 1", "server 2"):
                    servers.append(stack.enter_context(project_server(label, log_dir, redis_url)))
                processes = Processes(
                    groups={server.label: server.pid for server in servers},
                    pids={"redis-server": redis_pid},
                )
                work = plans(servers, redis_url, options)
                measurements = asyncio.run(measure_all(work, processes, options, log_dir, deadline))
                notes = notes_on(measurements, servers)
        except (BenchError, OSError, ConnectionClosed, RedisError) as error:
            raise BenchError(f"{error}{''.join(log_tail(server) for server in servers)}") from None

    print()
    print(table(measurements))
    print(
        "\nmessages/s: delivered, from the first send to the last arrival; latency: from a "
        "message's send to its arrival at the receiver, every message. Ratios: the project's "
        "figure over the reference's (below 1x: fewer messages/s; above 1x: slower). Under "
        "load, latencies are mostly time spent queueing behind the other messages in flight; "
        "one message at a time shows what the path itself adds."
    )
    print("\nCPU used during each measurement, in % of one CPU:\n")
    print(cpu_table(measurements))
    print(
        f"\nA process near 100% is what limits the figures; all of them share {os.cpu_count()} "
        "CPUs with whatever else runs on the machine."
    )
    if notes:
        print("\nnotes:\n" + "\n".join(f"- {note}" for note in notes))
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
    # The receiver process: this script, started again by itself.
    parser.add_argument("--receive", choices=["project", "redis"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
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
    if options.receive is not None:
        asyncio.run(serve_receiver(options))
        return 0
    return run_bench("redis_pubsub", lambda: bench(options))


if __name__ == "__main__":
    sys.exit(main())
