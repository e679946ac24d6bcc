"""The Redis broker under gevent: room frames and member counts shared by every process.

Started with the app, in the worker process (after gevent's monkey-patching, so
the sync Redis client cooperates with the other greenlets), and stopped by the
worker once its connections have ended (``wsgi.App``). Effects run in one
greenlet, in the order they were submitted; a listener greenlet keeps the
subscription alive across Redis restarts. What the broker does is in
``redis_pubsub.py``; this module adds the sync client, greenlets and waits.
"""

from __future__ import annotations

import contextlib
import logging

import gevent
import gevent.queue
import redis
from redis.exceptions import RedisError

from .broker import Remote
from .redis_pubsub import (
    DRAIN_TIMEOUT,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TTL,
    RECOUNT_SCRIPT,
    SUBSCRIBE_TIMEOUT,
    Subscriber,
    client_options,
    encode_envelope,
    recount_arguments,
)
from .rooms import Effect, Hub, Publish

log = logging.getLogger(__name__)


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        super().__init__(hub, url, prefix)
        self._redis = redis.Redis.from_url(url, **client_options())
        self._recount_script = self._redis.register_script(RECOUNT_SCRIPT)
        self._jobs: gevent.queue.JoinableQueue[list[Effect]] = gevent.queue.JoinableQueue()
        self._greenlets: list[gevent.Greenlet[[], None]] = []

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

    def start(self) -> None:
        self._greenlets = [gevent.spawn(loop) for loop in (self._listen, self._work, self._beat)]

    def stop(self) -> None:
        with contextlib.suppress(gevent.Timeout), gevent.Timeout(DRAIN_TIMEOUT):
            self._jobs.join()
        gevent.killall(self._greenlets)
        with contextlib.suppress(RedisError, OSError), self._redis.pipeline() as pipe:
            self.queue_deregistration(pipe)
            pipe.execute()
        self._redis.close()

    def _work(self) -> None:
        for effects in self._jobs:
            try:
                steps = self.steps(effects)
                with contextlib.suppress(StopIteration):
                    command = next(steps)
                    while True:
                        command = steps.send(self._send(command))
            except Exception:
                log.exception("effects failed: %r", effects)
            finally:
                self._jobs.task_done()

    def _send(self, command: Remote) -> RedisError | None:
        try:
            if isinstance(command, Publish):
                self._redis.publish(self.names.channel, encode_envelope(command))
            else:
                keys = [self.names.room(command.room)]
                self._recount_script(keys=keys, args=recount_arguments(self.names, command))
        except RedisError as error:
            return error
        return None

    def _listen(self) -> None:
        failures = 0
        while True:
            try:
                # redis-py's sync client leaves pubsub() unannotated.
                with self._redis.pubsub() as pubsub:  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self.names.channel)
                    self.check_subscribed(pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))
                    with self._redis.pipeline() as pipe:
                        self.queue_registration(pipe)
                        pipe.execute()
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

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(RedisError, OSError):
                self._redis.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)
            gevent.sleep(HEARTBEAT_INTERVAL)
