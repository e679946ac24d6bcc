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
import time
from collections.abc import Sequence

import gevent
import gevent.event
import gevent.queue
import redis
from redis.client import PubSub
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError, RedisError, ResponseError
from redis.retry import Retry

from .redis_layout import (
    HEARTBEAT_INTERVAL,
    SCRIPTS,
    beat_command,
    client_options,
    is_cluster,
    leave_commands,
    node_url,
)
from .redis_pubsub import (
    DRAIN_TIMEOUT,
    LISTENER_BATCH,
    SUBSCRIBE_TIMEOUT,
    Command,
    Execute,
    Io,
    Subscribe,
    Subscriber,
)
from .rooms import Effect, Hub

FAILURES = (RedisError, OSError)


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub, on one Redis or a cluster."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        super().__init__(hub, url, prefix)
        self.url = url
        self.redis: redis.Redis | RedisCluster = (
            RedisCluster.from_url(node_url(url), **client_options(Retry))
            if is_cluster(url)
            else redis.Redis.from_url(url, **client_options(Retry))
        )
        self._jobs: gevent.queue.JoinableQueue[list[Effect]] = gevent.queue.JoinableQueue()
        self._greenlets: list[gevent.Greenlet[[], None]] = []
        self._pubsubs: dict[str, PubSub] = {}  # node name ("" for one Redis) -> subscriber
        self._heard: dict[str, float] = {}  # node name -> when its subscriber last sent
        self._clients: list[redis.Redis] = []  # theirs
        self._confirmed = gevent.event.Event()
        self._broken = gevent.event.Event()  # a round trip failed: subscribe anew

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

    on_frames = submit

    def on_confirmed(self) -> None:
        self._confirmed.set()

    def on_broken(self) -> None:
        self._broken.set()

    def start(self) -> None:
        self._greenlets = [gevent.spawn(loop) for loop in (self._listen, self._work, self._beat)]

    def stop(self) -> None:
        with contextlib.suppress(gevent.Timeout), gevent.Timeout(DRAIN_TIMEOUT):
            self._jobs.join()
        gevent.killall(self._greenlets)
        with contextlib.suppress(*FAILURES):
            rooms = self.hub.local_rooms()
            self._execute([c for room in rooms for c in leave_commands(self.names, room)])
        self._close_subscribers()
        self.redis.close()

    def _work(self) -> None:
        while True:
            batches = [self._jobs.get()]
            while not self._jobs.empty():
                batches.append(self._jobs.get_nowait())
            effects = [effect for batch in batches for effect in batch]
            try:
                steps = self.work(effects)
                with contextlib.suppress(StopIteration):
                    io = next(steps)
                    while True:
                        io = steps.send(self._carry(io))
            except Exception:
                self.on_effects_failed(effects)
            finally:
                for _ in batches:
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

    def _execute(self, commands: Sequence[Command]) -> list[object]:
        if len(commands) == 1:  # no pipeline for one: the usual case when nothing queues
            try:
                return [self.redis.execute_command(*commands[0])]
            except ResponseError as error:
                return [error]
        if not commands:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute(raise_on_error=False))

    def subscriber_of(self, channel: str) -> PubSub:
        """The subscriber connection of the node that carries ``channel``."""
        node = None
        if isinstance(self.redis, RedisCluster):
            node = self.redis.get_node_from_key(channel)
        pubsub = self._pubsubs.get("" if node is None else node.name)
        if pubsub is None:  # the cluster moved the slot to a node it did not have
            raise ConnectionError(f"no subscriber connection to the node of {channel}")
        return pubsub

    def _listen(self) -> None:
        failures = 0
        while True:
            try:
                self._broken.clear()
                self._connect()
                readers: list[gevent.Greenlet[..., object]] = [
                    gevent.spawn(self._read, *node) for node in self._pubsubs.items()
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
        addresses: list[str | None] = [None]
        if isinstance(self.redis, RedisCluster):
            self.redis.nodes_manager.initialize()
            addresses = [node.name for node in self.redis.get_primaries()]
        for script in SCRIPTS:
            self.redis.script_load(script)
        try:
            self.redis.execute_command("SPUBLISH", self.names.control, "")
            self.sharded = True
        except ResponseError:  # Redis < 7, or a user that may not use it
            self.sharded = False
        for address in addresses:
            client = redis.Redis.from_url(node_url(self.url, address), **client_options(Retry, 0))
            pubsub = self._pubsubs[address or ""] = client.pubsub()
            self._heard[address or ""] = time.monotonic()
            self._clients.append(client)
            pubsub.subscribe(self.names.control)
            self.check_subscribed(pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))

    def _close_subscribers(self) -> None:
        pubsubs, self._pubsubs, self._heard = list(self._pubsubs.values()), {}, {}
        clients, self._clients = self._clients, []
        for pubsub in pubsubs:
            with contextlib.suppress(*FAILURES):
                pubsub.close()
        for client in clients:
            with contextlib.suppress(*FAILURES):
                client.close()

    def _read(self, node: str, pubsub: PubSub) -> object:
        handed = 0
        while True:
            # get_message(timeout=None), which its annotation does not admit; see SUBSCRIBER_TIMEOUT
            message = pubsub.handle_message(pubsub.parse_response(block=True))
            self._heard[node] = time.monotonic()
            if message is not None and self.on_pubsub(message):
                handed += 1
                if handed == LISTENER_BATCH:
                    handed = 0
                    gevent.sleep(0)

    def _beat(self) -> None:
        while True:
            gevent.sleep(HEARTBEAT_INTERVAL)
            self.check_heard(self._heard, time.monotonic())
            if self.subscribed:
                rooms = self.hub.local_rooms()
                with contextlib.suppress(*FAILURES):
                    for pubsub in list(self._pubsubs.values()):
                        pubsub.ping()
                    self._execute([beat_command(self.names, room) for room in rooms])
