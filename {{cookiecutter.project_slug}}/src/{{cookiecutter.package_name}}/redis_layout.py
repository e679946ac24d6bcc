"""What every process's Redis broker agrees on: channel and key names, the envelope, the scripts.

Every room has a channel of its own and its member counts, all named with the
room as a hash tag (``{room}``), so that in a Redis Cluster one room lives on
one slot: its script runs on one node and its frames travel on that node only.
A process subscribes to a room's channel while it has members in the room, so
its Redis traffic follows its own rooms.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions
from redis.backoff import NoBackoff

from .broker import Remote
from .history import RECENT_IDS, Retention, new_epoch
from .protocol import Position
from .redis_scripts import BEAT_SHA, POST_SHA, PUBLISH_SHA, RECOUNT_SHA
from .rooms import Effect, Post, Publish, Recount

HEARTBEAT_INTERVAL = 5.0
"""Seconds between two refreshes of a process's share in each of its rooms."""
HEARTBEAT_TTL = 15
"""Seconds a process's members keep counting in a room after its last refresh there."""
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that name a Redis Cluster, and the scheme of each of its nodes."""

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

    def position(self, room: str) -> str:
        """The hash of ``room``'s history's epoch and newest offset."""
        return self._room_key(room, "position")

    def history(self, room: str) -> str:
        """The stream of ``room``'s recent messages, by offset."""
        return self._room_key(room, "history")

    def recent_ids(self, room: str) -> str:
        """The sorted set of the ids of ``room``'s recent messages, by offset."""
        return self._room_key(room, "ids")

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


def recount_command(names: Names, recount: Recount, sharded: bool, retention: Retention) -> Command:
    """The ``EVALSHA`` of :data:`RECOUNT_SCRIPT` that carries out ``recount``."""
    room = recount.room
    command: list[str | int] = ["EVALSHA", RECOUNT_SHA, 5]
    command += [names.members(room), names.expiries(room), names.channel(room)]
    command += [names.position(room), names.history(room)]
    command += [names.process_id, recount.local_members, HEARTBEAT_TTL * 1000]
    command += ["SPUBLISH" if sharded else "PUBLISH", room + SEPARATOR]
    command += [new_epoch(), milliseconds(retention.position_ttl)]
    for announcement in recount.announcements:
        since = announcement.since
        command += [
            announcement.skip or "",
            announcement.only or "",
            "" if since is None else since.epoch,
            "" if since is None else since.offset,
            len(announcement.parts),
            *announcement.parts,
        ]
    return tuple(command)


def post_command(
    names: Names, posts: Sequence[Post], sharded: bool, retention: Retention
) -> Command:
    """The ``EVALSHA`` of :data:`POST_SCRIPT` that carries out ``posts``, all in one room."""
    room = posts[0].room
    keys = (names.channel(room), names.position(room), names.history(room), names.recent_ids(room))
    command: list[str | int] = ["EVALSHA", POST_SHA, len(keys), *keys]
    command += ["SPUBLISH" if sharded else "PUBLISH", new_epoch(), retention.messages]
    command += [milliseconds(retention.ttl), milliseconds(retention.position_ttl), RECENT_IDS]
    command.append(room + SEPARATOR * 3)  # the envelope head: no skip, no only
    for post in posts:
        command += [post.id or "", *post.parts]
    return tuple(command)


def milliseconds(seconds: float) -> int:
    """``seconds`` as a lifetime for ``PEXPIRE`` (at least 1)."""
    return max(1, round(seconds * 1000))


def command(names: Names, group: Sequence[Remote], sharded: bool, retention: Retention) -> Command:
    """The Redis command that carries out a recount, or a room's posts or publishes
    (:func:`grouped`)."""
    first = group[0]
    if isinstance(first, Recount):
        return recount_command(names, first, sharded, retention)
    if isinstance(first, Post):
        posts = [effect for effect in group if isinstance(effect, Post)]
        return post_command(names, posts, sharded, retention)
    publishes = [effect for effect in group if isinstance(effect, Publish)]
    return publish_command(names, publishes, sharded)


def answers(group: Sequence[Remote], reply: object) -> list[Effect]:
    """What the reply to :func:`command` for ``group`` leads to: each post's ``ack``."""
    if not isinstance(group[0], Post) or not isinstance(reply, list):
        return []
    epoch, *offsets = reply
    return [
        effect
        for post, offset in zip(group, offsets, strict=True)
        if isinstance(post, Post)
        for effect in post.acknowledgement(Position(str(epoch), abs(int(offset))))
    ]


def grouped(remote: Sequence[Remote]) -> list[list[Remote]]:
    """``remote`` as one command's worth each: a recount alone, or a room's posts (or
    publishes) up to its next recount, or its next effect of another kind.

    A room's effects keep their order; those of different rooms go on channels
    of their own, which keep no order between them anyway.
    """
    groups: list[list[Remote]] = []
    open_groups: dict[str, list[Remote]] = {}  # room: the group its next post or publish joins
    for effect in remote:
        group = open_groups.get(effect.room)
        if isinstance(effect, Recount):
            open_groups.pop(effect.room, None)
            groups.append([effect])
        elif group is not None and type(group[0]) is type(effect):
            group.append(effect)
        else:
            open_groups[effect.room] = [effect]
            groups.append(open_groups[effect.room])
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
