"""Brokers carry out the hub's effects: deliveries, room publishes, member counts.

:class:`MemoryBroker` serves one process: a publish is a local fan-out and a
room's count is its local count. A pub/sub broker spans processes with the
same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .rooms import Deliver, Effect, Hub, Publish, Recount


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
    hub: Hub,
    effects: list[Effect],
    publish: Callable[[Publish], list[Effect]],
    recount: Callable[[Recount], int],
) -> None:
    """Carry out ``effects`` depth first: what an effect causes runs before the next one."""
    pending = effects[::-1]
    while pending:
        effect = pending.pop()
        if isinstance(effect, Deliver):
            caused = hub.deliver(effect.connection_id, effect.frame)
        elif isinstance(effect, Publish):
            caused = publish(effect)
        else:
            caused = effect.then(recount(effect))
        pending.extend(reversed(caused))


class MemoryBroker:
    """The single-process broker: everything happens at once, in this process."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def submit(self, effects: list[Effect]) -> None:
        run(self.hub, effects, self._publish, self._recount)

    def not_ready(self) -> str | None:
        return None

    def _publish(self, publish: Publish) -> list[Effect]:
        return self.hub.fan_out(publish.room, publish.frame, publish.skip)

    def _recount(self, recount: Recount) -> int:
        return recount.local_members
