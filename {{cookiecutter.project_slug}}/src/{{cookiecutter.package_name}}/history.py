"""Room positions and history in process memory: what ``broker=memory`` keeps (no I/O).

Every room message gets a position: the room's epoch and the next offset. The
last ``HISTORY_SIZE`` messages of a room are kept until ``HISTORY_TTL`` seconds
after its last message; a member that comes back with the position it had
gets exactly what it missed, or is told that it cannot be recovered{% if cookiecutter.broker == "redis" %}. The
Redis broker keeps the same in Redis (``redis_scripts.py``), by the same rules,
which :func:`recover` states{% else %}, by the
rules :func:`recover` states{% endif %}.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .protocol import Position

POSITION_TTL = 24 * 3600.0
"""Seconds a room's epoch and offset outlive its last message (its history lives
``HISTORY_TTL``): a member back after longer starts again, with a new epoch."""
RECENT_IDS = 1000
"""Message ids a room remembers, newest first: a message sent again with one of
them is not delivered again."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of each room's history is kept: ``size`` messages, until ``ttl`` seconds
    after the room's last one; none when either is 0 (positions are given all the same)."""

    size: int
    ttl: float

    @property
    def messages(self) -> int:
        """Messages kept per room: 0 when the history is off."""
        return self.size if self.ttl > 0 else 0

    @property
    def position_ttl(self) -> float:
        """Seconds a room's epoch and offset outlive its last message."""
        return max(POSITION_TTL, self.ttl)


def new_epoch() -> str:
    """A fresh epoch: a room's history starts (again) at offset 1 under it."""
    return secrets.token_hex(4)


def recover(since: Position, epoch: str, top: int, oldest: int | None) -> tuple[bool, int, int]:
    """Whether a member at ``since`` can get all it missed from a history at ``epoch``
    whose newest offset is ``top`` and whose oldest kept one is ``oldest`` (None: none
    kept); and the offsets to replay, from and to (empty when from > to).

    Never a part: the history must reach back to the first message missed.
    """
    if since.epoch != epoch or since.offset > top:
        return False, 1, 0
    if since.offset == top:
        return True, 1, 0
    if oldest is None or oldest > since.offset + 1:
        return False, 1, 0
    return True, since.offset + 1, top


class RoomHistory:
    """One room's epoch, newest offset, recent messages and recent message ids."""

    __slots__ = ("epoch", "frames", "ids", "top", "touched")

    def __init__(self, size: int, now: float) -> None:
        self.epoch = new_epoch()
        self.top = 0
        self.frames: deque[tuple[int, str]] = deque(maxlen=size)  # (offset, frame)
        self.ids: OrderedDict[str, int] = OrderedDict()  # message id: its offset
        self.touched = now  # the time of its last message


class Histories:
    """Every room's history in this process.

    Args:
        retention: What is kept of each room's messages.
        clock: Seconds from a clock that never goes back.
    """

    def __init__(self, retention: Retention, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = retention.messages
        self.ttl = retention.ttl
        self.position_ttl = retention.position_ttl
        self._clock = clock
        # Least recently posted to first, so that expired rooms are found at the front:
        # every room, and the rooms with messages kept.
        self._rooms: OrderedDict[str, RoomHistory] = OrderedDict()
        self._keeping: OrderedDict[str, RoomHistory] = OrderedDict()

    def post(
        self, room: str, frame: Callable[[Position], str], message_id: str | None
    ) -> tuple[Position, str | None]:
        """Give a message its position and keep it: ``frame`` makes it from its position.

        Returns the position and the frame, or, for an ``id`` seen before in the
        room, the position it got then and None (it is not delivered again).
        """
        now = self._clock()
        self._expire(now)
        history = self._history(room, now)
        if message_id is not None and (offset := history.ids.get(message_id)) is not None:
            return Position(history.epoch, offset), None
        history.top += 1
        history.touched = now
        self._rooms.move_to_end(room)
        position = Position(history.epoch, history.top)
        made = frame(position)
        if self.size:
            history.frames.append((history.top, made))
            self._keeping[room] = history
            self._keeping.move_to_end(room)
        if message_id is not None:
            history.ids[message_id] = history.top
            if len(history.ids) > RECENT_IDS:
                history.ids.popitem(last=False)
        return position, made

    def position(self, room: str) -> Position:
        """Where ``room``'s history stands now (offset 0: no message yet)."""
        now = self._clock()
        self._expire(now)
        history = self._history(room, now)
        return Position(history.epoch, history.top)

    def since(self, room: str, since: Position) -> tuple[bool, Sequence[str]]:
        """Whether everything ``room`` published after ``since`` can be given, and if so
        those frames, oldest first."""
        now = self._clock()
        self._expire(now)
        history = self._history(room, now)
        frames = history.frames
        oldest = frames[0][0] if frames else None
        recovered, first, last = recover(since, history.epoch, history.top, oldest)
        if first > last:  # not recovered, or nothing missed
            return recovered, ()
        return True, [frame for offset, frame in frames if offset >= first]

    def _history(self, room: str, now: float) -> RoomHistory:
        history = self._rooms.get(room)
        if history is None:
            history = self._rooms[room] = RoomHistory(self.size, now)
        return history

    def _expire(self, now: float) -> None:
        """Let go of the messages kept longer than ``ttl`` after their room's last one,
        and forget the rooms whose position outlived :data:`POSITION_TTL`."""
        keeping = self._keeping
        while keeping:
            room, history = next(iter(keeping.items()))
            if now - history.touched <= self.ttl:
                break
            history.frames.clear()
            del keeping[room]
        rooms = self._rooms
        while rooms:
            room, history = next(iter(rooms.items()))
            if now - history.touched <= self.position_ttl:
                break
            del rooms[room]
