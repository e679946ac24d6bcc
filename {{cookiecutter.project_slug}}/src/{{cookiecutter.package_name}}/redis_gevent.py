"""The Redis broker under gevent: room frames and member counts shared by every process.

Started with the app, in the worker process (after gevent's monkey-patching, so
the sync Redis clients cooperate with the other greenlets), and stopped by the
worker once its connections have ended (``wsgi.App``). Effects run in one
greenlet, in the order they were submitted, each batch of them in one round
trip; a listener greenlet keeps one subscriber connection per Redis node (one,
or each primary of a cluster) alive across restarts, with a reader greenlet
each. What the broker does is in ``redis_pubsub.py``; this module adds the sync
clients, greenlets and waits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import gevent
import gevent.event
import gevent.queue
import redis
from redis.client import PubSub
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError, RedisError, ResponseError
from redis.retry import Retry

from . import redis_layout, redis_scripts
from .history import Retention
from .redis_io import Execute, Io, Subscribe
from .redis_pubsub import DRAIN_TIMEOUT, SUBSCRIBE_TIMEOUT, Subscriber
from .rooms import Effect, Hub

FAILURES = (RedisError, OSError)


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub, on one Redis or a cluster."""

    def __init__(self, hub: Hub, url: str, prefix: str, retention: Retention) -> None:
        self._jobs: gevent.queue.JoinableQueue[list[Effect]] = gevent.queue.JoinableQueue()
        self._confirmed, self._broken = gevent.event.Event(), gevent.event.Event()
        super().__init__(hub, url, prefix, retention, self._jobs, self._confirmed, self._broken)
        self.url = url
        self.redis: redis.Redis | RedisCluster = redis_layout.client(
            url, redis.Redis, RedisCluster, Retry
        )
        self._greenlets: list[gevent.Greenlet[[], None]] = []

    def start(self) -> None:
        self._greenlets = [gevent.spawn(loop) for loop in (self._listen, self._work, self._beat)]

    def stop(self) -> None:
        with contextlib.suppress(gevent.Timeout), gevent.Timeout(DRAIN_TIMEOUT):
            self._jobs.join()
        gevent.killall(self._greenlets)
        with contextlib.suppress(*FAILURES):
            self._execute(self.leaving())
        self._close_subscribers()
        self.redis.close()

    def _work(self) -> None:
        for first in self._jobs:
            count, effects = self.batch(first)
            try:
                steps = self.work(effects)
                with contextlib.suppress(StopIteration):
                    io = next(steps)
                    while True:
                        io = steps.send(self._carry(io))
            except Exception:
                self.on_effects_failed(effects)
            finally:
                for _ in range(count):
                    self._jobs.task_done()

    def _carry(self, io: Io) -> object:
        """Carry out what a batch asks: the replies, None, or the error it failed with."""
        try:
            if isinstance(io, Execute):
                return self._execute(io.commands)
            if isinstance(io, Subscribe):
                self._subscribe(io.channels)
            else:
                for channel in io.channels:
                    pubsub = self.subscriber_of(channel)
                    (pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe)(channel)
        except FAILURES as error:
            return error
        return None

    def _subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe to ``channels`` and wait until Redis has confirmed them all."""
        for channel in channels:
            pubsub = self.subscriber_of(channel)
            (pubsub.ssubscribe if self.sharded else pubsub.subscribe)(channel)
        self._confirmed.clear()
        if self.confirming and not self._confirmed.wait(SUBSCRIBE_TIMEOUT):
            raise ConnectionError(f"Redis did not confirm subscriptions in {SUBSCRIBE_TIMEOUT:g} s")

    def _execute(self, commands: Sequence[redis_layout.Command]) -> list[object]:
        """Each command's reply or error; one command goes without a pipeline."""
        if len(commands) > 1:
            with self.redis.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                return list(pipe.execute(raise_on_error=False))
        replies: list[object] = []
        for command in commands:
            try:
                replies.append(self.redis.execute_command(*command))
            except ResponseError as error:
                replies.append(error)
        return replies

    def _listen(self) -> None:
        failures = 0
        while True:
            try:
                self._broken.clear()
                self._connect()
                readers: list[gevent.Greenlet[..., object]] = [
                    gevent.spawn(self._read, node, pubsub)
                    for node, (_, pubsub) in self.subscribers.items()
                ]
                readers.append(gevent.spawn(self._broken.wait, None))
                try:
                    self._subscribe(self.wanted_channels())
                    failures = 0
                    self.submit(self.on_subscribed())
                    for reader in gevent.wait(readers, count=1):
                        reader.get()
                    raise ConnectionError(self.problem)
                finally:
                    gevent.killall(readers)
            except FAILURES as error:
                gevent.sleep(self.on_lost(error, failures))
                failures += 1

    def _connect(self) -> None:
        """Load the scripts, learn the pub/sub Redis offers, and open a subscriber
        connection to each node, subscribed to this process's control channel."""
        self._close_subscribers()
        nodes: list[str | None] = [None]
        if isinstance(self.redis, RedisCluster):
            self.redis.nodes_manager.initialize()
            nodes = [node.name for node in self.redis.get_primaries()]
        for script in redis_scripts.SCRIPTS:
            self.redis.script_load(script)
        self.sharded = self.offers_sharded(self._execute([self.probe]))
        for node in nodes:
            client = redis_layout.subscriber_client(self.url, node, redis.Redis, Retry)
            pubsub = client.pubsub()
            self.add_subscriber(node or "", client, pubsub)
            pubsub.subscribe(self.names.control)
            self.check_subscribed(pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))

    def _close_subscribers(self) -> None:
        for client, pubsub in self.take_subscribers():
            with contextlib.suppress(*FAILURES):
                pubsub.close()
                client.close()

    def _read(self, node: str, pubsub: PubSub) -> object:
        while True:
            # Blocks with no timeout (see SUBSCRIBER_TIMEOUT): get_message(timeout=None),
            # which its annotation does not admit.
            if self.on_read(node, pubsub.handle_message(pubsub.parse_response(block=True))):
                gevent.sleep(0)  # the connections' turn to send

    def _beat(self) -> None:
        while True:
            gevent.sleep(redis_layout.HEARTBEAT_INTERVAL)
            commands = self.heartbeat()
            if commands is not None:
                with contextlib.suppress(*FAILURES):
                    for _, pubsub in list(self.subscribers.values()):
                        pubsub.ping()
                    self._execute(commands)
