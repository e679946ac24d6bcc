"""Rooms, their members, and who gets which frame: the core of ``/ws``.

The hub is sans-I/O: each call returns *effects* (data saying what must happen)
and a broker (``broker.py``) carries them out. Keeping the hub free of I/O lets
the same code serve one process (the in-memory broker delivers at once) and
many (a pub/sub broker publishes room frames to every process and keeps member
counts where all processes see them). The hub only ever hands a frame to a
local connection's :class:`Outbox`, without blocking; the server adapter owns
the outboxes and does the sending with its own concurrency. A broadcast is
encoded once and the same string is offered to every member. An outbox that
is full belongs to a reader that cannot keep up: the hub asks it to close with
1008 and drops it from its rooms, so one slow client never stalls the others.
Each connection's messages also pass a rate limiter (``limits.py``): messages
over the limit get an error, and a connection that keeps going is closed with 1008.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import protocol
from .close_codes import CloseCode
from .config import Settings
from .limits import RateLimiter, Verdict
from .protocol import Join, Leave, Ping, Position, ProtocolError, Say


class Outbox(Protocol):
    """Where the hub puts a connection's frames; implemented by each server adapter."""

    def offer(self, frame: str) -> bool:
        """Queue ``frame`` for sending without blocking; return False if the outbox is full."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Ask the adapter to close the connection with ``code``, without blocking."""
        ...


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand ``frame`` to a connection of this process."""

    connection_id: str
    frame: str


@dataclass(frozen=True, slots=True)
class Publish:
    """Hand ``frame`` to the members of ``room`` in every process: all but ``skip``,
    or just ``only``."""

    room: str
    frame: str
    skip: str | None = None
    only: str | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """A room message from ``sender``: the broker gives it its position in the room's
    history (``parts`` filled with :func:`protocol.position_values`), keeps it there, and
    hands it to every member in every process; then, if it has an ``id``, it answers the
    sender with an ``ack``. One it cannot publish is refused with an ``unavailable`` error."""

    room: str
    parts: protocol.Parts
    sender: str
    id: str | None = None

    def refusal(self) -> Deliver:
        """The sender's error when the message cannot be published."""
        error = protocol.error("unavailable", protocol.UNAVAILABLE, self.room, self.id)
        return Deliver(self.sender, error)

    def acknowledgement(self, position: Position) -> list[Effect]:
        """The sender's ``ack`` once the message has ``position`` (none without an id)."""
        if self.id is None:
            return []
        return [Deliver(self.sender, protocol.ack(self.room, self.id, position))]


@dataclass(frozen=True, slots=True)
class Announcement:
    """A ``joined`` or ``presence`` frame (``parts``) whose values the broker fills in:
    the member count, then for a ``joined`` the room's position and, for a member
    resuming from ``since``, whether it did and how many messages it missed (which
    follow the ``joined``, to it alone)."""

    parts: protocol.Parts
    skip: str | None = None
    only: str | None = None
    since: Position | None = None

    def publish(self, room: str, values: tuple[str, ...]) -> Publish:
        return Publish(room, protocol.fill(self.parts, values), self.skip, self.only)

    @property
    def is_presence(self) -> bool:
        """A ``presence`` (else a ``joined``)."""
        return self.parts[0].startswith('{"type":"presence"')


@dataclass(frozen=True, slots=True)
class Recount:
    """Record that this process has ``local_members`` in ``room``, then publish the
    announcements with the room's total over every process.

    A broker spanning processes does both in one atomic step, so that the order
    in which announcements reach anyone is the order of the counts they carry.
    """

    room: str
    local_members: int
    announcements: tuple[Announcement, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """Close a connection of this process with ``code``, after what was queued for it before."""

    connection_id: str
    code: int
    reason: str


Effect = Deliver | Publish | Post | Recount | Close


class Hub:
    """Connections and room memberships of one server process.

    Args:
        max_rooms: How many rooms one connection may be in at once.
        rate_limit: Messages per second one connection may send.
        rate_burst: Messages one connection may send at once (see :class:`RateLimiter`).
        clock: Returns the time in seconds since the epoch (for message ``ts``).
        monotonic: Returns the time in seconds from a clock that never goes back
            (for rate limits).
    """

    def __init__(
        self,
        *,
        max_rooms: int = Settings.max_rooms,
        rate_limit: float = Settings.rate_limit,
        rate_burst: int = Settings.rate_burst,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rooms = max_rooms
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst
        self._clock = clock
        self._monotonic = monotonic
        self._outboxes: dict[str, Outbox] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._rooms_of: dict[str, set[str]] = {}
        # Room: its local members, each with its outbox, so that a broadcast
        # reaches every outbox without a lookup per member.
        self._members: dict[str, dict[str, Outbox]] = {}
        # (connection, room) pairs whose ``joined`` has not come back through the
        # broker yet: frames published before the join are not theirs to see.
        self._pending: set[tuple[str, str]] = set()

    def connect(self, outbox: Outbox) -> tuple[str, list[Effect]]:
        """Register a new connection; return its id and its ``welcome``."""
        connection_id = secrets.token_urlsafe(6)
        while connection_id in self._outboxes:
            connection_id = secrets.token_urlsafe(6)
        self._outboxes[connection_id] = outbox
        self._limiters[connection_id] = RateLimiter(
            self.rate_limit, self.rate_burst, self._monotonic()
        )
        self._rooms_of[connection_id] = set()
        return connection_id, [Deliver(connection_id, protocol.welcome(connection_id))]

    def disconnect(self, connection_id: str) -> list[Effect]:
        """Forget a connection, however it ended, and tell its rooms. Safe to call twice."""
        self._outboxes.pop(connection_id, None)
        self._limiters.pop(connection_id, None)
        return [
            self._recount(room, self._presence(room, connection_id, "leave"))
            for room in sorted(self._rooms_of.pop(connection_id, ()))
            if self._remove_member(room, connection_id)
        ]

    def receive(self, connection_id: str, frame: str) -> list[Effect]:
        """Act on one text frame from a connection; invalid input, or input over the
        rate limit, gets an ``error`` event."""
        limiter = self._limiters.get(connection_id)
        if limiter is None:
            return []
        verdict = limiter.check(self._monotonic())
        if verdict is Verdict.REFUSE:
            detail = f"over {self.rate_limit:g} messages per second: slow down"
            return [Deliver(connection_id, protocol.error("rate_limited", detail))]
        if verdict is Verdict.CLOSE:
            # An effect, not at once: the errors before it may still be on their way.
            return [Close(connection_id, CloseCode.POLICY_VIOLATION, "rate limit exceeded")]
        try:
            message = protocol.parse(frame)
            if isinstance(message, Say):
                return self._say(connection_id, message)
            if isinstance(message, Join):
                return self._join(connection_id, message.room, message.since)
            if isinstance(message, Leave):
                return self._leave(connection_id, message.room)
            if isinstance(message, Ping):
                return [Deliver(connection_id, protocol.PONG)]
        except ProtocolError as error:
            return [Deliver(connection_id, protocol.error(error.code, error.detail, error.room))]
        raise AssertionError(f"unhandled message {message!r}")  # pragma: no cover

    def deliver(self, connection_id: str, frame: str) -> list[Effect]:
        """Offer ``frame`` to a local connection; a full outbox drops the connection."""
        outbox = self._outboxes.get(connection_id)
        if outbox is None or outbox.offer(frame):
            return []
        return self._drop(connection_id, outbox)

    def close(self, connection_id: str, code: int, reason: str) -> list[Effect]:
        """Ask a local connection's adapter to close it, and forget it."""
        outbox = self._outboxes.get(connection_id)
        if outbox is None:
            return []
        outbox.close(code, reason)
        return self.disconnect(connection_id)

    def fan_out(
        self, room: str, frame: str, skip: str | None = None, only: str | None = None
    ) -> list[Effect]:
        """Offer ``frame`` to the local members of ``room`` (all but ``skip``, or just
        ``only``); drop the ones whose outbox is full."""
        members = self._members.get(room)
        if not members:
            return []
        if only is not None:
            self._pending.discard((only, room))
            outbox = members.get(only)
            full = [only] if outbox is not None and not outbox.offer(frame) else []
        elif skip is None and not self._pending:  # a room message: the usual case
            refused = [outbox for outbox in members.values() if not outbox.offer(frame)]
            if not refused:
                return []
            full = [member for member, outbox in members.items() if outbox in refused]
        else:
            pending = self._pending
            full = [
                member
                for member, outbox in members.items()
                if member != skip and (member, room) not in pending and not outbox.offer(frame)
            ]
        return [effect for member in full for effect in self._drop(member, self._outboxes[member])]

    def forget_pending(self) -> None:
        """Count every join as answered, once the broker has reconnected.

        The broker tells each member its room's count again, and no frame
        published before it reconnected will come.
        """
        self._pending.clear()

    def expect_joined(self, connection_id: str, room: str) -> None:
        """Hand ``room``'s frames to a member again only after its ``joined``."""
        if connection_id in self._members.get(room, ()):
            self._pending.add((connection_id, room))

    def members(self, room: str) -> int:
        """How many connections of this process are in ``room``."""
        return len(self._members.get(room, ()))

    def local_rooms(self) -> dict[str, int]:
        """Every room with members in this process, and how many."""
        return {room: len(members) for room, members in self._members.items()}

    def rooms_of(self, connection_id: str) -> frozenset[str]:
        """The rooms a connection is in (empty if it is unknown)."""
        return frozenset(self._rooms_of.get(connection_id, ()))

    def joined(
        self, room: str, only: str | None = None, since: Position | None = None
    ) -> Announcement:
        """The ``joined`` answer for ``only`` (resuming from ``since``, if given), or
        for every member of ``room``."""
        return Announcement(protocol.joined_parts(room, since is not None), only=only, since=since)

    @property
    def connections(self) -> int:
        return len(self._outboxes)

    @property
    def rooms(self) -> int:
        return len(self._members)

    def _join(self, connection_id: str, room: str, since: Position | None) -> list[Effect]:
        rooms = self._rooms_of[connection_id]
        joined = self.joined(room, connection_id, since)
        if room in rooms:
            return [self._recount(room, joined)]
        if len(rooms) >= self.max_rooms:
            raise ProtocolError(
                "too_many_rooms", f"a connection may be in at most {self.max_rooms} rooms", room
            )
        rooms.add(room)
        self._members.setdefault(room, {})[connection_id] = self._outboxes[connection_id]
        self._pending.add((connection_id, room))
        return [self._recount(room, joined, self._presence(room, connection_id, "join"))]

    def _leave(self, connection_id: str, room: str) -> list[Effect]:
        rooms = self._rooms_of[connection_id]
        if room not in rooms:
            raise ProtocolError("not_joined", f"not in room {room!r}", room)
        rooms.discard(room)
        self._remove_member(room, connection_id)
        return [
            Deliver(connection_id, protocol.left(room)),
            self._recount(room, self._presence(room, connection_id, "leave")),
        ]

    def _say(self, connection_id: str, say: Say) -> list[Effect]:
        if say.room not in self._rooms_of[connection_id]:
            raise ProtocolError(
                "not_joined", f"join room {say.room!r} before sending to it", say.room
            )
        ts = int(self._clock() * 1000)
        parts = protocol.message_parts(say.room, connection_id, say.text, ts, say.event)
        return [Post(say.room, parts, connection_id, say.id)]

    def _presence(self, room: str, who: str, event: str) -> Announcement:
        return Announcement(protocol.presence_parts(room, who, event), skip=who)

    def _recount(self, room: str, *announcements: Announcement) -> Recount:
        return Recount(room, self.members(room), announcements)

    def _remove_member(self, room: str, connection_id: str) -> bool:
        members = self._members.get(room)
        if members is None or connection_id not in members:
            return False
        del members[connection_id]
        self._pending.discard((connection_id, room))
        if not members:
            del self._members[room]
        return True

    def _drop(self, connection_id: str, outbox: Outbox) -> list[Effect]:
        outbox.close(CloseCode.POLICY_VIOLATION, "outbox overflow: reading too slowly")
        return self.disconnect(connection_id)
