"""Brokers carry out the hub's effects: deliveries, room messages, member counts.

:func:`carry_out` is the one interpreter of effects, and the home of the rule
that orders them; every broker drives it. :class:`MemoryBroker` serves one
process: a publish is a local fan-out and a room's count is its local count. A
pub/sub broker spans processes with the same interface and lifecycle.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Protocol

from . import protocol
from .history import Histories
from .rooms import Close, Deliver, Effect, Hub, Post, Publish, Recount

Remote = Publish | Post | Recount
"""The effects that may leave the process: a broker decides where they go."""


class Broker(Protocol):
    """Carries out effects in the order they are submitted, from :meth:`start` to :meth:`stop`."""

    def submit(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` (now or soon, in order) without blocking the caller."""
        ...

    def not_ready(self) -> str | None:
        """Why the broker cannot serve right now, or None when it can."""
        ...

    def report(self) -> dict[str, object]:
        """What ``/health`` shows of the broker beyond its readiness (may be empty)."""
        ...

    def start(self) -> None:
        """Start serving; an asyncio broker is started inside the running loop."""
        ...

    def stop(self) -> Awaitable[None] | None:
        """Carry out what was submitted (for a bounded time), then stop; an asyncio
        broker returns an awaitable that the caller awaits."""
        ...


def carry_out(hub: Hub, effects: list[Effect]) -> Generator[Remote, list[Effect]]:
    """Carry out ``effects``, then what they cause, in the order they were made.

    Deliveries and closes are carried out here; each publish or recount is
    yielded to the broker driving this, which sends back what it caused.

    The ordering rule: what an effect causes waits behind the effects made
    before it. A member dropped while a join is announced has its departure
    announced after the join, so everyone's last count is the newest one.
    """
    pending = deque(effects)
    while pending:
        effect = pending.popleft()
        if isinstance(effect, Deliver):
            pending.extend(hub.deliver(effect.connection_id, effect.frame))
        elif isinstance(effect, Close):
            pending.extend(hub.close(effect.connection_id, effect.code, effect.reason))
        else:
            pending.extend((yield effect))


def drive(hub: Hub, effects: list[Effect], remote: Callable[[Remote], list[Effect]]) -> None:
    """Drive :func:`carry_out` to the end, with ``remote`` carrying out each publish or recount."""
    steps = carry_out(hub, effects)
    with contextlib.suppress(StopIteration):
        effect = next(steps)
        while True:
            effect = steps.send(remote(effect))


def fan_out(hub: Hub, publish: Publish) -> list[Effect]:
    """Hand a publish to this process's members."""
    return hub.fan_out(publish.room, publish.frame, publish.skip, publish.only)


class MemoryBroker:
    """The single-process broker: everything happens at once, in this process, and
    the rooms' histories are kept in its memory (``history.py``)."""

    def __init__(self, hub: Hub, histories: Histories) -> None:
        self.hub = hub
        self.histories = histories

    def submit(self, effects: list[Effect]) -> None:
        drive(self.hub, effects, self.carry)

    def carry(self, effect: Remote) -> list[Effect]:
        """Carry out a publish, post or recount: this process is every process."""
        if isinstance(effect, Publish):
            return fan_out(self.hub, effect)
        if isinstance(effect, Post):
            return self._post(effect)
        effects: list[Effect] = []
        position = self.histories.position(effect.room)
        for announcement in effect.announcements:
            recovered: bool = False
            replay: Sequence[str] = ()
            if announcement.since is not None:
                recovered, replay = self.histories.since(effect.room, announcement.since)
            values = protocol.joined_values(effect.local_members, position, recovered, len(replay))
            effects.append(announcement.publish(effect.room, values))
            effects += [Publish(effect.room, frame, only=announcement.only) for frame in replay]
        return effects

    def _post(self, post: Post) -> list[Effect]:
        def frame(position: protocol.Position) -> str:
            return protocol.fill(post.parts, protocol.position_values(position))

        position, made = self.histories.post(post.room, frame, post.id)
        effects: list[Effect] = [] if made is None else self.hub.fan_out(post.room, made)
        return [*effects, *post.acknowledgement(position)]

    def not_ready(self) -> str | None:
        return None

    def report(self) -> dict[str, object]:
        return {}

    def start(self) -> None:
        pass  # nothing runs in the background

    def stop(self) -> None:
        pass  # everything submitted was carried out at once
