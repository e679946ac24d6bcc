"""What every benchmark script shares: errors, client options, statistics, logs, metadata."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import inspect
import math
import os
import platform
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from tests.support.live_server import PROJECT_DIR

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 30.0


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def now_us() -> int:
    """Microseconds on ``CLOCK_MONOTONIC``: one clock for every process of the machine."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def connect_options(deflate: bool) -> dict[str, Any]:
    """Keyword arguments of ``websockets`` ``connect()`` for a benchmark client."""
    options: dict[str, Any] = {
        "open_timeout": CONNECT_TIMEOUT,
        "ping_interval": None,  # no keepalive traffic of our own during the measurement
        "close_timeout": 1,
        "compression": "deflate" if deflate else None,
    }
    if "proxy" in inspect.signature(connect).parameters:
        options["proxy"] = None  # never route 127.0.0.1 through a proxy from the environment
    return options


def run_on_uvloop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on uvloop where it is installed (a dev dependency), else on asyncio's;
    return what it returns."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)  # asyncio.Runner's loop_factory would do, from Python 3.11
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def loop_name() -> str:
    """The event loop of :func:`run_on_uvloop`."""
    try:
        return f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        return "asyncio"


async def at_most(seconds: float, future: asyncio.Future[Any]) -> bool:
    """Wait up to ``seconds`` for ``future``: whether it is done (if not, it is cancelled).

    Unlike ``asyncio.wait_for``, the same on every Python: no TimeoutError to tell apart
    (before 3.11 ``asyncio.TimeoutError`` is not the built-in one). Its result is the caller's.
    """
    try:
        done, _ = await asyncio.wait({future}, timeout=max(seconds, 0.001))
    finally:
        if not future.done():
            future.cancel()
            await asyncio.gather(future, return_exceptions=True)
    return bool(done)


def retrieve(future: asyncio.Future[Any]) -> None:
    """Collect the outcome of a future given up on, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def ratio(ours: float | None, theirs: float | None) -> str:
    return "-" if ours is None or not theirs else f"{ours / theirs:.2f}x"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def parse_with_tiny(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, tiny: Mapping[str, object]
) -> argparse.Namespace:
    """Parse ``argv`` with one more option, ``--tiny``: ``tiny``'s values over the options'."""
    parser.add_argument("--tiny", action="store_true", help=f"a seconds-long smoke run: {tiny}")
    options = parser.parse_args(argv)
    if options.tiny:
        for key, value in tiny.items():
            setattr(options, key, value)
    return options


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every cleanup, like Ctrl-C


def run_bench(name: str, bench: Callable[[], int]) -> int:
    """Run ``bench``; a :class:`BenchError`, SIGTERM or Ctrl-C ends it with one line on stderr.

    Whatever it started is stopped on the way out (its context managers unwind).
    """
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return bench()
    except BenchError as error:
        print(f"{name}: ERROR: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; every process it started is stopped", file=sys.stderr)
        return 130


def read_log(path: Path) -> str:
    """A process's log so far; empty if it has none yet."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


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


def machine() -> str:
    """The header's ``- machine:`` line: CPUs, system, Python, load average."""
    uname = platform.uname()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"- machine: {os.cpu_count()} CPUs, {uname.system} {uname.release} {uname.machine}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"load average {load} at start"
    )


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
