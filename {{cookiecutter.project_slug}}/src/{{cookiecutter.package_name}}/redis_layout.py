"""What every process's Redis broker agrees on: channel and key names, the envelope, the scripts.

Every room has a channel of its own and its member counts, all named with the
room as a hash tag (``{room}``), so that in a Redis Cluster one room lives on
one slot: its script runs on one node and its frames travel on that node only.
A process subscribes to a room's channel while it has members in the room, so
its Redis traffic follows its own rooms.
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions
from redis.backoff import NoBackoff

from .broker import Remote
from .rooms import Publish, Recount

HEARTBEAT_INTERVAL = 5.0
"""Seconds between two refreshes of a process's share in each of its rooms."""
HEARTBEAT_TTL = 15
"""Seconds a process's members keep counting in a room after its last refresh there."""
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that name a Redis Cluster, and the scheme of each of its nodes."""

# KEYS: the room's member counts (hash: process id -> members), the expiry of each
# process's share (sorted set, milliseconds of Redis's clock), the room's channel.
# ARGV: process id, its member count, the share's lifetime in ms, the publish
# command (SPUBLISH or PUBLISH), the envelope head (room and separator), then four
# values per announcement: skip, only, frame head, frame tail.
# In one atomic step: sets this process's share, drops the shares that expired,
# publishes each announcement with the room's total filled in, and returns the
# total. Atomic, so announcements reach every subscriber in the order of the
# counts they carry. It touches the room's keys only, so it runs on a cluster too.
RECOUNT_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lifetime = tonumber(ARGV[3])
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + lifetime, ARGV[1])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, process in ipairs(expired) do
  redis.call('HDEL', KEYS[1], process)
  redis.call('ZREM', KEYS[2], process)
end
local total = 0
for _, members in ipairs(redis.call('HVALS', KEYS[1])) do
  total = total + tonumber(members)
end
redis.call('PEXPIRE', KEYS[1], lifetime)
redis.call('PEXPIRE', KEYS[2], lifetime)
local separator = string.char(0)
for i = 6, #ARGV, 4 do
  local envelope = ARGV[5] .. ARGV[i] .. separator .. ARGV[i + 1] .. separator
  redis.call(ARGV[4], KEYS[3], envelope .. ARGV[i + 2] .. total .. ARGV[i + 3])
end
return total
"""

# KEYS: the room's member counts and share expiries. ARGV: process id, lifetime in ms.
# Keeps this process's share alive, if it still has one: a share the recount
# script removed stays removed.
BEAT_SCRIPT = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 0
"""

# KEYS: the room's channel. ARGV: the publish command, then envelopes. Publishes them
# all, in order: what a batch publishes in one room is one command, with one reply.
PUBLISH_SCRIPT = """
for i = 2, #ARGV do
  redis.call(ARGV[1], KEYS[1], ARGV[i])
end
return #ARGV - 1
"""

SCRIPTS = (RECOUNT_SCRIPT, BEAT_SCRIPT, PUBLISH_SCRIPT)
"""Loaded into every Redis node when a broker connects."""
RECOUNT_SHA, BEAT_SHA, PUBLISH_SHA = (
    hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest() for script in SCRIPTS
)
"""What ``EVALSHA`` names them by: Redis's own digest of each script."""

SEPARATOR = "\x00"  # appears in neither room names nor connection ids
Command = tuple[str | int, ...]
"""One Redis command, as its words."""


@dataclass(frozen=True)
class Names:
    """The Redis names one deployment uses, under ``prefix`` (which holds no braces)."""

    prefix: str
    process_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def channel(self, room: str) -> str:
        """The channel that carries ``room``'s frames."""
        return self._room_key(room, "frames")

    def members(self, room: str) -> str:
        """The hash of ``room``'s members per process."""
        return self._room_key(room, "members")

    def expiries(self, room: str) -> str:
        """The sorted set of when each process's share of ``room`` stops counting."""
        return self._room_key(room, "expiries")

    def _room_key(self, room: str, what: str) -> str:
        # The room in braces is the key's hash tag: a cluster puts all of a room on one slot.
        return self.prefix + ":{" + room + "}:" + what

    @property
    def control(self) -> str:
        """This process's own channel: it keeps every subscriber connection subscribed,
        also while the process has no room."""
        return f"{self.prefix}:process:{self.process_id}"


def encode_envelope(publish: Publish) -> str:
    """One published message: room, who to skip, who only, and the frame as it is sent."""
    return SEPARATOR.join((publish.room, publish.skip or "", publish.only or "", publish.frame))


def decode_envelope(data: str) -> Publish:
    """The :class:`Publish` that :func:`encode_envelope` (or the recount script) encoded."""
    room, skip, only, frame = data.split(SEPARATOR, 3)
    return Publish(room, frame, skip or None, only or None)


def publish_command(names: Names, publishes: Sequence[Publish], sharded: bool) -> Command:
    """The command that publishes ``publishes``, all in one room, in order, on its channel."""
    verb = "SPUBLISH" if sharded else "PUBLISH"
    channel = names.channel(publishes[0].room)
    if len(publishes) == 1:
        return (verb, channel, encode_envelope(publishes[0]))
    return ("EVALSHA", PUBLISH_SHA, 1, channel, verb, *map(encode_envelope, publishes))


def recount_command(names: Names, recount: Recount, sharded: bool) -> Command:
    """The ``EVALSHA`` of :data:`RECOUNT_SCRIPT` that carries out ``recount``."""
    room = recount.room
    command: list[str | int] = ["EVALSHA", RECOUNT_SHA, 3]
    command += [names.members(room), names.expiries(room), names.channel(room)]
    command += [names.process_id, recount.local_members, HEARTBEAT_TTL * 1000]
    command += ["SPUBLISH" if sharded else "PUBLISH", room + SEPARATOR]
    for announcement in recount.announcements:
        command += [
            announcement.skip or "",
            announcement.only or "",
            announcement.head,
            announcement.tail,
        ]
    return tuple(command)


def command(names: Names, group: Sequence[Remote], sharded: bool) -> Command:
    """The Redis command that carries out a recount, or a room's publishes (:func:`grouped`)."""
    if isinstance(group[0], Recount):
        return recount_command(names, group[0], sharded)
    publishes = [effect for effect in group if isinstance(effect, Publish)]
    return publish_command(names, publishes, sharded)


def grouped(remote: Sequence[Remote]) -> list[list[Remote]]:
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


def beat_command(names: Names, room: str) -> Command:
    """The ``EVALSHA`` of :data:`BEAT_SCRIPT` that keeps this process's share of ``room``."""
    keys = (names.members(room), names.expiries(room))
    return ("EVALSHA", BEAT_SHA, 2, *keys, names.process_id, HEARTBEAT_TTL * 1000)


def leave_commands(names: Names, room: str) -> list[Command]:
    """The commands that take this process's share out of ``room`` at once."""
    return [
        ("HDEL", names.members(room), names.process_id),
        ("ZREM", names.expiries(room), names.process_id),
    ]


def is_cluster(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    return urllib.parse.urlsplit(url).scheme in CLUSTER_SCHEMES


def node_url(url: str, address: str | None = None) -> str:
    """``url`` with the scheme redis-py takes, a cluster's as that of one of its nodes;
    with ``address`` (``host:port``), that of the node there, with the same user,
    password and options."""
    parts = urllib.parse.urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    netloc = parts.netloc
    if address is not None:
        user, _, _ = netloc.rpartition("@")
        netloc = f"{user}@{address}" if user else address
    return urllib.parse.urlunsplit(parts._replace(scheme=scheme, netloc=netloc))


def redacted(url: str) -> str:
    """``url`` without its password, for logs and ``/health``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def client_options(retry: Callable[[NoBackoff, int], object], retries: int = 1) -> dict[str, Any]:
    """Keyword arguments for ``from_url`` (sync or asyncio, one Redis or a cluster), with
    ``retry``: redis-py's ``Retry`` of the same kind as the client.

    Commands are retried once: the first command after a Redis restart fails on
    the pooled connection that restart killed. Subscriber connections are not
    (``retries=0``): a subscription that breaks is made anew by the broker, which
    then counts its members again in a Redis that may have restarted empty.
    """
    return {
        "decode_responses": True,
        "socket_connect_timeout": 2,
        "health_check_interval": 10,
        "retry": retry(NoBackoff(), retries),
        "retry_on_error": [exceptions.ConnectionError, exceptions.TimeoutError],
    }


def client(url: str, single: Any, cluster: Any, retry: Callable[[NoBackoff, int], object]) -> Any:
    """A client of the Redis at ``url``: ``single`` (redis-py's ``Redis``, sync or asyncio)
    or, for a cluster's URL, ``cluster`` (its ``RedisCluster``), with ``retry`` (its ``Retry``)."""
    options = client_options(retry)
    if is_cluster(url):
        return cluster.from_url(node_url(url), **options)
    return single.from_url(url, **options)


def subscriber_client(url: str, node: str | None, single: Any, retry: Any) -> Any:
    """A client (``single``, redis-py's ``Redis``) for a subscriber connection to ``node``
    (``host:port``) of the Redis at ``url``, or to that Redis itself; never retried."""
    return single.from_url(node_url(url, node), **client_options(retry, 0))
