"""The Redis broker under gevent: room frames and member counts shared by every process.

Started when the app is created, in the worker process (after gevent's
monkey-patching, so the sync Redis client cooperates with the other
greenlets). There is no explicit stop: on shutdown the worker closes every
connection, whose departures are published while the process drains, and the
heartbeat key expires on its own. Effects run in one greenlet, in the order they were submitted; a
listener greenlet keeps the subscription alive across Redis restarts, and until
it is subscribed the broker reports not-ready and serves this process's members
on its own.
"""

from __future__ import annotations

import contextlib
import logging

import gevent
import gevent.queue
import redis
from redis import exceptions
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from .broker import locally, run
from .pubsub import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TTL,
    RECONNECT_BACKOFF,
    RECOUNT_SCRIPT,
    Names,
    decode_envelope,
    encode_envelope,
    recount_arguments,
    redacted,
)
from .rooms import Effect, Hub, Publish, Recount

log = logging.getLogger(__name__)


class RedisBroker:
    """Carries out the hub's effects through Redis pub/sub (see ``pubsub.py``)."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        self.hub = hub
        self.names = Names(prefix)
        self._where = redacted(url)
        # One retry on a dropped connection: the first command after a Redis
        # restart fails on the pooled connection that restart killed.
        self._redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=2,
            health_check_interval=10,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[exceptions.ConnectionError, exceptions.TimeoutError],
        )
        self._recount_script = self._redis.register_script(RECOUNT_SCRIPT)
        self._jobs: gevent.queue.Queue[list[Effect]] = gevent.queue.Queue()
        self._greenlets: list[gevent.Greenlet[[], None]] = []
        self._subscribed = False
        self._problem = f"connecting to Redis at {self._where}"

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

    def not_ready(self) -> str | None:
        return None if self._subscribed else self._problem

    def start(self) -> None:
        self._greenlets = [
            gevent.spawn(self._listen),
            gevent.spawn(self._work),
            gevent.spawn(self._beat),
        ]

    def _work(self) -> None:
        for effects in self._jobs:
            try:
                run(self.hub, effects, self._remote)
            except Exception:
                log.exception("effects failed: %r", effects)

    def _remote(self, effect: Publish | Recount) -> list[Effect]:
        """Publish, or recount and announce, through Redis; locally while it is unreachable."""
        if self._subscribed:
            try:
                if isinstance(effect, Publish):
                    self._redis.publish(self.names.channel, encode_envelope(effect))
                else:
                    self._recount_script(
                        keys=[self.names.room(effect.room)],
                        args=recount_arguments(self.names, effect),
                    )
                return []  # this process's members get it back through the subscription
            except RedisError as error:
                log.warning("Redis failed (%s): serving this process's members only", error)
        return locally(self.hub, effect)

    def _listen(self) -> None:
        failures = 0
        while True:
            try:
                # redis-py's sync client leaves pubsub() unannotated.
                with self._redis.pubsub() as pubsub:  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self.names.channel)
                    self._register()
                    self._subscribed, failures = True, 0
                    self.submit(self.hub.confirm_pending())
                    log.info("subscribed to Redis at %s", self._where)
                    while True:
                        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None:
                            self._receive(message["data"])
            except (RedisError, OSError) as error:
                if self._subscribed or failures == 0:
                    log.error("Redis at %s unreachable (%s): retrying", self._where, error)
                self._subscribed = False
                self._problem = f"Redis at {self._where} unreachable: {error}"
                gevent.sleep(RECONNECT_BACKOFF.compute(failures))
                failures += 1

    def _receive(self, envelope: str) -> None:
        publish = decode_envelope(envelope)
        self.submit(self.hub.fan_out(publish.room, publish.frame, publish.skip, publish.only))

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
