"""Brokers carry out the hub's effects: deliveries, room publishes, member counts.

:func:`carry_out` is the one interpreter of effects, and the home of the rule
that orders them; every broker drives it. :class:`MemoryBroker` serves one
process: a publish is a local fan-out and a room's count is its local count. A
pub/sub broker spans processes with the same interface and lifecycle.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Protocol

from .rooms import Close, Deliver, Effect, Hub, Publish, Recount

Remote = Publish | Recount
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


def locally(hub: Hub, effect: Remote) -> list[Effect]:
    """Carry out a publish or recount within this process alone."""
    if isinstance(effect, Publish):
        return hub.fan_out(effect.room, effect.frame, effect.skip, effect.only)
    return [
        announcement.publish(effect.room, effect.local_members)
        for announcement in effect.announcements
    ]


class MemoryBroker:
    """The single-process broker: everything happens at once, in this process."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def submit(self, effects: list[Effect]) -> None:
        drive(self.hub, effects, lambda effect: locally(self.hub, effect))

    def not_ready(self) -> str | None:
        return None

    def report(self) -> dict[str, object]:
        return {}

    def start(self) -> None:
        pass  # nothing runs in the background

    def stop(self) -> None:
        pass  # everything submitted was carried out at once
