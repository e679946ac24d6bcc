"""Redis scale benchmark: many rooms over many server processes; what each process's CPU follows.

Run it from the project root with the project's virtualenv (``make bench`` runs it after
``bench/redis_pubsub.py``)::

    .venv/bin/python -m bench.redis_scale [--processes 8] [--rooms 200] [--members 10]
                                          [--rate 2] [--seconds 20] [--warmup 3]
                                          [--clients 2] [--timeout 600] [--tiny]

It starts a throwaway ``redis-server`` and ``--processes`` single-worker project servers that
share it (one ``REDIS_PREFIX``), then opens ``--rooms`` times ``--members`` websockets from
``--clients`` processes (``bench/redis_scale_load.py``: ``picows`` on uvloop). Each room's
members are on two processes, half on each: room r's on processes r mod P and (r + 1) mod P,
so every process has members in 2 of every P rooms and none in the others. In every room one
member sends stamped messages at a steady rate; every member, the sender too, gets each back.

It runs three phases, each over once every member has every message of it:

1. warm-up (``--warmup`` seconds, every room at ``--rate`` messages/s): checked, not timed;
2. steady: every room at ``--rate``, for ``--seconds``;
3. others' rooms doubled: the rooms without a member on process 0 at twice ``--rate``, process
   0's own rooms still at ``--rate``, for ``--seconds``.

Per phase: the messages published, the deliveries expected and made (every member must get
every message of its room once, in order; if not, an ERROR and exit status 1), deliveries/s,
and the delivery latency from send to arrival (``CLOCK_MONOTONIC``, one clock for every
process). Per server process: its CPU, its CPU per message delivered to its own members, and
the frames it received from Redis (``frames_received`` of ``/health``), which must be the
messages of its own rooms alone; redis-server's CPU and the clients' too.

The proportionality check: a process subscribes to the channels of its own rooms only, so its
CPU follows its own rooms' traffic. Process 0's CPU per second in phase 3 over phase 2 should
stay below 1.10 while the others' grows with their rooms' traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError

from bench.common import (
    HOST,
    BenchError,
    at_most,
    now_us,
    parse_with_tiny,
    positive,
    run_bench,
)
from bench.redis_measure import require_redis_server, server_spec, servers_on_redis
from bench.redis_report import log_tail
from bench.redis_scale_stats import PhaseResult, header, report
from bench.run import raise_fd_limit
from bench.servers import RunningServer, tree_cpu_seconds
from bench.workloads import ClientPool
from tests.support.live_server import get

TINY = {"processes": 3, "rooms": 6, "members": 4, "rate": 5.0, "seconds": 2.0, "warmup": 1.0}
SETUP_TIMEOUT = 300.0  # to open and join every connection
SETTLE = 0.5  # seconds between the last join and the first phase
START_DELAY = 0.5  # seconds from sending a phase's command to its start: every client has it
DRAIN_TIMEOUT = 10.0  # seconds after a phase's last send for its last delivery
MAX_NUMBER = 10**7  # of a room's messages: the stamp has 7 digits for it
MAX_ROOMS = 1000  # and 3 for the room


@dataclass(frozen=True)
class Layout:
    """Which server process each member of each room is on."""

    processes: int
    rooms: int
    members: int

    def server_of(self, room: int, member: int) -> int:
        """Room r's first half of members on process r mod P, the rest on the next one."""
        first = room % self.processes
        return first if member < (self.members + 1) // 2 else (first + 1) % self.processes

    def members_on(self, room: int, process: int) -> int:
        return sum(self.server_of(room, m) == process for m in range(self.members))

    def others(self, process: int) -> list[int]:
        """The rooms without a member on ``process``."""
        return [room for room in range(self.rooms) if not self.members_on(room, process)]


@dataclass(frozen=True)
class Phase:
    label: str
    seconds: float
    rates: list[float]  # messages per second, per room
    timed: bool = True  # reported as a measurement (the warm-up is only checked)


def phases(layout: Layout, options: argparse.Namespace) -> list[Phase]:
    base = [options.rate] * layout.rooms
    doubled = list(base)
    for room in layout.others(0):
        doubled[room] = 2 * options.rate
    warmup = [Phase("warm-up", options.warmup, base, timed=False)] if options.warmup else []
    return [
        *warmup,
        Phase("steady", options.seconds, base),
        Phase("others' rooms doubled", options.seconds, doubled),
    ]


def frames_received(server: RunningServer) -> int:
    """What ``/health`` says the server's broker has received from Redis so far."""
    status, _, body = get(f"http://{HOST}:{server.port}/health", timeout=5)
    if status != 200:
        raise BenchError(f"{server.label}: /health answered {status}: {body[:200]!r}")
    return int(json.loads(body)["broker"]["frames_received"])


Meters = dict[str, Callable[[], float]]  # label: CPU seconds used so far


async def run_phase(
    pool: ClientPool,
    servers: Sequence[RunningServer],
    meters: Meters,
    layout: Layout,
    phase: Phase,
    numbers: list[int],
) -> PhaseResult:
    """Send and count one phase; ``numbers``: each room's next message number, moved on."""
    counts = [round(rate * phase.seconds) for rate in phase.rates]
    # Each room's sends start a share of a period after the phase's start: rooms take turns.
    rooms = [
        (numbers[room], counts[room], phase.rates[room], room / layout.rooms)
        for room in range(layout.rooms)
    ]
    processes = range(layout.processes)
    result = PhaseResult(
        phase.label,
        phase.seconds,
        phase.timed,
        published=sum(counts),
        expected=[
            sum(counts[room] * layout.members_on(room, p) for room in range(layout.rooms))
            for p in processes
        ],
        frames_expected=[
            sum(counts[room] for room in range(layout.rooms) if layout.members_on(room, p))
            for p in processes
        ],
    )
    frames_before = [frames_received(server) for server in servers]
    start_us = now_us() + round(START_DELAY * 1e6)
    timeout = phase.seconds + DRAIN_TIMEOUT
    arguments = {"start_us": start_us, "rooms": rooms, "end_us": start_us + round(timeout * 1e6)}
    asking = asyncio.ensure_future(pool.each("phase", [arguments] * pool.size, timeout))
    await asyncio.sleep((start_us - now_us()) / 1e6)
    before = {label: meter() for label, meter in meters.items()}
    replies = await asking
    result.wall = (now_us() - start_us) / 1e6
    result.cpu = {label: meter() - before[label] for label, meter in meters.items()}
    result.frames = list(zip(frames_before, map(frames_received, servers), strict=True))
    result.delivered = [0] * layout.processes
    for reply in replies:
        for server, delivered in reply["delivered"].items():
            result.delivered[int(server)] += delivered
        result.latencies_us += reply["latencies_us"]
        result.duplicates += reply["duplicates"]
        result.missing += reply["missing"]
        result.lag_ms = max(result.lag_ms, reply["lag_ms"])
        result.problems += reply["problems"] + reply.get("lost", [])[:1]
    for room, count in enumerate(counts):
        numbers[room] += count
    return result


async def measure(
    servers: Sequence[RunningServer], redis_pid: int, layout: Layout, options: argparse.Namespace
) -> list[PhaseResult]:
    """Open every member's connection, then run the phases while every delivery is made."""
    async with ClientPool(options.clients, "bench.redis_scale_load") as pool:
        members: list[list[tuple[str, int, int, bool]]] = [[] for _ in range(pool.size)]
        for room in range(layout.rooms):
            for member in range(layout.members):
                server = layout.server_of(room, member)
                spec = (servers[server].ws_url, room, server, member == 0)  # member 0 sends
                members[room % pool.size].append(spec)
        await pool.each("enter", [{"members": share} for share in members], SETUP_TIMEOUT)
        # The last joins' presence frames are still on their way to the other processes:
        # counted in no phase's frames_received.
        await asyncio.sleep(SETTLE)
        meters: Meters = {server.label: server.cpu_seconds for server in servers}
        meters["redis-server"] = lambda: tree_cpu_seconds(redis_pid)
        meters["clients"] = lambda: sum(tree_cpu_seconds(p.pid) for p in pool.processes)
        numbers = [0] * layout.rooms
        results: list[PhaseResult] = []
        for phase in phases(layout, options):
            results.append(await run_phase(pool, servers, meters, layout, phase, numbers))
            if not results[-1].complete:
                break  # late deliveries would land in the next phase's count
        await pool.close_all()
    return results


async def measure_within(
    servers: Sequence[RunningServer], redis_pid: int, layout: Layout, options: argparse.Namespace
) -> list[PhaseResult]:
    measuring = asyncio.ensure_future(measure(servers, redis_pid, layout, options))
    if not await at_most(options.timeout, measuring):
        raise BenchError(f"the overall --timeout of {options.timeout:g} s ran out")
    return measuring.result()


def bench(options: argparse.Namespace) -> int:
    require_redis_server()
    raise_fd_limit()  # every connection is a descriptor in a client and in a server
    layout = Layout(options.processes, options.rooms, options.members)
    print(header(layout, options), flush=True)
    servers: list[RunningServer] = []
    with tempfile.TemporaryDirectory(prefix="redis-scale-") as tmp:
        log_dir = Path(tmp)
        try:
            specs = [(f"process {process}", server_spec) for process in range(layout.processes)]
            with servers_on_redis(specs, log_dir, servers) as (_, redis_pid):
                results = asyncio.run(measure_within(servers, redis_pid, layout, options))
                logs = {server.label: server.log() for server in servers}
        except (BenchError, OSError, RedisError) as error:
            raise BenchError(f"{error}{''.join(log_tail(server) for server in servers)}") from None
    print()
    text, failures = report(results, layout, logs)
    print(text)
    for failure in failures:
        print(f"redis_scale: ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = parser.add_argument
    add("--processes", type=positive, default=8, help="server processes (default 8)")
    add("--rooms", type=positive, default=200, help="rooms (default 200)")
    add("--members", type=positive, default=10, help="members per room (default 10)")
    add("--rate", type=float, default=2.0, help="messages/s each room's sender sends (default 2)")
    add("--seconds", type=float, default=20.0, help="seconds of each timed phase (default 20)")
    add("--warmup", type=float, default=3.0, help="seconds of warm-up, 0 for none (default 3)")
    add("--clients", type=positive, default=2, help="client processes (default 2)")
    add("--timeout", type=float, default=600.0, help="seconds the whole run may take")
    options = parse_with_tiny(parser, argv, TINY)
    if not 3 <= options.processes <= options.rooms < MAX_ROOMS:
        parser.error(f"use --processes from 3 to --rooms, and --rooms below {MAX_ROOMS}")
    if not 2 <= options.members <= 1000 or options.clients > 16:
        parser.error("use --members from 2 to 1000, --clients up to 16")
    if not 0 < options.seconds <= 600 or not 0 <= options.warmup <= 600 or options.timeout <= 0:
        parser.error("use --seconds above 0 and --warmup from 0, both up to 600; --timeout above 0")
    messages = options.rate * (options.warmup + 3 * options.seconds)
    if options.rate * options.seconds < 1 or messages >= MAX_NUMBER:
        parser.error(f"--rate times --seconds must be at least 1; at most {MAX_NUMBER} in all")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("redis_scale", lambda: bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
