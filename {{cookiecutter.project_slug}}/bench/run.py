"""Websocket benchmark: echo, fan-out and idle memory, against a raw ``websockets`` reference.

Run it from the project root with the project's virtualenv (``make bench``)::

    .venv/bin/python -m bench.run [--workloads echo,fanout,idle] [--tiny] [--json out.json]

It starts this project's server (as ``make run`` does, one worker) and the reference server
(``bench/reference.py``: the raw ``websockets`` library, one process) on free ports of
127.0.0.1, or the servers listed in ``--servers FILE``, and measures, on equal terms (the
same ``picows`` load clients for every server, in ``--client-processes`` processes of their
own, offering no compression):

1. echo: ``--connections`` connections send 32-character texts to ``/ws/echo`` and wait for
   each to come back, for ``--seconds`` (in ``--slices`` slices, the servers in turn forward
   and backward, so that drifts in a shared machine's load hit all alike): round trips per
   second, latency p50/p99, and the server's and the clients' CPU time per round trip;
2. fan-out: ``--receivers`` clients and one sender join one room on ``/ws``; each round the
   sender sends one message and the round ends when every receiver has it: p50/p99 over
   ``--rounds`` rounds (after ``--warmup``) of the time until all were reached, and the
   server's CPU time per round (the work of one broadcast, whoever else shares the CPUs);
   rounds alternate between the servers;
3. idle: ``--idle`` connections (e.g. 1000,5000) opened to ``/ws`` and left quiet: the growth of
   the server's resident memory (its processes' VmRSS, children included) per connection.

Ratios are to the reference. Whether the load clients were the limit shows in the load table
(their CPU share) and in the calibration: echo on the fastest server again with twice the
client processes; if that is clearly faster, the clients capped the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import resource
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import workloads
from bench.common import (
    BenchError,
    at_most,
    log_findings,
    loop_name,
    machine,
    parse_with_tiny,
    positive,
    project_metadata,
    run_bench,
)
from bench.servers import RunningServer, default_specs, load_specs, running
from bench.table import load_table, table
from bench.workloads import ClientPool, EchoSample, Result

WORKLOADS = ("echo", "fanout", "idle")
TINY = {
    "seconds": 1.0,
    "slices": 2,
    "receivers": 20,
    "rounds": 3,
    "warmup": 1,
    "idle": "20,50",
    "settle": 0.1,
}


async def measure(
    servers: Sequence[RunningServer], options: argparse.Namespace
) -> tuple[list[Result], list[str]]:
    results = [Result(s.label, s.spec.reference) for s in servers]
    notes: list[str] = []
    for server, result in zip(servers, results, strict=True):
        result.deflate_offer = await workloads.deflate_offer(server)
    if accepting := [r.label for r in results if r.deflate_offer == "accepted"]:
        notes.append(
            f"{', '.join(accepting)} would compress with a browser (they accept an offer of "
            "permessage-deflate); here the load clients offer none, so no server compressed"
        )
    async with ClientPool(options.client_processes) as pool:
        if "idle" in options.workloads:
            levels = [int(level) for level in options.idle.split(",")]
            for server, result in zip(servers, results, strict=True):
                await workloads.idle(pool, server, result, levels, options.settle)
        if "echo" in options.workloads:
            samples = [EchoSample() for _ in servers]
            piece = options.seconds / options.slices
            order = list(zip(servers, samples, strict=True))
            for number in range(options.slices):
                for server, sample in order if number % 2 == 0 else reversed(order):
                    await workloads.echo(pool, server, sample, options.connections, piece)
            for sample, result in zip(samples, results, strict=True):
                sample.store(result)
            notes += await calibrate(servers, results, options)
        if "fanout" in options.workloads:
            await workloads.fanout(
                pool,
                servers,
                results,
                options.receivers,
                options.rounds,
                options.warmup,
                options.round_timeout,
            )
    return results, notes


async def measure_within(
    servers: Sequence[RunningServer], options: argparse.Namespace
) -> tuple[list[Result], list[str]]:
    measuring = asyncio.ensure_future(measure(servers, options))
    if not await at_most(options.timeout, measuring):
        raise BenchError(f"the overall --timeout of {options.timeout:g} s ran out")
    return measuring.result()


async def calibrate(
    servers: Sequence[RunningServer], results: Sequence[Result], options: argparse.Namespace
) -> list[str]:
    """Echo on the fastest server again with twice the load clients: the clients' ceiling.

    A server marked as a ceiling is left out: it is there to show what the clients can drive.
    """
    candidates = [i for i, server in enumerate(servers) if not server.spec.ceiling]
    fastest = max(candidates, key=lambda index: results[index].echo_rate or 0.0)
    sample = EchoSample()
    async with ClientPool(2 * options.client_processes) as pool:
        await workloads.echo(
            pool, servers[fastest], sample, options.connections, options.seconds / 2
        )
    doubled = Result(results[fastest].label)
    sample.store(doubled)
    base, more = results[fastest].echo_rate or 0.0, doubled.echo_rate or 0.0
    verdict = (
        "the clients were NOT the limit"
        if more < 1.1 * base
        else "WARNING: twice the clients were faster: the clients may have capped the echo figures"
    )
    return [
        f"client ceiling: echo on the fastest server ({results[fastest].label}) with "
        f"{options.client_processes} load-client processes: {base:,.0f} round trips/s; "
        f"with {2 * options.client_processes}: {more:,.0f}/s ({verdict}); "
        f"each client used {results[fastest].echo_client_cpu or 0:.0%} of a CPU, "
        f"the server {results[fastest].echo_server_cpu or 0:.0%}"
    ]


def raise_fd_limit() -> None:
    """Every connection is a descriptor in a client and in a server: allow as many as we may."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def header(options: argparse.Namespace) -> str:
    project, dependencies = project_metadata()
    lines = [
        "## Websocket benchmark\n",
        machine(),
        f"- load: {options.client_processes} client processes of picows "
        f"{importlib.metadata.version('picows')} on {loop_name()}, the same for every server",
        "- compression: none for every server (the clients offer no permessage-deflate)",
    ]
    if not options.servers:
        lines.insert(2, f"- project: {project} ({', '.join(dependencies) or '?'})")
    if "echo" in options.workloads:
        lines.append(
            f"- echo: {options.connections} connections, {options.seconds:g} s per server "
            f"in {options.slices} slices"
        )
    if "fanout" in options.workloads:
        lines.append(
            f"- fan-out: {options.receivers} receivers + 1 sender, {options.rounds} rounds after "
            f"{options.warmup} warm-up, 32-character text"
        )
    if "idle" in options.workloads:
        lines.append(f"- idle: {options.idle} connections open to /ws")
    return "\n".join(lines)


def bench(options: argparse.Namespace) -> int:
    specs = load_specs(options.servers) if options.servers else default_specs()
    raise_fd_limit()
    print(header(options), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        servers = [stack.enter_context(running(spec, Path(tmp))) for spec in specs]
        results, notes = asyncio.run(measure_within(servers, options))
        for server, result in zip(servers, results, strict=True):
            result.problems = log_findings(server.log())
    notes += [
        f"{r.label}: {r.fanout_timeouts} fan-out rounds timed out"
        for r in results
        if r.fanout_timeouts
    ]
    notes += [f"{r.label} server log: {'; '.join(r.problems[:4])}" for r in results if r.problems]
    print("\n" + table(results))
    print("\n(1.00x): the reference's figure; above 1 is faster for round trips/s, else worse.")
    print("\n" + load_table(results))
    if notes:
        print("\n" + "\n".join(f"- {note}" for note in notes))
    if options.json:
        document = {
            "options": {key: str(value) for key, value in vars(options).items()},
            "notes": notes,
            "results": [dataclasses.asdict(result) for result in results],
        }
        options.json.write_text(json.dumps(document, indent=1))
    return 1 if any(r.fanout_timeouts for r in results) else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = parser.add_argument
    add("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: all three)")
    add("--connections", type=positive, default=50, help="echo connections (default 50)")
    add("--seconds", type=float, default=12.0, help="echo seconds per server (default 12)")
    add("--slices", type=positive, default=6, help="echo slices per server (default 6)")
    add("--receivers", type=positive, default=1000, help="fan-out receivers (default 1000)")
    add("--rounds", type=positive, default=100, help="fan-out measured rounds (default 100)")
    add("--warmup", type=int, default=3, help="fan-out rounds discarded first (default 3)")
    add("--round-timeout", type=float, default=10.0, help="seconds a round may take (default 10)")
    add("--idle", default="1000,5000", help="idle connection counts (default 1000,5000)")
    add("--settle", type=float, default=1.0, help="seconds before reading memory (default 1)")
    add("--client-processes", type=positive, default=os.cpu_count() or 1, help="(default: CPUs)")
    add("--servers", type=Path, help="JSON list of servers to measure instead of the default two")
    add("--json", type=Path, help="also write the results to this file")
    add("--timeout", type=float, default=1200.0, help="seconds the whole run may take")
    options = parse_with_tiny(parser, argv, TINY)
    options.workloads = [w for w in options.workloads.split(",") if w]
    if unknown := set(options.workloads) - set(WORKLOADS):
        parser.error(f"unknown workloads {sorted(unknown)}: use {', '.join(WORKLOADS)}")
    if not 0 <= options.warmup <= 1000 or options.rounds > 10_000 or options.receivers > 100_000:
        parser.error("use --warmup 0-1000, --rounds up to 10000, --receivers up to 100000")
    if (
        not 0 < options.seconds <= 600
        or options.slices > 100
        or options.round_timeout <= 0
        or options.timeout <= 0
    ):
        parser.error("--seconds must be 0-600, --slices at most 100, timeouts positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    return run_bench("bench", lambda: bench(options))


if __name__ == "__main__":
    sys.exit(main())
