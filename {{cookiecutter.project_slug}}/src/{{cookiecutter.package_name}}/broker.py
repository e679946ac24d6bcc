"""Brokers carry out the hub's effects: deliveries, room publishes, member counts.

:class:`MemoryBroker` serves one process: a publish is a local fan-out and a
room's count is its local count. A pub/sub broker spans processes with the
same interface.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from .rooms import Close, Deliver, Effect, Hub, Publish, Recount


class Broker(Protocol):
    """Carries out effects in the order they are submitted."""

    def submit(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` (now or soon, in order) without blocking the caller."""
        ...

    def not_ready(self) -> str | None:
        """Why the broker cannot serve right now, or None when it can."""
        ...


def health(hub: Hub, broker: Broker) -> dict[str, object]:
    """The ``/health`` document: status, and why not when the broker is not ready."""
    reason = broker.not_ready()
    status: dict[str, object] = {"status": "ok" if reason is None else "unavailable"}
    if reason is not None:
        status["reason"] = reason
    status.update(connections=hub.connections, rooms=hub.rooms)
    return status


def run(
    hub: Hub, effects: list[Effect], remote: Callable[[Publish | Recount], list[Effect]]
) -> None:
    """Carry out ``effects``, then what they cause, in the order they were made.

    What an effect causes waits behind the effects made before it: a member
    dropped while a join is announced has its departure announced after the
    join, so everyone's last count is the newest one. Deliveries and closes are
    local; ``remote`` carries out publishes and recounts.
    """
    pending = deque(effects)
    while pending:
        effect = pending.popleft()
        if isinstance(effect, Deliver):
            pending.extend(hub.deliver(effect.connection_id, effect.frame))
        elif isinstance(effect, Close):
            pending.extend(hub.close(effect.connection_id, effect.code, effect.reason))
        else:
            pending.extend(remote(effect))


def locally(hub: Hub, effect: Publish | Recount) -> list[Effect]:
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
        run(self.hub, effects, lambda effect: locally(self.hub, effect))

    def not_ready(self) -> str | None:
        return None
