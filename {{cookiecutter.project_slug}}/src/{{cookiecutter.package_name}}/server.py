"""uvicorn, set up from :class:`~{{ cookiecutter.package_name }}.config.Settings`.

The transport limits live here, where uvicorn enforces them before the app
sees a frame: message size (1009 before the payload is read), pings (a peer
that stops answering is dropped) and the drain time on shutdown.

permessage-deflate is off. Compression is per connection, so a broadcast to
a room is compressed once for every member, and chat-sized frames barely
shrink: in ``make bench`` it cost echo rate, fan-out latency and idle memory
alike. For messages of many kilobytes of text it may pay; turn it on with
``ws_per_message_deflate=True`` below.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from .config import Settings
from .guard import redact

CLOSE_GOING_AWAY = 1001


class ServerConnection(ServerProtocol):
    """websockets' server side, answering a close frame between the fragments of a message
    with the usual echo of its code.

    RFC 6455 (section 5.4) lets control frames come between fragments: a close
    there is a peer leaving in the middle of a message, and the unfinished
    message ends with the connection. websockets fails the connection with 1002
    (protocol error) instead, by design, and so blames a peer that broke no rule.
    """

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None  # no message is in progress any more
        super().recv_frame(frame)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol over a :class:`ServerConnection`, with a short
    path for sending and less held per connection.

    It closes with 1001 (going away) when the server stops or a peer stops
    answering pings: uvicorn says 1012 (service restart) on shutdown, which
    promises that the server is back at once, and 1011 (internal error) on a
    ping timeout, which blames the server; neither is true here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn builds its ServerProtocol here with no way to choose the class;
        # switching the class keeps every setting uvicorn gave it (size limit, extensions).
        self.conn.__class__ = ServerConnection

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and self._can_write_now():
            # What uvicorn's path comes to for a frame that can go at once, without
            # its waits and copies: every message and every member of a broadcast
            # takes this path.
            text = message.get("text")
            if text is not None:
                frame = Frame(Opcode.TEXT, text.encode())
            else:
                frame = Frame(Opcode.BINARY, message["bytes"])
            self.transport.write(frame.serialize(mask=False, extensions=()))
            return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response (headers and all) are not read
            # again; every connection would hold them for life.
            del self.request, self.response

    def _can_write_now(self) -> bool:
        """An open connection, no extension, no close sent, not paused for writing."""
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
            and self.conn.state is State.OPEN
            and not self.conn.extensions
        )

    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(CLOSE_GOING_AWAY, "keepalive ping timeout")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True

    def shutdown(self) -> None:
        if not self.handshake_complete or self.close_sent:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
        self.conn.send_close(CLOSE_GOING_AWAY, "server shutting down")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()


class RedactTokens(logging.Filter):
    """Replaces ``token=`` query values in log records, so that no token reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


class ClientFaultsAsWarnings(logging.Filter):
    """Logs a client's invalid UTF-8 as one warning line, not an error with a traceback.

    uvicorn logs it with ``logger.exception``: any client could fill the log
    with tracebacks, and real server errors would drown in them.
    """

    MESSAGES = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.msg in self.MESSAGES:
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with this module's filters on every handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "redact_tokens": {"()": f"{__name__}.RedactTokens"},
        "client_faults": {"()": f"{__name__}.ClientFaultsAsWarnings"},
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_tokens", "client_faults"]
    return config


def run(settings: Settings) -> None:
    """Serve the ASGI app until SIGTERM or SIGINT."""
    uvicorn.run(
        "{{ cookiecutter.package_name }}.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=log_config(),
        ws=f"{__name__}:WebSocketProtocol",
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_timeout,
        timeout_graceful_shutdown=settings.drain_timeout,
    )
