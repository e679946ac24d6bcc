"""A room member that behaves as ``client.js`` does, in a thread: for the fault tests.

It reconnects when its connection ends, rejoins from the last position it saw,
drops what it saw already, and sends its own messages with ids until each is
acknowledged, again after every reconnect and every second meanwhile. It records
everything it was given, for the test to check.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect
from websockets.sync.connection import Connection

RESEND_AFTER = 1.0  # seconds a message waits for its ack before it is sent again
RECONNECT_DELAY = 0.2


@dataclass
class Tally:
    """What a member was given and did."""

    messages: list[tuple[str, int, str]] = field(default_factory=list)  # epoch, offset, text
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # id: epoch, offset
    refused: int = 0  # unavailable errors
    resumed: list[tuple[bool, int]] = field(default_factory=list)  # recovered, missed
    connections: int = 0
    duplicates_dropped: int = 0


class ResilientMember:
    """One member of ``room`` on the server at one of ``urls`` (taken in turn)."""

    def __init__(self, urls: list[str], room: str) -> None:
        self.urls = urls
        self.room = room
        self.tally = Tally()
        self.position: tuple[str, int] | None = None
        self.unacked: dict[str, float] = {}  # id: when it was last sent
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ws: Connection | None = None
        self.joined = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.drop()
        self.thread.join(timeout=10)

    def send(self) -> str:
        """Send a new message (its text is its id); returns the id."""
        message_id = secrets.token_hex(8)
        with self.lock:
            self.unacked[message_id] = 0.0
        self._resend(force=False)
        return message_id

    def drop(self) -> None:
        """End the connection at once, as a network failure would."""
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(OSError):
                ws.socket.shutdown(2)

    def _run(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            try:
                with connect(f"{url}/ws", open_timeout=5, close_timeout=1) as ws:
                    self.ws = ws
                    self.tally.connections += 1
                    self._serve(ws)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            finally:
                self.ws = None
                self.joined.clear()
            self.stopping.wait(RECONNECT_DELAY)

    def _serve(self, ws: Connection) -> None:
        join: dict[str, Any] = {"type": "join", "room": self.room}
        if self.position is not None:
            join["since"] = {"epoch": self.position[0], "offset": self.position[1]}
        ws.send(json.dumps(join))
        while not self.stopping.is_set():
            try:
                frame = ws.recv(timeout=RESEND_AFTER / 2)
            except TimeoutError:
                self._resend(force=False)
                continue
            self._received(json.loads(frame))

    def _received(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "joined":
            if "recovered" in event:
                self.tally.resumed.append((event["recovered"], event["missed"]))
                if not event["recovered"] and event["epoch"] is not None:
                    self.position = (event["epoch"], event["offset"])
            elif self.position is None and event["epoch"] is not None:
                self.position = (event["epoch"], event["offset"])
            self.joined.set()
            self._resend(force=True)
        elif kind == "message":
            epoch, offset = event["epoch"], event["offset"]
            if (
                self.position is not None
                and (epoch, offset) <= self.position
                and (epoch == self.position[0])
            ):
                self.tally.duplicates_dropped += 1
                return
            self.position = (epoch, offset)
            self.tally.messages.append((epoch, offset, event["text"]))
        elif kind == "ack":
            with self.lock:
                self.unacked.pop(event["id"], None)
            self.tally.acked[event["id"]] = (event["epoch"], event["offset"])
        elif kind == "error" and event["code"] == "unavailable":
            self.tally.refused += 1

    def _resend(self, force: bool) -> None:
        ws, now = self.ws, time.monotonic()
        if ws is None or not self.joined.is_set():
            return
        with self.lock:
            due = [i for i, at in self.unacked.items() if force or now - at >= RESEND_AFTER]
            for message_id in due:
                self.unacked[message_id] = now
        for message_id in due:
            message = {"type": "message", "room": self.room, "text": message_id, "id": message_id}
            with contextlib.suppress(OSError, ConnectionClosed):
                ws.send(json.dumps(message))
