"""The gunicorn worker: gevent-websocket's, with its handshake and shutdown fixed.

gevent-websocket's handler answers 101 before the app runs, so the app cannot
refuse a foreign Origin or an unknown path in time; it answers a malformed
``Sec-WebSocket-Key`` with 500 and leaves the access log empty. This
:class:`WebSocketHandler` builds on gunicorn's own gevent handler instead
(access log included) and lets the app decide: a well-formed upgrade request
reaches the app with ``environ[ACCEPT_WEBSOCKET]``, a callable that answers 101 and
returns the :class:`~{{ cookiecutter.package_name }}.gevent_websocket.WebSocket`; the app may answer
403 or 404 instead, as for any request. The handler also pings every open
websocket and drops peers that stop answering.

On SIGTERM the stock worker waits out the graceful timeout for open websockets
and idle keep-alive connections, then drops them without a close frame;
:class:`Worker` closes every websocket with 1001 and every idle connection at
once, so it exits as soon as the requests in flight are done.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import gevent
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from geventwebsocket.websocket import Stream
from gunicorn.workers.ggevent import PyWSGIHandler

from .close_codes import CloseCode
from .config import Settings
from .gevent_websocket import ACCEPT_WEBSOCKET, OPCODE_PING, WebSocket, server_frame
from .guard import redact

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3
WEBSOCKET_VERSION = "13"
PING_FRAME = server_frame(b"", OPCODE_PING)
RFILE_BUFFER_BYTES = 1024  # per connection, for the handshake and the frames


def is_upgrade_request(environ: dict[str, Any]) -> bool:
    """True if the request asks to switch to the websocket protocol."""
    connection = environ.get("HTTP_CONNECTION", "").lower()
    return (
        environ.get("REQUEST_METHOD") == "GET"
        and environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        and "upgrade" in (token.strip() for token in connection.split(","))
    )


def handshake_problem(environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str] | None:
    """Status, headers and text of the answer to a malformed upgrade request, or None."""
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
        return "400 Bad Request", [], "a websocket handshake needs HTTP/1.1"
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != WEBSOCKET_VERSION:
        headers = [("Sec-WebSocket-Version", WEBSOCKET_VERSION)]
        return "426 Upgrade Required", headers, "unsupported websocket version"
    try:
        key = base64.b64decode(environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip(), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 16:
        return "400 Bad Request", [], "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answer to ``key``."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


class KeepAlive:
    """Pings every open websocket of the process, from one greenlet: each gets a ping
    ``interval`` seconds after its last one was answered, and is dropped if it sends
    nothing, neither a pong nor anything else, for ``timeout`` seconds after a ping.

    One greenlet and two numbers per websocket, not a greenlet or a timer each:
    those would be much of what an idle connection holds.
    """

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.tick = min(interval, timeout, 4.0) / 4  # how late a ping or a drop may be
        self.due: dict[WebSocket, float] = {}  # when each unpinged websocket gets its ping
        self.pinged: dict[WebSocket, float] = {}  # when each pinged one got it
        self.greenlet: gevent.Greenlet[..., None] | None = None

    def watch(self, websocket: WebSocket) -> None:
        self.due[websocket] = time.monotonic() + self.interval
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._run)

    def forget(self, websocket: WebSocket) -> None:
        self.due.pop(websocket, None)
        self.pinged.pop(websocket, None)

    def _run(self) -> None:
        try:
            while self.due or self.pinged:
                gevent.sleep(self.tick)
                self._check(time.monotonic())
        finally:
            self.greenlet = None

    def _check(self, now: float) -> None:
        for websocket, pinged in list(self.pinged.items()):
            if websocket.last_seen >= pinged:
                del self.pinged[websocket]
                self.due[websocket] = now + self.interval
            elif now - pinged >= self.timeout:
                del self.pinged[websocket]
                gevent.spawn(self._drop, websocket)
        for websocket, due in list(self.due.items()):
            if now >= due:
                del self.due[websocket]
                self.pinged[websocket] = now
                # Without waiting: a peer whose buffer is full does not read, and
                # then the timeout decides, as for a ping it never answers.
                websocket.send_nowait(PING_FRAME)

    def _drop(self, websocket: WebSocket) -> None:
        websocket.close(CloseCode.GOING_AWAY, "keepalive ping timeout")
        websocket.abort()  # wakes the app's receive() with the end of the connection


class WebSocketHandler(PyWSGIHandler):  # type: ignore[misc]
    """gunicorn's gevent handler, taught the websocket handshake (see the module's docstring)."""

    settings: ClassVar[Settings] = Settings()
    """Message size and ping settings; the worker sets them from the environment."""
    open_sockets: ClassVar[set[WebSocket]] = set()
    """Every websocket this process has open."""
    idle_handlers: ClassVar[set[WebSocketHandler]] = set()
    """Connections waiting for their next request (HTTP keep-alive)."""
    shutting_down: ClassVar[bool] = False

    keep_alive: ClassVar[KeepAlive | None] = None
    """Pings the websockets of this process, once the first is open."""

    environ: dict[str, Any]
    websocket: WebSocket | None = None
    failed = False  # the app crashed while it had the websocket

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        if rfile is None:
            # pywsgi's default buffer is 8 KiB, allocated at once and kept as long as
            # the connection: most of an idle websocket's memory. Frames and request
            # lines longer than the buffer are still read whole.
            rfile = sock.makefile("rb", RFILE_BUFFER_BYTES)
        super().__init__(sock, address, server, rfile)

    def read_requestline(self) -> str:
        if self.shutting_down:
            return ""  # no new request on a kept-alive connection: it closes
        self.idle_handlers.add(self)
        try:
            line: str = super().read_requestline()
        finally:
            self.idle_handlers.discard(self)
        return line

    def run_application(self) -> None:
        self.websocket, self.failed = None, False
        if not is_upgrade_request(self.environ):
            super().run_application()
            return
        problem = handshake_problem(self.environ)
        if problem is not None:
            status, headers, text = problem
            body = text.encode()
            headers += [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
            self.close_connection = True
            self.start_response(status, headers)
            self.write(body)
            return
        self.environ[ACCEPT_WEBSOCKET] = self.accept_websocket
        try:
            super().run_application()
        finally:
            if self.websocket is not None:
                self.end_websocket(self.websocket)

    def accept_websocket(self) -> WebSocket:
        """Answer 101 and return the websocket: ``environ[ACCEPT_WEBSOCKET]()`` in the app."""
        if self.websocket is not None:
            raise RuntimeError("this websocket was accepted already")
        key = self.environ["HTTP_SEC_WEBSOCKET_KEY"].strip()
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
        super().start_response("101 Switching Protocols", headers)
        self.close_connection = True  # once the websocket ends, so does the connection
        websocket = WebSocket(self.environ, Stream(self), self, self.settings.max_message_bytes)
        self.websocket = websocket
        self.environ["wsgi.websocket"] = websocket
        self.write(b"")  # sends the 101 now
        self.open_sockets.add(websocket)
        if WebSocketHandler.keep_alive is None:
            settings = self.settings
            WebSocketHandler.keep_alive = KeepAlive(settings.ping_interval, settings.ping_timeout)
        WebSocketHandler.keep_alive.watch(websocket)
        if self.shutting_down:  # accepted in the moment the worker was told to stop
            websocket.close(CloseCode.GOING_AWAY, "server shutting down")
        return websocket

    def end_websocket(self, websocket: WebSocket) -> None:
        """After the app is done with ``websocket``: close it if the app did not, with
        1011 if the app failed."""
        if self.keep_alive is not None:
            self.keep_alive.forget(websocket)
        self.open_sockets.discard(websocket)
        if self.failed:
            websocket.close(CloseCode.INTERNAL_ERROR, "internal server error")
        websocket.close()
        websocket.wait_closed()
        self.environ["wsgi.websocket"] = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if self.websocket is not None:
            # After a 101 the app's own status and body mean nothing to the peer,
            # but a 5xx says that it failed (falcon turns the exception into one).
            self.failed = status.startswith("5")
            return lambda data: None
        writer: Callable[[bytes], None] = super().start_response(status, headers, exc_info)
        return writer

    def process_result(self) -> None:
        if self.websocket is None:
            super().process_result()

    def log_request(self) -> None:
        # gunicorn's access log prints the request's URI and query: redact tokens in them.
        environ = self.environ
        if environ is None:
            # gevent has answered a request line too broken to parse with 400 itself;
            # gunicorn's access log cannot describe a request that has no environ.
            return
        self.environ = {
            **environ,
            "RAW_URI": redact(environ.get("RAW_URI", "")),
            "QUERY_STRING": redact(environ.get("QUERY_STRING", "")),
        }
        try:
            super().log_request()
        finally:
            self.environ = environ


class Worker(GeventWebSocketWorker):  # type: ignore[misc]
    """``worker_class`` for gunicorn: gevent-websocket's worker with the fixes above."""

    wsgi_handler = WebSocketHandler

    def init_process(self) -> None:
        # gunicorn.conf.py has validated the environment before any worker started.
        WebSocketHandler.settings = Settings.from_env()
        super().init_process()

    def run(self) -> None:
        super().run()  # returns once the connections ended, or the graceful timeout
        stop = getattr(self.wsgi, "stop", None)  # the app's (wsgi.App), which stops its broker
        if callable(stop):
            stop()

    def handle_exit(self, sig: int, frame: object) -> None:
        super().handle_exit(sig, frame)
        # Out of the signal handler: closing sockets may block on the network.
        gevent.spawn(close_connections, CloseCode.GOING_AWAY, "server shutting down")


def close_connections(code: int, reason: str) -> None:
    """Close every websocket of this process with ``code``, and every idle connection."""
    WebSocketHandler.shutting_down = True
    closing: Iterable[WebSocket] = list(WebSocketHandler.open_sockets)
    for websocket in closing:
        gevent.spawn(websocket.close, code, reason)
    for handler in list(WebSocketHandler.idle_handlers):
        with contextlib.suppress(OSError):
            handler.socket.shutdown(socket.SHUT_RDWR)
