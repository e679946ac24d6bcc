"""Start the real server, as ``make run`` does, on a free port of 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
{%- if cookiecutter.broker == "redis" %}

import redis

from {{ cookiecutter.package_name }}.redis_layout import Names, node_url
{%- endif %}

PROJECT_DIR = Path(__file__).resolve().parents[2]
{%- if cookiecutter.server == "asgi-uvicorn" %}
SERVER_COMMAND = [sys.executable, "-m", "{{ cookiecutter.package_name }}"]
{%- else %}
SERVER_COMMAND = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
{%- endif %}
STARTUP_TIMEOUT = 30.0


class ServerStartError(RuntimeError):
    """The server exited or never became healthy; the message holds its log."""


@dataclass(frozen=True)
class Server:
    """A running server process and where to reach it."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 5) -> tuple[int, Message, bytes]:
    """Status, headers (case-insensitive) and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_for_health(server: Server, status: int, timeout: float) -> dict[str, object]:
    """Poll ``/health`` until it answers ``status``; return its document."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            code, _, body = get(f"{server.http_url}/health", timeout=1)
            if code == status:
                document: dict[str, object] = json.loads(body)
                return document
        if time.monotonic() > deadline:
            raise AssertionError(f"/health never answered {status} in {timeout} s")
        time.sleep(0.1)


def wait_until_started(server: Server, statuses: Collection[int] = (200,)) -> None:
    """Poll ``/health`` until it answers one of ``statuses``; raise
    :class:`ServerStartError` if it never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise ServerStartError(f"server exited with {code}:\n{server.log()}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            if get(f"{server.http_url}/health", timeout=1)[0] in statuses:
                return
        time.sleep(0.1)
    raise ServerStartError(f"/health not {statuses} after {STARTUP_TIMEOUT} s:\n{server.log()}")
{%- if cookiecutter.broker == "redis" %}


def wait_for_every_worker(environ: Mapping[str, str]) -> None:
    """Wait until every worker process is subscribed to Redis, not only the one that
    answered ``/health``: each subscribes to a control channel of its own."""
    workers = int(environ.get("WORKERS") or os.cpu_count() or 1)
    pattern = Names(environ["REDIS_PREFIX"], "*").control
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with redis.Redis.from_url(node_url(environ["REDIS_URL"])) as client:
        while len(client.pubsub_channels(pattern)) < workers:
            if time.monotonic() > deadline:
                raise ServerStartError(f"not all {workers} workers subscribed to Redis")
            time.sleep(0.05)
{%- endif %}


ServerWith = Callable[[Mapping[str, str]], Server]
"""Starts a server with settings of its own (the ``server_with`` fixture)."""


def start_server(
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    started: Collection[int] = (200,),
) -> Server:
    """Start the server as ``make run`` does and wait until it is healthy.

    ``env`` is added to this process's environment for the server. ``port``
    defaults to a free one; pass a stopped server's port to restart it there.
    ``started`` are the ``/health`` statuses to wait for: add 503 to start
    using a server that is up but not ready.
    """
    env = dict(env or {})
    port = port or free_port()
{%- if cookiecutter.broker == "redis" %}
    # Each server gets a key space of its own unless the test shares one on purpose.
    env.setdefault("REDIS_PREFIX", f"test-{port}-{time.monotonic_ns()}")
{%- endif %}
    log_path = log_dir / f"server-{port}-{time.monotonic_ns()}.log"
    environ = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env}
    with log_path.open("wb") as log:
        # A session of its own, so that stopping it reaches every worker process too.
        process = subprocess.Popen(
            SERVER_COMMAND,
            cwd=PROJECT_DIR,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, "127.0.0.1", port, log_path)
    try:
        wait_until_started(server, started)
{%- if cookiecutter.broker == "redis" %}
        if 503 not in started:
            wait_for_every_worker(environ)
{%- endif %}
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: Server) -> None:
    """Stop the server (SIGTERM, then SIGKILL after 15 s) and wait for it to exit.

    Whatever is left of its process group is killed too, so no orphaned worker
    keeps the port.
    """
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
