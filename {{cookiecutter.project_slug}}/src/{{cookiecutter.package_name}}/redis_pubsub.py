"""The Redis broker without its I/O: what both Redis brokers do, in round trips of many commands.

A process subscribes to a room's channel while it has members there (names and
scripts: ``redis_layout.py``). Effects are carried out in batches: what a batch
must publish or recount goes to Redis in one pipelined round trip, after the
channels of its rooms with members here are subscribed (so that a joining
member's own ``joined`` comes back to it), and the channels of rooms left by
their last member here are let go after it.

Pub/sub delivers to whoever is subscribed at that moment: a frame published
while a process is cut off from Redis never reaches that process's members.
A process that is not subscribed (starting, or Redis away) serves its own
members alone; the joins and departures it could not announce are announced
through Redis once it is subscribed again, with the room's real total.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis import exceptions
from redis.backoff import EqualJitterBackoff

from .broker import Remote, drive, locally
from .redis_layout import (
    Names,
    decode_envelope,
    publish_command,
    recount_command,
    redacted,
)
from .rooms import Announcement, Effect, Hub, Publish, Recount

log = logging.getLogger(__name__)

RECONNECT_BACKOFF = EqualJitterBackoff(cap=5.0, base=0.1)
"""Waits between attempts to resubscribe: 0.1 s doubling to 5 s, with jitter."""
SUBSCRIBE_TIMEOUT = 5.0
"""Seconds Redis has to confirm a subscription."""
DRAIN_TIMEOUT = 2.0
"""Seconds a stopping broker has to carry out what it was given: the departures
of the last connections, for the other processes."""
SUBSCRIBER_TIMEOUT = 15.0
"""Seconds a subscriber connection may stay silent before it counts as lost. Readers
block without a timeout of their own (none to set up per frame); the heartbeat pings
each subscriber connection, which answers when it is alive."""
LISTENER_BATCH = 32
"""Frames a listener hands out before it lets the connections send: without a
pause a burst larger than an outbox would close readers that keep up."""
HELD_PRESENCES = 256
"""Presences held per room while Redis is away; older ones are dropped (the counts
are not lost: what is sent once it is back carries the room's total)."""
HELD_ROOMS = 10_000
"""Rooms whose presences are held while Redis is away; more are not held, and the
other processes' members of those rooms keep an old count until their next change."""

Command = tuple[str | int, ...]
"""One Redis command, as its words."""


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe to ``channels``, and wait until Redis has confirmed them all.

    The broker answers None, or the error it failed with."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Let ``channels`` go; nothing waits for it."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Execute:
    """Send ``commands`` in one round trip (a pipeline, no transaction).

    The broker answers the list of each command's reply or error, or the one
    error that the whole round trip failed with."""

    commands: tuple[Command, ...]


Io = Subscribe | Unsubscribe | Execute
"""What a batch asks of the broker's I/O."""


class Subscriber:
    """The bookkeeping of a Redis broker: the brokers add the clients, the tasks or
    greenlets, and the waiting.

    :meth:`work` carries out a batch of effects and yields the I/O it needs
    (:data:`Io`). Until subscribed, a broker serves this process's members on
    its own and :meth:`not_ready` says why.
    """

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        self.hub = hub
        self.names = Names(prefix)
        self.where = redacted(url)
        self.sharded = True  # SSUBSCRIBE/SPUBLISH; found out when connecting
        self.subscribed = False
        self.problem = f"connecting to Redis at {self.where}"
        self.frames_received = 0
        # Room channels subscribed, or asked for.
        self.channels: set[str] = set()
        # Channels asked for and not confirmed yet; channels let go whose
        # confirmation has not come back.
        self.confirming: set[str] = set()
        self._leaving: Counter[str] = Counter()
        # Per room, the presences that could not go through Redis yet.
        self._held: dict[str, deque[Announcement]] = {}

    def not_ready(self) -> str | None:
        return None if self.subscribed else self.problem

    def report(self) -> dict[str, object]:
        """What ``/health`` shows of the broker: its pub/sub, channels, frames received."""
        return {
            "pubsub": "sharded" if self.sharded else "plain",
            "channels": len(self.channels),
            "frames_received": self.frames_received,
        }

    def work(self, effects: list[Effect]) -> Generator[Io, Any]:
        """Carry out ``effects`` (:func:`broker.carry_out`), through Redis where it serves.

        Every publish and recount they lead to goes to Redis in one round trip,
        after the held presences (:meth:`carry_locally`); they keep their order.
        """
        if not self.subscribed:
            drive(self.hub, effects, self.carry_locally)
            return
        remote: list[Remote] = self._take_held()

        def through_redis(effect: Remote) -> list[Effect]:
            remote.append(effect)
            return []  # what it causes comes back through the subscription

        drive(self.hub, effects, through_redis)
        if not remote:
            return
        if channels := self._to_subscribe(remote):
            failure = yield Subscribe(channels)
            if failure is not None:
                self._forget(channels)
                self._fail(remote, failure)
                return
        groups = self._grouped(remote)
        replies = yield Execute(tuple(self.command(group) for group in groups))
        if isinstance(replies, Exception):
            self._fail(remote, replies)
        else:
            failed = [
                effect
                for group, reply in zip(groups, replies, strict=True)
                if isinstance(reply, Exception)
                for effect in group
            ]
            if failed:
                self._fail(failed, next(r for r in replies if isinstance(r, Exception)))
        if channels := self._to_unsubscribe(remote):
            yield Unsubscribe(channels)

    def command(self, group: Sequence[Remote]) -> Command:
        """The Redis command that carries out a recount, or publishes in one room."""
        if isinstance(group[0], Recount):
            return recount_command(self.names, group[0], self.sharded)
        publishes = [effect for effect in group if isinstance(effect, Publish)]
        return publish_command(self.names, publishes, self.sharded)

    @staticmethod
    def _grouped(remote: Sequence[Remote]) -> list[list[Remote]]:
        """``remote`` as one command's worth each: a recount alone, or a room's publishes
        up to its next recount.

        A room's effects keep their order; those of different rooms go on channels
        of their own, which keep no order between them anyway.
        """
        groups: list[list[Remote]] = []
        publishing: dict[str, list[Remote]] = {}  # room: the group its publishes join
        for effect in remote:
            if isinstance(effect, Recount):
                publishing.pop(effect.room, None)
                groups.append([effect])
            elif (group := publishing.get(effect.room)) is not None:
                group.append(effect)
            else:
                groups.append(publishing.setdefault(effect.room, [effect]))
        return groups

    def _to_subscribe(self, remote: Sequence[Remote]) -> tuple[str, ...]:
        """The channels of ``remote``'s rooms that have members here and no subscription."""
        channels = []
        for room in dict.fromkeys(effect.room for effect in remote):
            channel = self.names.channel(room)
            if channel not in self.channels and self.hub.members(room):
                channels.append(channel)
        self._ask(channels)
        return tuple(channels)

    def _to_unsubscribe(self, remote: Sequence[Remote]) -> tuple[str, ...]:
        """The subscribed channels of ``remote``'s rooms that have no member here any more."""
        channels = []
        for room in dict.fromkeys(effect.room for effect in remote):
            channel = self.names.channel(room)
            if channel in self.channels and not self.hub.members(room):
                channels.append(channel)
        self._forget(channels)
        self._leaving.update(channels)
        return tuple(channels)

    def _ask(self, channels: Sequence[str]) -> None:
        self.channels.update(channels)
        self.confirming.update(channels)

    def _forget(self, channels: Sequence[str]) -> None:
        self.channels.difference_update(channels)
        self.confirming.difference_update(channels)

    def wanted_channels(self) -> tuple[str, ...]:
        """Start over: every room with members here is to be subscribed (a new
        subscriber connection, after the last one broke)."""
        self.channels.clear()
        self.confirming.clear()
        self._leaving.clear()
        channels = tuple(self.names.channel(room) for room in self.hub.local_rooms())
        self._ask(channels)
        return channels

    def on_pubsub(self, message: dict[str, Any]) -> bool:
        """Act on a message from a subscriber connection; True if it was a room frame.

        Raises when Redis ended a subscription it was not asked to end.
        """
        kind, channel = message["type"], message["channel"]
        if kind in ("smessage", "message"):
            if channel == self.names.control:
                return False
            self.frames_received += 1
            self.on_frames(self._fan_out(message["data"]))
            return True
        if kind in ("ssubscribe", "subscribe"):
            self.confirming.discard(channel)
            if not self.confirming:
                self.on_confirmed()
        elif kind in ("sunsubscribe", "unsubscribe"):
            self._on_unsubscribed(channel)
        return False

    def on_frames(self, effects: list[Effect]) -> None:
        """What handing out a frame caused (a slow reader dropped, say): the broker
        carries it out after what it was given before."""

    def on_confirmed(self) -> None:
        """Every subscription asked for is confirmed: the broker wakes whoever waits."""

    def _on_unsubscribed(self, channel: str) -> None:
        """Redis says ``channel`` is no longer subscribed; raise if it was not asked to
        (its slot moved to another node of a cluster): the broker subscribes anew."""
        if self._leaving[channel] > 0:
            self._leaving[channel] -= 1
            if not self._leaving[channel]:
                del self._leaving[channel]
            return
        raise exceptions.ConnectionError(f"Redis ended the subscription to {channel}")

    def _fail(self, remote: Sequence[Remote], error: Exception) -> None:
        """``remote`` did not go through Redis: carry it out in this process alone, and
        have the subscriptions made anew, which counts this process's members again
        and sends what was held."""
        log.warning("Redis failed (%s): serving this process's members only", error)
        self.subscribed = False
        self.problem = f"Redis at {self.where} failed: {error}"
        self.on_broken()
        for effect in remote:
            drive(self.hub, self.carry_locally(effect), self.carry_locally)

    def carry_locally(self, effect: Publish | Recount) -> list[Effect]:
        """Carry out ``effect`` in this process alone, while Redis cannot.

        A publish reaches this process's members. Of a recount, the ``joined``
        for a joining member goes out now, so that the join completes; the
        presences are held (see :meth:`_take_held`): the other processes cannot
        get them yet, and a count of this process alone would be wrong for
        everyone. A ``joined`` for a whole room waits for the next one.
        """
        if isinstance(effect, Publish):
            return locally(self.hub, effect)
        presences = [a for a in effect.announcements if a.skip is not None]
        if presences and (effect.room in self._held or len(self._held) < HELD_ROOMS):
            self._held.setdefault(effect.room, deque(maxlen=HELD_PRESENCES)).extend(presences)
        elif presences and len(self._held) == HELD_ROOMS:
            log.warning("presences of more than %d rooms are not held", HELD_ROOMS)
            self._held[effect.room] = deque(maxlen=0)  # counted, so that this warns once
        joined = tuple(a for a in effect.announcements if a.only is not None)
        return locally(self.hub, replace(effect, announcements=joined))

    def _take_held(self) -> list[Remote]:
        """Every room with held presences, as the recount that sends them and a
        ``joined`` with the room's total to its every member.

        They go through Redis before any other effect once it serves again: so
        the others get a room's changes in the order they happened, and the
        members served alone their real count.
        """
        held: list[Remote] = [
            Recount(room, self.hub.members(room), (*presences, self.hub.joined(room)))
            for room, presences in self._held.items()
        ]
        self._held.clear()
        return held

    def held(self) -> Recount | None:
        """The oldest room's held presences, as :meth:`_take_held` would send them."""
        for room, presences in self._held.items():
            return Recount(room, self.hub.members(room), (*presences, self.hub.joined(room)))
        return None

    def on_subscribed(self) -> list[Effect]:
        """Now subscribed again: a recount of every room with members here or
        presences held, with a ``joined`` and the real total for its every member,
        in every process.

        The process that comes back last so corrects what the others announced
        while it was missing, and joins whose own ``joined`` was lost with the
        connection get theirs. A room with presences held gets its ``joined`` with
        them, which go out before. All through Redis, so that counts reach
        everyone in order; Redis may have restarted empty, and this counts this
        process's members there again.
        """
        self.subscribed = True
        log.info("subscribed to Redis at %s (%s pub/sub)", self.where, self.report()["pubsub"])
        self.hub.forget_pending()
        held = self._take_held()
        rooms_held = {effect.room for effect in held}
        return [
            *held,
            *(
                Recount(room, members, (self.hub.joined(room),))
                for room, members in self.hub.local_rooms().items()
                if room not in rooms_held
            ),
        ]

    def check_subscribed(self, confirmation: dict[str, Any] | None) -> None:
        """Raise unless ``confirmation`` is Redis's answer to the SUBSCRIBE of the control
        channel just sent on a new subscriber connection."""
        if confirmation is None or confirmation.get("type") != "subscribe":
            raise exceptions.ConnectionError(
                f"Redis did not confirm the subscription in {SUBSCRIBE_TIMEOUT:g} s"
            )

    def on_lost(self, error: Exception, failures: int) -> float:
        """The subscription failed for the ``failures``-th time in a row: seconds to wait."""
        if self.subscribed or failures == 0:
            log.error("Redis at %s unreachable (%s): retrying", self.where, error)
        self.subscribed = False
        self.problem = f"Redis at {self.where} unreachable: {error}"
        return RECONNECT_BACKOFF.compute(failures)

    def _fan_out(self, envelope: str) -> list[Effect]:
        """A frame from a room's channel, handed to this process's members."""
        publish = decode_envelope(envelope)
        return self.hub.fan_out(publish.room, publish.frame, publish.skip, publish.only)

    def on_effects_failed(self, effects: list[Effect]) -> None:
        """Carrying out ``effects`` raised: log it with the traceback, and go on."""
        log.exception("effects failed: %r", effects)

    def on_broken(self) -> None:
        """A round trip failed: the broker's listener subscribes anew."""

    def check_heard(self, heard: dict[str, float], now: float) -> None:
        """Have the listener subscribe anew if a subscriber connection (``heard``: node
        name -> when it last sent anything) has been silent too long."""
        silent = [node or "Redis" for node, at in heard.items() if now - at > SUBSCRIBER_TIMEOUT]
        if silent and self.subscribed:
            self.subscribed = False
            self.problem = f"Redis at {silent[0]} silent for {SUBSCRIBER_TIMEOUT:g} s"
            log.warning("%s: subscribing anew", self.problem)
            self.on_broken()
