"""The Redis benchmark's measurements: a receiver process each, senders here, and the figures.

The processes measured are a throwaway ``redis-server`` and two single-worker project servers
sharing it (one ``REDIS_PREFIX``); :func:`plans` says which paths between them are measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import BenchError, percentile, read_log
from bench.redis_messages import ACROSS, QUIET, READY, SETUP_TIMEOUT, WITHIN, Load
from bench.redis_receiver import IDLE_TIMEOUT, command
from bench.redis_reference import publish_to_redis
from bench.redis_senders import send_through_project
from bench.servers import RunningServer, ServerSpec, project_spec, running
from tests.support.live_server import PROJECT_DIR
from tests.support.redis_server import RedisServer

PREFIX = "bench-pubsub"  # the REDIS_PREFIX both servers share
QUIET_MESSAGES = 2000  # at most, one at a time


def require_redis_server() -> None:
    # The tests' helper would skip the test instead: say what is missing first.
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server not found: install it (apt-get install redis-server)")


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[tuple[str, int]]:
    """A throwaway ``redis-server`` (``tests/support/redis_server.py``): its URL and process id."""
    require_redis_server()
    server = RedisServer(directory)
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


def server_spec(label: str, redis_url: str) -> ServerSpec:
    """One single-worker project server on the shared Redis, ready once ``/health`` says so."""
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": PREFIX, "WORKERS": "1"}
    return project_spec(label, env, health=True)


def server_spec_without_history(label: str, redis_url: str) -> ServerSpec:
    """The same, keeping no room history (``HISTORY_SIZE=0``), under a prefix of its own."""
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": f"{PREFIX}-bare", "WORKERS": "1"}
    return project_spec(label, {**env, "HISTORY_SIZE": "0"}, health=True)


def relay_spec(label: str, redis_url: str) -> ServerSpec:
    """One process of the floor, ``bench/redis_relay.py``, on the shared Redis."""
    command = [sys.executable, "-m", "bench.redis_relay", "--port", "{port}", "--redis", redis_url]
    return ServerSpec(label, command, str(PROJECT_DIR))


SERVERS = (("server 1", server_spec), ("server 2", server_spec))
RELAYS = (("relay 1", relay_spec), ("relay 2", relay_spec))
WITHOUT_HISTORY = (
    ("server 1, no history", server_spec_without_history),
    ("server 2, no history", server_spec_without_history),
)


@contextlib.contextmanager
def servers_on_redis(
    specs: Sequence[tuple[str, Callable[[str, str], ServerSpec]]],
    log_dir: Path,
    started: list[RunningServer],
) -> Iterator[tuple[str, int]]:
    """A throwaway ``redis-server``, then a server per ``(label, spec)`` on it, each added
    to ``started`` once ready (whose logs an error shows); yields Redis's URL and pid."""
    with contextlib.ExitStack() as stack:
        redis_url, redis_pid = stack.enter_context(redis_server(log_dir))
        for label, spec in specs:
            started.append(stack.enter_context(running(spec(label, redis_url), log_dir)))
        yield redis_url, redis_pid


@dataclass
class Measurement:
    label: str
    expected: int
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    latencies_us: list[int] = field(default_factory=list)
    seconds: float = 0.0  # from the first send to the last arrival
    cpu: dict[str, float] = field(default_factory=dict)  # label: % of one CPU
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


TWO_SERVERS = "project, two servers: 1 → Redis → 2"
NO_HISTORY = "project, two servers, history off (HISTORY_SIZE=0)"
ONE_SERVER = "project, one server: 1 → Redis → 1"
FLOOR = "floor: a bare relay, two processes"
REFERENCE = "reference: redis-py, pipelined PUBLISH"
QUIET_TWO_SERVERS = "one at a time: project, two servers"
QUIET_FLOOR = "one at a time: floor relay"
QUIET_REFERENCE = "one at a time: reference, redis-py"


def plans(
    servers: Sequence[RunningServer], redis_url: str, load: Load, text_bytes: int
) -> list[Plan]:
    """The measurements, in the order they run (the order of the table's rows): ``servers``
    are :data:`SERVERS`', :data:`RELAYS`' then :data:`WITHOUT_HISTORY`'s."""
    one, two, relay_one, relay_two, bare_one, bare_two = servers
    quiet = Load(min(load.messages, QUIET_MESSAGES), 1, 1)

    def project(
        label: str, receiver: RunningServer, room: str, load: Load, sender: RunningServer = one
    ) -> Plan:
        def send(deadline: float) -> Awaitable[int]:
            return send_through_project(sender.ws_url, room, load, text_bytes, deadline)

        return Plan(label, "project", receiver.ws_url, room, load, send)

    def reference(label: str, load: Load) -> Plan:
        channel = f"{PREFIX}:reference-{load.senders}x{load.window}"

        def send(deadline: float) -> Awaitable[int]:
            return publish_to_redis(redis_url, channel, load, text_bytes, deadline)

        return Plan(label, "redis", redis_url, channel, load, send)

    return [
        project(TWO_SERVERS, two, ACROSS, load),
        project(NO_HISTORY, bare_two, ACROSS, load, bare_one),
        project(ONE_SERVER, one, WITHIN, load),
        project(FLOOR, relay_two, ACROSS, load, relay_one),
        reference(REFERENCE, load),
        project(QUIET_TWO_SERVERS, two, QUIET, quiet),
        project(QUIET_FLOOR, relay_two, QUIET, quiet, relay_one),
        reference(QUIET_REFERENCE, quiet),
    ]


@dataclass
class Receiver:
    process: subprocess.Popen[bytes]
    log_path: Path
    result_path: Path

    def log(self) -> str:
        return read_log(self.log_path)


@contextlib.contextmanager
def receiver_process(plan: Plan, log_dir: Path, timeout: float) -> Iterator[Receiver]:
    """``bench/redis_receiver.py``, started as the receiver of the plan's room or channel."""
    name = f"receiver-{plan.kind}-{plan.target.replace(':', '-')}"
    log_path, result_path = log_dir / f"{name}.log", log_dir / f"{name}.json"
    load, seconds = plan.load, max(timeout, 1.0)
    arguments = command(
        plan.kind, plan.url, plan.target, result_path, load.messages, load.senders, seconds
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            arguments, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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


CpuMeters = Mapping[str, Callable[[], float]]  # label: CPU seconds used so far


async def measure(plan: Plan, meters: CpuMeters, log_dir: Path, deadline: float) -> Measurement:
    """Start the plan's receiver, send, and gather the figures."""
    measurement = Measurement(plan.label, plan.load.messages)
    timeout = deadline - time.monotonic()
    with receiver_process(plan, log_dir, timeout) as receiver:
        await wait_until_ready(receiver)
        before = {label: meter() for label, meter in meters.items()}
        cpu_before = time.process_time()
        began = time.monotonic()
        started = await plan.send(deadline)
        cpu_senders = time.process_time() - cpu_before
        result = await wait_for_exit(receiver, min(IDLE_TIMEOUT + 5, deadline - time.monotonic()))
        wall = time.monotonic() - began
        after = {label: meter() for label, meter in meters.items()}
    measurement.received = result["received"]
    measurement.duplicates = result["duplicates"]
    measurement.out_of_order = result["out_of_order"]
    measurement.latencies_us = result["latencies_us"]
    measurement.problem = result["problem"]
    if measurement.received:
        measurement.seconds = (result["last_us"] - started) / 1e6
    for label, used in after.items():
        measurement.cpu[label] = (used - before[label]) / wall * 100
    measurement.cpu["senders (this process)"] = cpu_senders / wall * 100
    measurement.cpu["receiver"] = result["cpu_seconds"] / wall * 100
    return measurement


async def measure_all(
    plans: Sequence[Plan], meters: CpuMeters, log_dir: Path, timeout: float, deadline: float
) -> list[Measurement]:
    """Run the plans one after the other within the overall ``timeout``, up at ``deadline``."""

    async def run() -> list[Measurement]:
        return [await measure(plan, meters, log_dir, deadline) for plan in plans]

    task = asyncio.ensure_future(run())
    await asyncio.wait({task}, timeout=max(deadline - time.monotonic(), 0.001))
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise BenchError(f"the overall --timeout of {timeout:g} s ran out")
    return task.result()
