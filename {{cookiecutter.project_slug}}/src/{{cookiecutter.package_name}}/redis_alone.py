"""What a Redis broker does while Redis cannot serve it: serve this process's members alone.

A publish reaches this process's members; a room message is refused
(``unavailable``): it could get no place in the room's history. A join
completes with this process's count and no position. The presences it could
not announce are held, and go through Redis first once it serves again, with
the room's real total: so the other processes get a room's changes in the order
they happened, and the members served alone their real count.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from . import protocol
from .broker import Remote, fan_out
from .rooms import Announcement, Effect, Hub, Post, Publish, Recount

log = logging.getLogger(__name__)

Joined = Callable[[str], tuple[Announcement, ...]]
"""The announcements that tell a room's every member its count again."""

HELD_PRESENCES = 256
"""Presences held per room while Redis is away; older ones are dropped (the counts
are not lost: what is sent once it is back carries the room's total)."""
HELD_ROOMS = 10_000
"""Rooms whose presences are held while Redis is away; more are not held, and the
other processes' members of those rooms keep an old count until their next change."""


class ServedAlone:
    """The publishes and recounts a process carries out without Redis, and the presences
    it holds until Redis serves again."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._held: dict[str, deque[Announcement]] = {}  # room: its presences, oldest first
        # Room: the joins that resume from a position, answered once the history can be read.
        self._resuming: dict[str, list[Announcement]] = {}

    def carry(self, effect: Remote) -> list[Effect]:
        """Carry out ``effect`` in this process alone, while Redis cannot.

        Of a recount, the ``joined`` for a joining member goes out now, so that
        the join completes (with no position); one that resumes from a position
        waits for Redis, which holds what it missed. The presences are held: the
        other processes cannot get them yet, and a count of this process alone
        would be wrong for everyone. A ``joined`` for a whole room waits for the
        next one.
        """
        if isinstance(effect, Publish):
            return fan_out(self.hub, effect)
        if isinstance(effect, Post):
            return [effect.refusal()]
        presences = [a for a in effect.announcements if a.is_presence]
        if presences and (effect.room in self._held or len(self._held) < HELD_ROOMS):
            self._held.setdefault(effect.room, deque(maxlen=HELD_PRESENCES)).extend(presences)
        elif presences and len(self._held) == HELD_ROOMS:
            log.warning("presences of more than %d rooms are not held", HELD_ROOMS)
            self._held[effect.room] = deque(maxlen=0)  # counted, so that this warns once
        joins = [a for a in effect.announcements if not a.is_presence and a.only is not None]
        resuming = [a for a in joins if a.since is not None]
        if resuming:
            self._resuming.setdefault(effect.room, []).extend(resuming)
        values = protocol.joined_values(effect.local_members, None)
        return [a.publish(effect.room, values) for a in joins if a.since is None]

    def resuming(self) -> list[tuple[str, str]]:
        """The members whose resuming join waits for Redis, and their rooms."""
        return [(a.only, room) for room, joins in self._resuming.items() for a in joins if a.only]

    def take(self, joined: Joined | None = None) -> list[Remote]:
        """Every room with held presences, as the recount that sends them and a
        ``joined`` with the room's total to its every member (``joined(room)``: the
        announcements that say so, by default the hub's); nothing is held after."""
        rooms = dict.fromkeys([*self._held, *self._resuming])
        held: list[Remote] = [self._recount(room, joined) for room in rooms]
        self._held.clear()
        self._resuming.clear()
        return held

    def oldest(self) -> Recount | None:
        """The first room's held presences, as :meth:`take` would send them."""
        return next((self._recount(room) for room in [*self._held, *self._resuming]), None)

    def _recount(self, room: str, joined: Joined | None = None) -> Recount:
        """The room's held presences, its resuming joins (each followed by what its member
        missed, to it alone, before anything else reaches it), then its count to all."""
        presences = self._held.get(room, ())
        resuming = self._resuming.get(room, ())
        again = (self.hub.joined(room),) if joined is None else joined(room)
        return Recount(room, self.hub.members(room), (*presences, *resuming, *again))
