"""Rooms, their members, and who gets which frame: the core of ``/ws``.

The hub decides *what* goes to *whom* and hands each frame to the recipient's
:class:`Outbox` without blocking; the server adapter owns the outboxes and does
the sending with its own concurrency. A broadcast is encoded once and the same
string is offered to every member. An outbox that is full belongs to a reader
that cannot keep up: the hub drops it from its rooms and asks it to close with
1008, so one slow client never stalls the others.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Protocol

from . import protocol
from .protocol import Join, Leave, Ping, ProtocolError, Say

CLOSE_POLICY_VIOLATION = 1008
DEFAULT_MAX_ROOMS = 16


class Outbox(Protocol):
    """Where the hub puts a connection's frames; implemented by each server adapter."""

    def offer(self, frame: str) -> bool:
        """Queue ``frame`` for sending without blocking; return False if the outbox is full."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Ask the adapter to close the connection with ``code``, without blocking."""
        ...


class Hub:
    """Connections, room memberships and fan-out for one server process.

    Args:
        max_rooms: How many rooms one connection may be in at once.
        clock: Returns the time in seconds since the epoch (for message ``ts``).
    """

    def __init__(
        self, *, max_rooms: int = DEFAULT_MAX_ROOMS, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_rooms = max_rooms
        self._clock = clock
        self._outboxes: dict[str, Outbox] = {}
        self._rooms_of: dict[str, set[str]] = {}
        self._members: dict[str, set[str]] = {}
        # Connections whose outbox is gone but whose rooms are not yet told:
        # handled after the current operation, so a cascade stays a loop.
        self._dropped: list[str] = []

    def connect(self, outbox: Outbox) -> str:
        """Register a new connection, send it ``welcome``, and return its id."""
        connection_id = secrets.token_urlsafe(6)
        while connection_id in self._outboxes:
            connection_id = secrets.token_urlsafe(6)
        self._outboxes[connection_id] = outbox
        self._rooms_of[connection_id] = set()
        self._send(connection_id, protocol.welcome(connection_id))
        self._settle()
        return connection_id

    def disconnect(self, connection_id: str) -> None:
        """Forget a connection, however it ended, and tell its rooms. Safe to call twice."""
        if self._outboxes.pop(connection_id, None) is not None:
            self._dropped.append(connection_id)
        self._settle()

    def receive(self, connection_id: str, frame: str) -> None:
        """Act on one text frame from a connection; invalid input gets an ``error`` event."""
        if connection_id not in self._outboxes:
            return
        try:
            message = protocol.parse(frame)
            if isinstance(message, Say):
                self._say(connection_id, message)
            elif isinstance(message, Join):
                self._join(connection_id, message.room)
            elif isinstance(message, Leave):
                self._leave(connection_id, message.room)
            elif isinstance(message, Ping):
                self._send(connection_id, protocol.PONG)
        except ProtocolError as error:
            self._send(connection_id, protocol.error(error.code, error.detail, error.room))
        self._settle()

    def members(self, room: str) -> int:
        """How many connections are in ``room``."""
        return len(self._members.get(room, ()))

    def rooms_of(self, connection_id: str) -> frozenset[str]:
        """The rooms a connection is in (empty if it is unknown)."""
        return frozenset(self._rooms_of.get(connection_id, ()))

    @property
    def connections(self) -> int:
        return len(self._outboxes)

    @property
    def rooms(self) -> int:
        return len(self._members)

    def _join(self, connection_id: str, room: str) -> None:
        rooms = self._rooms_of[connection_id]
        if room not in rooms:
            if len(rooms) >= self.max_rooms:
                raise ProtocolError(
                    "too_many_rooms", f"a connection may be in at most {self.max_rooms} rooms", room
                )
            rooms.add(room)
            members = self._members.setdefault(room, set())
            members.add(connection_id)
            self._broadcast(
                members,
                protocol.presence(room, len(members), connection_id, "join"),
                skip=connection_id,
            )
        self._send(connection_id, protocol.joined(room, self.members(room)))

    def _leave(self, connection_id: str, room: str) -> None:
        rooms = self._rooms_of[connection_id]
        if room not in rooms:
            raise ProtocolError("not_joined", f"not in room {room!r}", room)
        rooms.discard(room)
        self._remove_member(room, connection_id)
        self._send(connection_id, protocol.left(room))

    def _say(self, connection_id: str, say: Say) -> None:
        if say.room not in self._rooms_of[connection_id]:
            raise ProtocolError(
                "not_joined", f"join room {say.room!r} before sending to it", say.room
            )
        ts = int(self._clock() * 1000)
        frame = protocol.message(say.room, connection_id, say.text, ts)
        self._broadcast(self._members[say.room], frame)

    def _remove_member(self, room: str, connection_id: str) -> None:
        members = self._members[room]
        members.discard(connection_id)
        if not members:
            del self._members[room]
            return
        self._broadcast(members, protocol.presence(room, len(members), connection_id, "leave"))

    def _send(self, connection_id: str, frame: str) -> None:
        outbox = self._outboxes.get(connection_id)
        if outbox is not None and not outbox.offer(frame):
            del self._outboxes[connection_id]
            outbox.close(CLOSE_POLICY_VIOLATION, "outbox overflow: reading too slowly")
            self._dropped.append(connection_id)

    def _broadcast(self, members: set[str], frame: str, skip: str | None = None) -> None:
        for member in members:
            if member != skip:
                self._send(member, frame)

    def _settle(self) -> None:
        while self._dropped:
            connection_id = self._dropped.pop()
            for room in self._rooms_of.pop(connection_id, ()):
                self._remove_member(room, connection_id)
