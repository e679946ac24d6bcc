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
import time
from collections import Counter
from collections.abc import Generator, Sequence
from typing import Any

from redis import exceptions
from redis.backoff import EqualJitterBackoff

from .broker import Remote, drive, fan_out
from .history import Retention
from .redis_alone import ServedAlone
from .redis_io import Execute, Flag, Io, Jobs, Subscribe, Unsubscribe
from .redis_layout import (
    Command,
    Names,
    answers,
    beat_command,
    command,
    decode_envelope,
    grouped,
    leave_commands,
    redacted,
)
from .redis_positions import Positions
from .rooms import Announcement, Effect, Hub, Recount

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


class Subscriber:
    """The bookkeeping of a Redis broker: the brokers add the clients (:attr:`redis`, for
    commands), the tasks or greenlets, and the waiting.

    :meth:`work` carries out a batch of effects and yields the I/O it needs
    (:data:`Io`). Until subscribed, a broker serves this process's members on
    its own and :meth:`not_ready` says why.
    """

    redis: Any

    def __init__(
        self,
        hub: Hub,
        url: str,
        prefix: str,
        retention: Retention,
        jobs: Jobs,
        confirmed: Flag,
        broken: Flag,
    ) -> None:
        """``retention``: what rooms' histories keep; ``jobs``: the broker's queue of
        effects to carry out; ``confirmed``: set once every subscription asked for is
        confirmed; ``broken``: set when the listener must subscribe anew."""
        self.jobs, self.confirmed, self.broken = jobs, confirmed, broken
        self.retention = retention
        # The subscriber connections: node name ("" for one Redis) -> its client and
        # pub/sub, and when it last sent anything.
        self.subscribers: dict[str, tuple[Any, Any]] = {}
        self.heard: dict[str, float] = {}
        self._handed = 0  # frames handed out since the listener last let the others run
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
        self.alone = ServedAlone(hub)  # what it does while Redis cannot serve
        self.positions = Positions(self.names.process_id)  # what it last saw of each room

    def not_ready(self) -> str | None:
        return None if self.subscribed else self.problem

    def report(self) -> dict[str, object]:
        """What ``/health`` shows of the broker: its pub/sub, channels, frames received,
        gaps closed."""
        return {
            "pubsub": "sharded" if self.sharded else "plain",
            "channels": len(self.channels),
            "frames_received": self.frames_received,
            "gaps": self.positions.gaps,
        }

    def work(self, effects: list[Effect]) -> Generator[Io, Any]:
        """Carry out ``effects`` (:func:`broker.carry_out`), through Redis where it serves.

        Every publish and recount they lead to goes to Redis in one round trip,
        after the held presences (``redis_alone.py``); they keep their order.
        """
        if not self.subscribed:
            drive(self.hub, effects, self.alone.carry)
            return
        remote: list[Remote] = self.alone.take()

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
        groups = grouped(remote)
        commands = (command(self.names, g, self.sharded, self.retention) for g in groups)
        replies = yield Execute(tuple(commands))
        if isinstance(replies, Exception):
            self._fail(remote, replies)
        else:
            done = list(zip(groups, replies, strict=True))
            acks = [a for g, reply in done for a in answers(g, reply)]
            drive(self.hub, acks, self.alone.carry)
            failed = [effect for g, reply in done if isinstance(reply, Exception) for effect in g]
            if failed:
                self._fail(failed, next(r for r in replies if isinstance(r, Exception)))
        if channels := self._to_unsubscribe(remote):
            yield Unsubscribe(channels)

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
        channels, rooms = [], []
        for room in dict.fromkeys(effect.room for effect in remote):
            channel = self.names.channel(room)
            if channel in self.channels and not self.hub.members(room):
                channels.append(channel)
                rooms.append(room)
        self._forget(channels)
        self._leaving.update(channels)
        for room in rooms:
            self.positions.forget(room)
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
            self.submit(self._fan_out(message["data"]))
            return True
        if kind in ("ssubscribe", "subscribe"):
            self.confirming.discard(channel)
            if not self.confirming:
                self.confirmed.set()
        elif kind in ("sunsubscribe", "unsubscribe"):
            self._on_unsubscribed(channel)
        return False

    def submit(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` (now or soon, in order) without blocking the caller."""
        if effects:
            self.jobs.put_nowait(effects)

    def batch(self, first: list[Effect]) -> tuple[int, list[Effect]]:
        """``first`` and every submission queued behind it: how many, and their effects."""
        batches = [first]
        while not self.jobs.empty():
            batches.append(self.jobs.get_nowait())
        return len(batches), [effect for batch in batches for effect in batch]

    def add_subscriber(self, node: str, client: object, pubsub: object) -> None:
        """A new subscriber connection to ``node`` (its client and pub/sub)."""
        self.subscribers[node] = (client, pubsub)
        self.heard[node] = time.monotonic()

    def take_subscribers(self) -> list[tuple[Any, Any]]:
        """Forget every subscriber connection; the broker closes those returned."""
        taken = list(self.subscribers.values())
        self.subscribers.clear()
        self.heard.clear()
        return taken

    def subscriber_of(self, channel: str) -> Any:
        """The pub/sub of the node that carries ``channel``."""
        client_and_pubsub = self.subscribers.get(self.node_of(channel))
        if client_and_pubsub is None:  # the cluster moved the slot to a node it lacked
            raise exceptions.ConnectionError(f"no subscriber connection for {channel}")
        return client_and_pubsub[1]

    def node_of(self, channel: str) -> str:
        """The name of the node that carries ``channel``: "" for one Redis."""
        owner = getattr(self.redis, "get_node_from_key", None)  # a cluster client's
        node = None if owner is None else owner(channel)
        return "" if node is None else str(node.name)

    def on_read(self, node: str, message: dict[str, Any] | None) -> bool:
        """A subscriber connection read ``message`` (None: nothing for the broker). True
        when the listener should let the connections send before it reads on."""
        self.heard[node] = time.monotonic()
        if message is None or not self.on_pubsub(message):
            return False
        self._handed = (self._handed + 1) % LISTENER_BATCH
        return self._handed == 0

    def leaving(self) -> list[Command]:
        """The commands that take this process's shares out of every room at once."""
        return [c for room in self.hub.local_rooms() for c in leave_commands(self.names, room)]

    def heartbeat(self) -> list[Command] | None:
        """Every ``HEARTBEAT_INTERVAL``: None if not subscribed (after making the
        subscriptions anew if a subscriber went silent); else the commands that keep
        this process's shares of its rooms alive. The broker pings each subscriber too."""
        cutoff = time.monotonic() - SUBSCRIBER_TIMEOUT
        silent = [node or "Redis" for node, at in self.heard.items() if at < cutoff]
        if silent and self.subscribed:
            self.subscribed = False
            self.problem = f"Redis at {silent[0]} silent for {SUBSCRIBER_TIMEOUT:g} s"
            log.warning("%s: subscribing anew", self.problem)
            self.broken.set()
        if not self.subscribed:
            return None
        return [beat_command(self.names, room) for room in self.hub.local_rooms()]

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
        self.positions.resuming.clear()  # resumed again once subscribed
        self.broken.set()
        for effect in remote:
            drive(self.hub, self.alone.carry(effect), self.alone.carry)

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
        for member, room in self.alone.resuming():  # answered by the resumes held
            self.hub.expect_joined(member, room)
        self.positions.resuming.clear()
        held = self.alone.take(self._joined_again)
        rooms_held = {effect.room for effect in held}
        return [
            *held,
            *(
                Recount(room, members, self._joined_again(room))
                for room, members in self.hub.local_rooms().items()
                if room not in rooms_held
            ),
        ]

    @property
    def probe(self) -> Command:
        """The command whose reply says whether Redis offers sharded pub/sub."""
        return ("SPUBLISH", self.names.control, "")

    @staticmethod
    def offers_sharded(replies: list[object]) -> bool:
        """Whether the reply to :attr:`probe` says so (not Redis < 7, nor some ACLs)."""
        return not isinstance(replies[0], exceptions.ResponseError)

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
        """A frame from a room's channel, handed to this process's members; a room
        that missed a message here is resumed (``redis_positions.py``)."""
        arrived = decode_envelope(envelope)
        publish, resume = self.positions.arrived(arrived)
        effects = [] if publish is None else fan_out(self.hub, publish)
        if resume is not None:
            effects.append(Recount(arrived.room, self.hub.members(arrived.room), (resume,)))
        return effects

    def _joined_again(self, room: str) -> tuple[Announcement, ...]:
        """A ``joined`` with the room's total to its every member: here, the one that
        resumes the room from the position this process last saw, if it saw one."""
        resume = self.positions.resume(room)
        if resume is None:
            return (self.hub.joined(room),)
        return (Announcement(self.hub.joined(room).parts, skip=self.positions.here), resume)

    def on_effects_failed(self, effects: list[Effect]) -> None:
        """Carrying out ``effects`` raised: log it with the traceback, and go on."""
        log.exception("effects failed: %r", effects)
