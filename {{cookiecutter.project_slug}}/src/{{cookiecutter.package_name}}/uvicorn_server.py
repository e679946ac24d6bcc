"""uvicorn, set up from :class:`~{{ cookiecutter.package_name }}.config.Settings`.

The transport limits live here, where uvicorn enforces them before the app
sees a frame: message size (1009 before the payload is read), pings (a peer
that stops answering is dropped) and the drain time on shutdown.

permessage-deflate is off. Compression is per connection, so a broadcast to
a room is compressed once for every member, and chat-sized frames barely
shrink: in ``make bench`` it cost echo rate, fan-out latency and idle memory
alike. For messages of many kilobytes of text it may pay; turn it on with
``ws_per_message_deflate=True`` below.

The websocket protocol itself is ``uvicorn_websocket.py``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .config import Settings
from .guard import redact


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
        ws="{{ cookiecutter.package_name }}.uvicorn_websocket:WebSocketProtocol",
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_timeout,
        timeout_graceful_shutdown=settings.drain_timeout,
    )
