"""What every process's Redis broker agrees on: channel, keys, envelope, counting.

Room frames travel on one pub/sub channel that every process subscribes to;
each process hands a frame to its own members of the frame's room. Member
counts live in one hash per room (field: process id, value: that process's
members), and a process counts only while its heartbeat key is alive, so the
members of a process that died stop counting once its key expires.

Pub/sub delivers to whoever is subscribed at that moment: a frame published
while a process is cut off from Redis never reaches that process's members.
A process that is not subscribed (starting, or Redis away) serves its own
members alone; the joins and departures it could not announce are announced
through Redis once it is subscribed again, with the room's real total.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import urllib.parse
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

from redis import exceptions
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.retry import Retry

from .broker import Remote, carry_out, locally
from .rooms import Announcement, Effect, Hub, Publish, Recount

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0
"""Seconds between two refreshes of a process's heartbeat key."""
HEARTBEAT_TTL = 15
"""Seconds a process keeps counting after its last heartbeat."""
RECONNECT_BACKOFF = EqualJitterBackoff(cap=5.0, base=0.1)
"""Waits between attempts to resubscribe: 0.1 s doubling to 5 s, with jitter."""
SUBSCRIBE_TIMEOUT = 5.0
"""Seconds Redis has to confirm a subscription."""
DRAIN_TIMEOUT = 2.0
"""Seconds a stopping broker has to carry out what it was given: the departures
of the last connections, for the other processes."""
HELD_PRESENCES = 256
"""Presences held per room while Redis is away; older ones are dropped (the counts
are not lost: what is sent once it is back carries the room's total)."""
HELD_ROOMS = 10_000
"""Rooms whose presences are held while Redis is away; more are not held, and the
other processes' members of those rooms keep an old count until their next change."""

# KEYS[1]: the room's hash. ARGV: process id, its member count, heartbeat key
# prefix, channel, envelope head (room and separator), then four values per
# announcement: skip, only, frame head, frame tail.
# In one atomic step: sets this process's count, drops the counts of processes
# whose heartbeat expired, publishes each announcement with the room's total
# filled in, and returns the total. Atomic, so announcements reach every
# subscriber in the order of the counts they carry.
RECOUNT_SCRIPT = """
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local total = 0
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  if redis.call('EXISTS', ARGV[3] .. counts[i]) == 1 then
    total = total + tonumber(counts[i + 1])
  else
    redis.call('HDEL', KEYS[1], counts[i])
  end
end
local separator = string.char(0)
for i = 6, #ARGV, 4 do
  local envelope = ARGV[5] .. ARGV[i] .. separator .. ARGV[i + 1] .. separator
  redis.call('PUBLISH', ARGV[4], envelope .. ARGV[i + 2] .. total .. ARGV[i + 3])
end
return total
"""

SEPARATOR = "\x00"  # appears in neither room names nor connection ids


@dataclass(frozen=True)
class Names:
    """The Redis names one deployment uses, under ``prefix``."""

    prefix: str
    process_id: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def channel(self) -> str:
        return f"{self.prefix}:frames"

    @property
    def heartbeat_prefix(self) -> str:
        return f"{self.prefix}:process:"

    @property
    def heartbeat(self) -> str:
        return self.heartbeat_prefix + self.process_id

    def room(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"


def encode_envelope(publish: Publish) -> str:
    """One published message: room, who to skip, who only, and the frame as it is sent."""
    return SEPARATOR.join((publish.room, publish.skip or "", publish.only or "", publish.frame))


def decode_envelope(data: str) -> Publish:
    """The :class:`Publish` that :func:`encode_envelope` (or the recount script) encoded."""
    room, skip, only, frame = data.split(SEPARATOR, 3)
    return Publish(room, frame, skip or None, only or None)


def recount_arguments(names: Names, recount: Recount) -> list[str | int]:
    """``ARGV`` for :data:`RECOUNT_SCRIPT`."""
    arguments: list[str | int] = [
        names.process_id,
        recount.local_members,
        names.heartbeat_prefix,
        names.channel,
        recount.room + SEPARATOR,
    ]
    for announcement in recount.announcements:
        arguments += [
            announcement.skip or "",
            announcement.only or "",
            announcement.head,
            announcement.tail,
        ]
    return arguments


def redacted(url: str) -> str:
    """``url`` without its password, for logs and ``/health``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def client_options() -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` (sync or asyncio alike)."""
    return {
        "decode_responses": True,
        "socket_connect_timeout": 2,
        "health_check_interval": 10,
        # One retry on a dropped connection: the first command after a Redis
        # restart fails on the pooled connection that restart killed.
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [exceptions.ConnectionError, exceptions.TimeoutError],
    }


class Subscriber:
    """What both Redis brokers do, without the I/O: they add the client, the tasks
    or greenlets, and the waiting.

    :meth:`steps` carries out effects and yields each command that must go
    through Redis, which :meth:`call` makes. Until subscribed, a broker serves
    this process's members on its own and :meth:`not_ready` says why.
    """

    def __init__(self, hub: Hub, url: str, prefix: str, client_class: Any = None) -> None:
        """``client_class``: redis-py's ``Redis``, sync or asyncio (they take the same
        calls; the asyncio ones return awaitables); None for no client at all."""
        if client_class is not None:
            self.redis = client_class.from_url(url, **client_options())
            self.recount_script = self.redis.register_script(RECOUNT_SCRIPT)
        self.hub = hub
        self.names = Names(prefix)
        self.where = redacted(url)
        self.subscribed = False
        self.problem = f"connecting to Redis at {self.where}"
        # Per room, the presences that could not go through Redis yet.
        self._held: dict[str, deque[Announcement]] = {}

    def not_ready(self) -> str | None:
        return None if self.subscribed else self.problem

    def steps(self, effects: list[Effect]) -> Generator[Remote, Exception | None]:
        """Carry out ``effects`` (:func:`broker.carry_out`), through Redis where it serves.

        Yields each publish or recount that must go to Redis; the broker sends
        it and sends back None, or the Redis error it failed with.
        """
        interpreter = carry_out(self.hub, effects)
        with contextlib.suppress(StopIteration):
            effect = next(interpreter)
            while True:
                effect = interpreter.send((yield from self._through_redis(effect)))

    def _through_redis(self, effect: Remote) -> Generator[Remote, Exception | None, list[Effect]]:
        """Publish, or recount and announce, through Redis; locally while it is unreachable."""
        if self.subscribed:
            failure = None
            while failure is None and (held := self.next_held()) is not None:
                failure = yield held
                if failure is None:
                    self.sent(held)
            if failure is None:
                failure = yield effect
            if failure is None:
                return []  # this process's members get it back through the subscription
            self.on_failed(failure)
        return self.carry_locally(effect)

    def call(self, command: Remote) -> Any:
        """Send ``command`` with :attr:`redis`: the reply, or an awaitable of it under asyncio."""
        if isinstance(command, Publish):
            return self.redis.publish(self.names.channel, encode_envelope(command))
        keys = [self.names.room(command.room)]
        return self.recount_script(keys=keys, args=recount_arguments(self.names, command))

    def beat(self) -> Any:
        """Refresh this process's heartbeat key: the reply, or an awaitable of it."""
        return self.redis.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)

    def queue_registration(self, pipe: Any) -> None:
        """Queue on ``pipe`` (a redis-py pipeline, sync or asyncio) the commands that
        announce this process and its members again: Redis may have restarted empty."""
        pipe.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)
        for room, members in self.hub.local_rooms().items():
            pipe.hset(self.names.room(room), self.names.process_id, members)

    def queue_deregistration(self, pipe: Any) -> None:
        """Queue on ``pipe`` the commands that take this process out of every count."""
        pipe.delete(self.names.heartbeat)
        for room in self.hub.local_rooms():
            pipe.hdel(self.names.room(room), self.names.process_id)

    def carry_locally(self, effect: Publish | Recount) -> list[Effect]:
        """Carry out ``effect`` in this process alone, while Redis cannot.

        A publish reaches this process's members. Of a recount, the ``joined``
        for a joining member goes out now, so that the join completes; the
        presences are held (see :meth:`next_held`): the other processes cannot
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

    def next_held(self) -> Recount | None:
        """The oldest room with held presences, as the recount that sends them and a
        ``joined`` with the room's total to its every member; None if nothing is held.

        A broker sends these, and calls :meth:`sent` for each, before any other
        effect once Redis serves it again: so the others get a room's changes in
        the order they happened, and the members served alone their real count.
        """
        for room, presences in self._held.items():
            return Recount(room, self.hub.members(room), (*presences, self.hub.joined(room)))
        return None

    def sent(self, recount: Recount) -> None:
        """``recount`` from :meth:`next_held` went through Redis."""
        del self._held[recount.room]

    def on_subscribed(self) -> list[Effect]:
        """Now subscribed (and registered): a recount of every room with members here
        or presences held, with a ``joined`` and the real total for its every member,
        in every process.

        The process that comes back last so corrects what the others announced
        while it was missing, and joins whose own ``joined`` was lost with the
        connection get theirs. A room with presences held gets its ``joined`` with
        them (:meth:`next_held`), which go out before. All through Redis, so that
        counts reach everyone in order.
        """
        self.subscribed = True
        log.info("subscribed to Redis at %s", self.where)
        self.hub.forget_pending()
        rooms = dict.fromkeys([*self.hub.local_rooms(), *self._held])
        return [Recount(room, self.hub.members(room), self._refresh(room)) for room in rooms]

    def _refresh(self, room: str) -> tuple[Announcement, ...]:
        # A room with presences held gets its joined with them, sent before this recount.
        return () if room in self._held else (self.hub.joined(room),)

    def check_subscribed(self, confirmation: dict[str, Any] | None) -> None:
        """Raise unless ``confirmation`` is Redis's answer to the SUBSCRIBE just sent.

        Only then does a frame published through Redis reach this process.
        """
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

    def on_message(self, envelope: str) -> list[Effect]:
        """A frame from the channel, handed to this process's members."""
        publish = decode_envelope(envelope)
        return self.hub.fan_out(publish.room, publish.frame, publish.skip, publish.only)

    def on_effects_failed(self, effects: list[Effect]) -> None:
        """Carrying out ``effects`` raised: log it with the traceback, and go on."""
        log.exception("effects failed: %r", effects)

    def on_failed(self, error: Exception) -> None:
        log.warning("Redis failed (%s): serving this process's members only", error)
