"""The gunicorn worker: gevent-websocket's, with its close frames and shutdown fixed.

gevent-websocket 0.10.1 (unmaintained since 2017) builds close frames from the
reason alone: ``close(code, reason)`` leaves the code out (peers see 1002 or
1005) and a peer's close is echoed back mangled. :class:`WebSocket` sends
the code; :class:`Worker` makes every connection use it. On SIGTERM the stock
worker waits out the graceful timeout for open websockets and idle keep-alive
connections, then drops them without a close frame; :class:`Worker` closes
every websocket with 1001 and every idle connection at once, so it exits as
soon as the requests in flight are done.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any, ClassVar

import gevent
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from geventwebsocket.handler import WebSocketHandler as BaseWebSocketHandler
from geventwebsocket.websocket import WebSocket as BaseWebSocket

MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes
CLOSE_GOING_AWAY = 1001


class WebSocket(BaseWebSocket):  # type: ignore[misc]
    """gevent-websocket's socket with a close frame that carries its code."""

    __slots__ = ()  # the base has slots: keeping the layout lets a stock socket be re-classed

    def close(self, code: int = 1000, message: bytes | str = b"") -> None:
        """Send a close frame with ``code`` and ``message`` (the reason), then stop."""
        state: Any = self  # the base is untyped and slotted: its attributes are unknown to mypy
        if state.closed:
            return
        reason = message.encode() if isinstance(message, str) else bytes(message or b"")
        try:
            self.send_frame(struct.pack("!H", code) + reason[:MAX_REASON_BYTES], self.OPCODE_CLOSE)
        except WebSocketError:
            pass  # the peer is gone already: nothing left to tell it
        finally:
            # What the base's close() leaves behind.
            state.closed = True
            state.stream = state.raw_write = state.raw_read = state.environ = None


class WebSocketHandler(BaseWebSocketHandler):  # type: ignore[misc]
    """Hands the app a :class:`WebSocket` instead of the stock one; tracks connections."""

    open_sockets: ClassVar[set[WebSocket]] = set()
    """Every websocket this process has open."""
    idle_handlers: ClassVar[set[WebSocketHandler]] = set()
    """Connections waiting for their next request (HTTP keep-alive)."""
    shutting_down: ClassVar[bool] = False

    def read_requestline(self) -> str:
        if self.shutting_down:
            return ""  # no new request on a kept-alive connection: it closes
        self.idle_handlers.add(self)
        try:
            line: str = super().read_requestline()
        finally:
            self.idle_handlers.discard(self)
        return line

    def upgrade_connection(self) -> object:
        result = super().upgrade_connection()
        websocket = getattr(self, "websocket", None)
        if websocket is not None:
            # Same state, fixed methods: re-classing is all it takes.
            websocket.__class__ = WebSocket
        return result

    def run_websocket(self) -> None:
        websocket = self.websocket
        self.open_sockets.add(websocket)
        try:
            super().run_websocket()
        finally:
            self.open_sockets.discard(websocket)


class Worker(GeventWebSocketWorker):  # type: ignore[misc]
    """``worker_class`` for gunicorn: gevent-websocket's worker with the fixes above."""

    wsgi_handler = WebSocketHandler

    def handle_exit(self, sig: int, frame: object) -> None:
        super().handle_exit(sig, frame)
        # Out of the signal handler: closing sockets may block on the network.
        gevent.spawn(close_connections, CLOSE_GOING_AWAY, "server shutting down")


def close_connections(code: int, reason: str) -> None:
    """Close every websocket of this process with ``code``, and every idle connection."""
    WebSocketHandler.shutting_down = True
    for websocket in list(WebSocketHandler.open_sockets):
        gevent.spawn(websocket.close, code, reason)
    for handler in list(WebSocketHandler.idle_handlers):
        with contextlib.suppress(OSError):
            handler.socket.shutdown(socket.SHUT_RDWR)
