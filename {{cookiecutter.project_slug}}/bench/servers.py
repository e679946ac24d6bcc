"""Start the servers under test, one process group each, and read their RSS and CPU time.

A server is described by a :class:`ServerSpec`: a command (``{port}`` stands for a free port
of 127.0.0.1), the directory to run it in and extra environment. It is ready once a websocket
handshake on ``/ws/echo`` succeeds (and, for a spec with ``health``, once ``/health`` answers 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bench.common import HOST, BenchError, connect_options, read_log
from tests.support.live_server import PROJECT_DIR, SERVER_COMMAND, free_port, get

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# The project server under benchmark load: clients here send far faster than people do.
PROJECT_ENV = {"LOG_LEVEL": "warning", "RATE_LIMIT": "1000000", "RATE_BURST": "1000000"}


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server under test."""

    label: str
    command: Sequence[str]
    cwd: str = "."
    env: Mapping[str, str] = field(default_factory=dict)
    reference: bool = False  # the one every ratio is to
    ceiling: bool = False  # a bound to read the others against, not a peer: not calibrated
    health: bool = False  # also wait for /health: the project's readiness (its broker connected)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServerSpec:
        return cls(
            label=str(data["label"]),
            command=[str(part) for part in data["command"]],
            cwd=str(data.get("cwd", ".")),
            env={str(key): str(value) for key, value in data.get("env", {}).items()},
            reference=bool(data.get("reference", False)),
            ceiling=bool(data.get("ceiling", False)),
        )


def load_specs(path: Path) -> list[ServerSpec]:
    """The servers listed in a JSON file: ``[{"label", "command", "cwd", "env", "reference",
    "ceiling"}]``."""
    return [ServerSpec.from_json(item) for item in json.loads(path.read_text())]


def project_spec(
    label: str = "project", env: Mapping[str, str] | None = None, health: bool = False
) -> ServerSpec:
    """This project's server as ``make run`` starts it, with :data:`PROJECT_ENV` and ``env``."""
    env = {**PROJECT_ENV, "HOST": HOST, "PORT": "{port}", **(env or {})}
    return ServerSpec(label, SERVER_COMMAND, str(PROJECT_DIR), env, health=health)


def default_specs() -> list[ServerSpec]:
    """This project's server and the raw ``websockets`` reference (``bench/reference.py``)."""
    reference = ServerSpec(
        "raw websockets",
        [sys.executable, "-m", "bench.reference", "--port", "{port}"],
        str(PROJECT_DIR),
        reference=True,
    )
    return [project_spec(), reference]


@dataclass
class RunningServer:
    """A started server: its process (the leader of its own process group) and address."""

    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def log(self) -> str:
        return read_log(self.log_path)

    def rss_kib(self) -> int:
        """Resident memory of the server and every process under it, in KiB."""
        return sum(_status_kib(pid, "VmRSS") for pid in process_tree(self.process.pid))

    def cpu_seconds(self) -> float:
        """CPU time the server and every process under it have used so far."""
        return tree_cpu_seconds(self.process.pid)


def tree_cpu_seconds(root: int) -> float:
    """CPU time ``root`` and every process under it have used so far."""
    return sum(_cpu_seconds(pid) for pid in process_tree(root))


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat[stat.rindex(")") + 2 :].split()[1])
                children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0  # gone meanwhile
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextlib.contextmanager
def running(spec: ServerSpec, log_dir: Path) -> Iterator[RunningServer]:
    """Start ``spec`` on a free port, wait until it is ready, and stop it afterwards."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in spec.command]
    env = {**os.environ, **{key: v.replace("{port}", str(port)) for key, v in spec.env.items()}}
    log_path = log_dir / f"{''.join(c if c.isalnum() else '-' for c in spec.label)}-{port}.log"
    with log_path.open("wb") as log:
        # A session of its own, so that stopping it reaches every worker process too.
        process = subprocess.Popen(  # noqa: S603 - the commands the benchmark was given
            command,
            cwd=spec.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(spec, process, port, log_path)
    try:
        asyncio.run(wait_until_ready(server))
        yield server
    finally:
        stop(server)


async def wait_until_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise BenchError(f"{server.label} exited with {code}:\n{server.log()}")
        try:
            async with connect(f"{server.ws_url}/ws/echo", **connect_options(deflate=False)):
                pass
            if server.spec.health:
                await asyncio.to_thread(require_health, server)
            return
        except Exception as error:  # refused, reset, timed out, /health not 200: not ready yet
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{server.label} was not ready within {START_TIMEOUT:g} s ({error}):\n"
                    f"{server.log()}"
                ) from None
        await asyncio.sleep(0.1)


def require_health(server: RunningServer) -> None:
    status = get(f"http://{HOST}:{server.port}/health", timeout=1)[0]
    if status != 200:
        raise BenchError(f"/health answered {status}")


def stop(server: RunningServer) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after a while."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
