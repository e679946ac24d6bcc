"""A JSON client for ``/ws`` that checks every event it gets against the published schema."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from jsonschema import Draft202012Validator
from websockets.sync.client import connect

from {{ cookiecutter.package_name }}.pages import STATIC_DIR

SCHEMA = json.loads((STATIC_DIR / "protocol.schema.json").read_text())
SERVER_EVENT = Draft202012Validator({**SCHEMA, "$ref": "#/$defs/server"})
CLIENT_MESSAGE = Draft202012Validator({**SCHEMA, "$ref": "#/$defs/client"})


class RoomsClient:
    """One connection to ``/ws``; :attr:`id` is the one its ``welcome`` gave."""

    def __init__(self, ws_url: str) -> None:
        self._exit_stack = contextlib.ExitStack()
        # No pings of its own: a test may leave events unread for longer than a ping
        # interval, and a ping whose pong waits behind them would stall the close. For
        # the same reason a close does not wait long for the server's close frame.
        connection = connect(f"{ws_url}/ws", open_timeout=5, ping_interval=None, close_timeout=1)
        self.ws = self._exit_stack.enter_context(connection)
        self.id: str = self.expect("welcome")["id"]

    def __enter__(self) -> RoomsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._exit_stack.close()

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def receive(self, timeout: float = 5) -> dict[str, Any]:
        """The next event, after checking it against the schema."""
        event: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        SERVER_EVENT.validate(event)
        return event

    def expect(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        """The next event, which must be of type ``kind``."""
        event = self.receive(timeout)
        assert event["type"] == kind, event
        return event

    def join(self, room: str) -> dict[str, Any]:
        self.send(type="join", room=room)
        return self.expect("joined")
