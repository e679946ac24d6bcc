"""How a process closes its own gaps: what it last saw of each room, and its resumes.

Redis pub/sub delivers to whoever is subscribed at that moment: a room message
published while a process's subscriber connection is broken never reaches it.
Every room message carries its offset, so a process that sees one jump, or
that subscribes again after a break, knows what it missed. It then resumes on
behalf of all its members in the room: one recount whose ``joined`` goes to
this process's members alone (``only`` names the process: :attr:`Positions.here`),
with the position it last saw; the recount script follows it with every
message missed, to them alone, or says that they could not be recovered. Until
that ``joined`` comes back, the room's live messages are dropped here: the
replay holds them, in order, once each.
"""

from __future__ import annotations

from .protocol import Position, joined_parts
from .rooms import Announcement, Publish

PROCESS_MARK = "@"
"""Starts an envelope's ``skip`` or ``only`` that names a process: every member of it."""


def position_of(frame: str) -> Position | None:
    """The position a ``message`` or ``joined`` frame carries (None if it has none)."""
    at = frame.rfind('"epoch":"')
    if at < 0:
        return None
    start = at + len('"epoch":"')
    end = frame.find('"', start)
    if not frame.startswith(',"offset":', end + 1):
        return None
    digits = end + 1 + len(',"offset":')
    stop = digits
    while stop < len(frame) and frame[stop].isdigit():
        stop += 1
    return Position(frame[start:end], int(frame[digits:stop]))


class Positions:
    """What this process last saw of each room it is subscribed to, and which rooms it
    is resuming."""

    def __init__(self, process_id: str) -> None:
        self.here = PROCESS_MARK + process_id
        self.seen: dict[str, Position] = {}
        self.resuming: set[str] = set()
        self.gaps = 0  # gaps found since start, for /health

    def arrived(self, publish: Publish) -> tuple[Publish | None, Announcement | None]:
        """A frame from a room's channel: what to hand to the members here (with its
        ``skip`` and ``only`` made connection ids or None; None to drop it), and the
        announcement that resumes the room when the frame shows a message missed."""
        skip, only, room, frame = publish.skip, publish.only, publish.room, publish.frame
        if only is not None and only.startswith(PROCESS_MARK):
            if only != self.here:
                return None, None
            if frame.startswith('{"type":"joined"'):  # this resume's answer; the replay follows
                self.resuming.discard(room)
                self._see(room, position_of(frame))
            return Publish(room, frame), None
        if skip is not None and skip.startswith(PROCESS_MARK):
            return (None if skip == self.here else Publish(room, frame, only=only)), None
        if frame.startswith('{"type":"joined"'):
            return publish, self._check(room, position_of(frame), 0)
        if only is None and skip is None and frame.startswith('{"type":"message"'):
            if room in self.resuming:
                return None, None  # the replay brings it
            resume = self._check(room, position_of(frame), 1)
            return (None if resume is not None else publish), resume
        return publish, None

    def _check(self, room: str, position: Position | None, step: int) -> Announcement | None:
        """Note ``position``, which follows the last one seen by ``step``; the resume
        when it jumps further (not while resuming already)."""
        last = self.seen.get(room)
        if (
            position is not None
            and last is not None
            and position.epoch == last.epoch
            and position.offset > last.offset + step
            and room not in self.resuming
        ):
            self.gaps += 1
            return self.resume(room)
        self._see(room, position)
        return None

    def resume(self, room: str) -> Announcement | None:
        """The ``joined`` that resumes ``room`` for every member here from where this
        process last was; None if it never saw the room's position."""
        last = self.seen.get(room)
        if last is None:
            return None
        self.resuming.add(room)
        return Announcement(joined_parts(room, resuming=True), only=self.here, since=last)

    def forget(self, room: str) -> None:
        """No member here is in ``room`` any more."""
        self.seen.pop(room, None)
        self.resuming.discard(room)

    def _see(self, room: str, position: Position | None) -> None:
        if position is not None:
            self.seen[room] = position
