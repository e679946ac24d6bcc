"""SIGTERM: the server stops accepting, closes every websocket with 1001 at once, and
exits within ``DRAIN_TIMEOUT``, whatever its clients do.

The bounds have margins: a process needs a moment to exit once it is done.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tests.support.live_server import Server, start_server, stop_server
from tests.support.raw_websocket import frame, open_websocket, read_response_head, status_of
from tests.support.ws_client import SERVER_EVENT

pytestmark = pytest.mark.slow

LONG_DRAIN = 30  # nothing should make a server wait this out
DRAIN_TIMEOUT = 5
EXIT_MARGIN = 2.0
# Each worker of a multi-worker server notices its SIGTERM at its next tick (every 0.1 s
# or so): one may still accept for that long after another has closed its clients.
WORKER_TICK = 0.3
CLIENTS = 20
{%- if cookiecutter.broker == "redis" %}
WORKER_COUNTS = [1, 2]
{%- else %}
WORKER_COUNTS = [1]  # rooms live in process memory: one worker only
{%- endif %}


@contextlib.contextmanager
def draining_server(tmp_path: Path, env: dict[str, str], drain: int) -> Iterator[Server]:
    server = start_server(tmp_path, {"WORKERS": "1", **env, "DRAIN_TIMEOUT": str(drain)})
    try:
        yield server
    finally:
        stop_server(server)  # harmless once it has exited; kills what is left otherwise


def open_clients(server: Server, stack: contextlib.ExitStack) -> list[Connection]:
    """Half on ``/ws`` (joined to a room), half on ``/ws/echo``, each seen working."""
    clients: list[Connection] = []
    for n in range(CLIENTS):
        if n % 2:
            ws = stack.enter_context(connect(f"{server.ws_url}/ws", open_timeout=5))
            SERVER_EVENT.validate(json.loads(ws.recv(timeout=5)))
            ws.send(json.dumps({"type": "join", "room": "shutdown"}))
        else:
            ws = stack.enter_context(connect(f"{server.ws_url}/ws/echo", open_timeout=5))
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
        clients.append(ws)
    return clients


def close_code_of(ws: Connection, timeout: float) -> int | None:
    """Read until the server closes ``ws``: the code of its close frame (None: none came)."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return None


def idle_keep_alive_connection(server: Server) -> socket.socket:
    """An HTTP/1.1 connection that made one request and now sits idle, kept alive."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n".encode())
    head = read_response_head(sock)
    assert status_of(head) == 200
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert length is not None, head
    body = b""
    while len(body) < int(length[1]):  # all of it: only the next request may come now
        body += sock.recv(int(length[1]) - len(body))
    return sock


def connection_ended(sock: socket.socket) -> bool:
    """True if the peer closed ``sock`` (EOF or reset) within its timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def served_a_new_websocket(server: Server) -> bool:
    """True if a websocket opened now, once every worker had its tick, gets its welcome."""
    time.sleep(WORKER_TICK)
    try:
        with connect(f"{server.ws_url}/ws", open_timeout=2) as ws:
            ws.recv(timeout=2)
    except (OSError, WebSocketException):  # refused, reset, timed out, or closed at once
        return False
    return True


def terminate(server: Server) -> float:
    """SIGTERM to the server's main process, as an orchestrator sends it; the start time."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    return started


def wait_for_exit(server: Server, started: float, timeout: float) -> float:
    """Seconds from ``started`` until the main process exited."""
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {timeout} s after SIGTERM:\n{server.log()[-3000:]}")
    return time.monotonic() - started


@pytest.mark.parametrize("workers", WORKER_COUNTS)
def test_sigterm_closes_every_websocket_with_1001_and_exits_in_time(
    tmp_path: Path, server_env: dict[str, str], workers: int
) -> None:
    env = {**server_env, "WORKERS": str(workers)}
    with (
        draining_server(tmp_path, env, LONG_DRAIN) as server,
        contextlib.ExitStack() as stack,
    ):
        clients = open_clients(server, stack)
        idle = stack.enter_context(idle_keep_alive_connection(server))
        started = terminate(server)
        codes = [close_code_of(ws, timeout=LONG_DRAIN) for ws in clients]
        closed_after = time.monotonic() - started
        served = served_a_new_websocket(server)
        exited_after = wait_for_exit(server, started, LONG_DRAIN + 15)
        idle_ended = connection_ended(idle)
    print(
        f"\nSIGTERM to {workers} worker(s) with {CLIENTS} websockets and an idle HTTP "
        f"connection: all closed after {closed_after:.2f} s, exited after {exited_after:.2f} s"
    )
    assert codes == [1001] * CLIENTS
    assert not served, "a websocket opened after SIGTERM was served"
    assert idle_ended, "the idle connection was left open"
    # Nothing held it up: the server did not wait its drain time out.
    assert exited_after < LONG_DRAIN / 2
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_a_reader_that_never_reads_does_not_hold_up_the_shutdown(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    with (
        draining_server(tmp_path, server_env, DRAIN_TIMEOUT) as server,
        contextlib.ExitStack() as stack,
    ):
        clients = open_clients(server, stack)
        # Echoes pile up towards a peer that never reads, until the server's sends block.
        stuck = stack.enter_context(
            open_websocket(server.host, server.port, "/ws/echo", receive_buffer=4096)
        )
        stuck.settimeout(2)
        with contextlib.suppress(TimeoutError):  # the server stopped reading: it is blocked
            for _ in range(100):
                stuck.sendall(frame(b"x" * 60_000))
        started = terminate(server)
        codes = [close_code_of(ws, timeout=DRAIN_TIMEOUT + 5) for ws in clients]
        closed_after = time.monotonic() - started
        exited_after = wait_for_exit(server, started, DRAIN_TIMEOUT + 15)
    print(
        f"\nSIGTERM with {CLIENTS} websockets and one stuck reader: all closed after "
        f"{closed_after:.2f} s, exited after {exited_after:.2f} s (DRAIN_TIMEOUT={DRAIN_TIMEOUT})"
    )
    assert codes == [1001] * CLIENTS  # the stuck one does not delay the others
    assert exited_after <= DRAIN_TIMEOUT + EXIT_MARGIN
