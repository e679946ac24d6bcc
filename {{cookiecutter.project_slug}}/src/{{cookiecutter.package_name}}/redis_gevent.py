"""The Redis broker under gevent: room frames and member counts shared by every process.

Started when the app is created, in the worker process (after gevent's
monkey-patching, so the sync Redis client cooperates with the other
greenlets). Effects run in one greenlet, in the order they were submitted; a
listener greenlet keeps the subscription alive across Redis restarts. There is
no explicit stop: on shutdown the worker closes every connection, whose
departures are published while the process drains, and the heartbeat key
expires on its own.
"""

from __future__ import annotations

import contextlib
import logging

import gevent
import gevent.queue
import redis
from redis.exceptions import RedisError

from .broker import run
from .redis_pubsub import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TTL,
    RECOUNT_SCRIPT,
    SUBSCRIBE_TIMEOUT,
    Subscriber,
    client_options,
    encode_envelope,
    recount_arguments,
)
from .rooms import Effect, Hub, Publish, Recount

log = logging.getLogger(__name__)


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub (see ``redis_pubsub.py``)."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        super().__init__(hub, url, prefix)
        self._redis = redis.Redis.from_url(url, **client_options())
        self._recount_script = self._redis.register_script(RECOUNT_SCRIPT)
        self._jobs: gevent.queue.Queue[list[Effect]] = gevent.queue.Queue()

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

    def start(self) -> None:
        for loop in (self._listen, self._work, self._beat):
            gevent.spawn(loop)

    def _work(self) -> None:
        for effects in self._jobs:
            try:
                run(self.hub, effects, self._remote)
            except Exception:
                log.exception("effects failed: %r", effects)

    def _remote(self, effect: Publish | Recount) -> list[Effect]:
        """Publish, or recount and announce, through Redis; locally while it is unreachable."""
        if self.subscribed:
            try:
                while (held := self.next_held()) is not None:
                    self._recount(held)
                    self.sent(held)
                if isinstance(effect, Publish):
                    self._redis.publish(self.names.channel, encode_envelope(effect))
                else:
                    self._recount(effect)
                return []  # this process's members get it back through the subscription
            except RedisError as error:
                self.on_failed(error)
        return self.carry_locally(effect)

    def _recount(self, recount: Recount) -> None:
        self._recount_script(
            keys=[self.names.room(recount.room)], args=recount_arguments(self.names, recount)
        )

    def _listen(self) -> None:
        failures = 0
        while True:
            try:
                # redis-py's sync client leaves pubsub() unannotated.
                with self._redis.pubsub() as pubsub:  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self.names.channel)
                    self.check_subscribed(pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))
                    self._register()
                    failures = 0
                    self.submit(self.on_subscribed())
                    while True:
                        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None:
                            self.submit(self.on_message(message["data"]))
                            # Let the connections send between two frames of a burst: without it
                            # a burst larger than an outbox closes readers that keep up.
                            gevent.sleep(0)
            except (RedisError, OSError) as error:
                gevent.sleep(self.on_lost(error, failures))
                failures += 1

    def _register(self) -> None:
        """Announce this process and its members again: Redis may have restarted empty."""
        with self._redis.pipeline() as pipe:
            pipe.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)
            for room, members in self.hub.local_rooms().items():
                pipe.hset(self.names.room(room), self.names.process_id, members)
            pipe.execute()

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(RedisError, OSError):
                self._redis.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)
            gevent.sleep(HEARTBEAT_INTERVAL)
