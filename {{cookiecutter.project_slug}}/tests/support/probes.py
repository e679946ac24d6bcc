"""What the live tests ask of a running server: handshake answers, its log, its health."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tests.support.live_server import Server, wait_for_health
from tests.support.raw_websocket import upgrade
from tests.support.ws_client import SERVER_EVENT


def handshake_status(
    server: Server, path: str, headers: Mapping[str, str | None] | None = None
) -> int:
    """The HTTP status the server answers an opening handshake with."""
    status, _, sock = upgrade(server.host, server.port, path, headers, timeout=5)
    sock.close()
    return status


def wait_for_log(server: Server, needle: str, offset: int = 0, timeout: float = 5) -> str:
    """The server's log from ``offset`` on, once it holds ``needle``."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.log()[offset:]
        if needle in log:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in the server's log:\n{log[-3000:]}")
        time.sleep(0.05)


def assert_healthy(server: Server, log_offset: int = 0) -> None:
    """The process runs, answers /health, serves a websocket, and logged no traceback."""
    assert server.process.poll() is None, server.log()[-3000:]
    wait_for_health(server, 200, timeout=5)
    with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as ws:
        ws.send("still serving?")
        assert ws.recv(timeout=5) == "still serving?"
    log = server.log()[log_offset:]
    assert "Traceback" not in log, log[-3000:]


def close_of(ws: Connection, timeout: float = 5) -> int | None:
    """Read until the server closes ``ws``; the close code it sent (None: no close frame)."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@contextlib.contextmanager
def welcomed_connection(server: Server, timeout: float = 5) -> Iterator[Connection]:
    """A /ws connection that got its welcome, retrying while the server says 1013."""
    deadline = time.monotonic() + timeout
    while True:
        with connect(f"{server.ws_url}/ws", open_timeout=5) as ws:
            try:
                SERVER_EVENT.validate(json.loads(ws.recv(timeout=5)))
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            else:
                yield ws
                return
        assert code == 1013
        assert time.monotonic() < deadline, "still at the cap after a connection closed"
        time.sleep(0.1)
