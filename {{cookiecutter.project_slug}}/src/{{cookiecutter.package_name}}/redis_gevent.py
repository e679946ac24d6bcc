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

import gevent
import gevent.queue
import redis
from redis.exceptions import RedisError

from .broker import Remote
from .redis_pubsub import DRAIN_TIMEOUT, HEARTBEAT_INTERVAL, SUBSCRIBE_TIMEOUT, Subscriber
from .rooms import Effect, Hub


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub."""

    redis: redis.Redis

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        self._jobs: gevent.queue.JoinableQueue[list[Effect]] = gevent.queue.JoinableQueue()
        self._greenlets: list[gevent.Greenlet[[], None]] = []
        super().__init__(hub, url, prefix, redis.Redis)

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

    def start(self) -> None:
        self._greenlets = [gevent.spawn(loop) for loop in (self._listen, self._work, self._beat)]

    def stop(self) -> None:
        with contextlib.suppress(gevent.Timeout), gevent.Timeout(DRAIN_TIMEOUT):
            self._jobs.join()
        gevent.killall(self._greenlets)
        with contextlib.suppress(RedisError, OSError), self.redis.pipeline() as pipe:
            self.queue_deregistration(pipe)
            pipe.execute()
        self.redis.close()

    def _work(self) -> None:
        for effects in self._jobs:
            try:
                steps = self.steps(effects)
                with contextlib.suppress(StopIteration):
                    command = next(steps)
                    while True:
                        command = steps.send(self._send(command))
            except Exception:
                self.on_effects_failed(effects)
            finally:
                self._jobs.task_done()

    def _send(self, command: Remote) -> RedisError | None:
        try:
            self.call(command)
        except RedisError as error:
            return error
        return None

    def _listen(self) -> None:
        failures = 0
        while True:
            try:
                # redis-py's sync client leaves pubsub() unannotated.
                with self.redis.pubsub() as pubsub:  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self.names.channel)
                    self.check_subscribed(pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))
                    with self.redis.pipeline() as pipe:
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
                self.beat()
            gevent.sleep(HEARTBEAT_INTERVAL)
