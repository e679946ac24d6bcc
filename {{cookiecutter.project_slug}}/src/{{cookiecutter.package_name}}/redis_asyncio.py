"""The Redis broker under asyncio: room frames and member counts shared by every process.

Started and stopped with the ASGI lifespan (``asgi.BrokerLifespan``). Effects run
in one task, in the order they were submitted, each batch of them in one round
trip; a listener task keeps one subscriber connection per Redis node (one, or
each primary of a cluster) alive across restarts, with a reader task each. What
the broker does is in ``redis_pubsub.py``; this module adds the asyncio clients,
tasks and waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.exceptions import ConnectionError, RedisError, ResponseError

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

FAILURES = (RedisError, OSError, TimeoutError)


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
        self._jobs: asyncio.Queue[list[Effect]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsubs: dict[str, PubSub] = {}  # node name ("" for one Redis) -> subscriber
        self._heard: dict[str, float] = {}  # node name -> when its subscriber last sent
        self._clients: list[redis.Redis] = []  # theirs
        self._confirmed = asyncio.Event()
        self._broken = asyncio.Event()  # a round trip failed: subscribe anew

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

    on_frames = submit

    def on_confirmed(self) -> None:
        self._confirmed.set()

    def on_broken(self) -> None:
        self._broken.set()

    def start(self) -> None:
        loops = (self._listen, self._work, self._beat)
        self._tasks = [asyncio.create_task(loop()) for loop in loops]

    async def stop(self) -> None:
        drained = asyncio.ensure_future(self._jobs.join())
        await asyncio.wait({drained}, timeout=DRAIN_TIMEOUT)
        drained.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(*FAILURES):
            rooms = self.hub.local_rooms()
            await self._execute([c for room in rooms for c in leave_commands(self.names, room)])
        await self._close_subscribers()
        await self.redis.aclose()

    async def _work(self) -> None:
        while True:
            batches = [await self._jobs.get()]
            while not self._jobs.empty():
                batches.append(self._jobs.get_nowait())
            effects = [effect for batch in batches for effect in batch]
            try:
                steps = self.work(effects)
                with contextlib.suppress(StopIteration):
                    io = next(steps)
                    while True:
                        io = steps.send(await self._carry(io))
            except Exception:
                self.on_effects_failed(effects)
            finally:
                for _ in batches:
                    self._jobs.task_done()

    async def _carry(self, io: Io) -> object:
        """Carry out what a batch asks: the replies, None, or the error it failed with."""
        try:
            if isinstance(io, Execute):
                return await self._execute(io.commands)
            if isinstance(io, Subscribe):
                await self._subscribe(io.channels)
            else:
                for channel in io.channels:
                    pubsub = self.subscriber_of(channel)
                    await (pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe)(channel)
        except FAILURES as error:
            return error
        return None

    async def _subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe to ``channels`` and wait until Redis has confirmed them all."""
        for channel in channels:
            pubsub = self.subscriber_of(channel)
            await (pubsub.ssubscribe if self.sharded else pubsub.subscribe)(channel)
        self._confirmed.clear()
        if self.confirming:
            await asyncio.wait_for(self._confirmed.wait(), SUBSCRIBE_TIMEOUT)

    async def _execute(self, commands: Sequence[Command]) -> list[object]:
        if len(commands) == 1:  # no pipeline for one: the usual case when nothing queues
            try:
                return [await self.redis.execute_command(*commands[0])]
            except ResponseError as error:
                return [error]
        if not commands:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))

    def subscriber_of(self, channel: str) -> PubSub:
        """The subscriber connection of the node that carries ``channel``."""
        node = None
        if isinstance(self.redis, RedisCluster):
            node = self.redis.get_node_from_key(channel)
        pubsub = self._pubsubs.get("" if node is None else node.name)
        if pubsub is None:  # the cluster moved the slot to a node it did not have
            raise ConnectionError(f"no subscriber connection to the node of {channel}")
        return pubsub

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                self._broken.clear()
                await self._connect()
                readers: list[asyncio.Task[object]] = [
                    asyncio.create_task(self._read(*node)) for node in self._pubsubs.items()
                ]
                readers.append(asyncio.create_task(self._broken.wait()))
                try:
                    await self._subscribe(self.wanted_channels())
                    failures = 0
                    self.submit(self.on_subscribed())
                    done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
                    for reader in done:
                        reader.result()
                    raise ConnectionError(self.problem)
                finally:
                    for reader in readers:
                        reader.cancel()
                    await asyncio.gather(*readers, return_exceptions=True)
            except FAILURES as error:
                await asyncio.sleep(self.on_lost(error, failures))
                failures += 1

    async def _connect(self) -> None:
        """Load the scripts, learn the pub/sub Redis offers, and open a subscriber
        connection to each node, subscribed to this process's control channel."""
        await self._close_subscribers()
        addresses: list[str | None] = [None]
        if isinstance(self.redis, RedisCluster):
            await self.redis.nodes_manager.initialize()
            addresses = [node.name for node in self.redis.get_primaries()]
        for script in SCRIPTS:
            await self.redis.script_load(script)
        try:
            await self.redis.execute_command("SPUBLISH", self.names.control, "")
            self.sharded = True
        except ResponseError:  # Redis < 7, or a user that may not use it
            self.sharded = False
        for address in addresses:
            client = redis.Redis.from_url(node_url(self.url, address), **client_options(Retry, 0))
            pubsub = self._pubsubs[address or ""] = client.pubsub()
            self._heard[address or ""] = time.monotonic()
            self._clients.append(client)
            await pubsub.subscribe(self.names.control)
            confirmation = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
            self.check_subscribed(confirmation)

    async def _close_subscribers(self) -> None:
        pubsubs, self._pubsubs, self._heard = list(self._pubsubs.values()), {}, {}
        clients, self._clients = self._clients, []
        for pubsub in pubsubs:
            with contextlib.suppress(*FAILURES):
                await pubsub.aclose()
        for client in clients:
            with contextlib.suppress(*FAILURES):
                await client.aclose()

    async def _read(self, node: str, pubsub: PubSub) -> object:
        handed = 0
        while True:
            message = await pubsub.get_message(timeout=None)  # see SUBSCRIBER_TIMEOUT
            self._heard[node] = time.monotonic()
            if message is not None and self.on_pubsub(message):
                handed += 1
                if handed == LISTENER_BATCH:
                    handed = 0
                    await asyncio.sleep(0)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            self.check_heard(self._heard, time.monotonic())
            if self.subscribed:
                rooms = self.hub.local_rooms()
                with contextlib.suppress(*FAILURES):
                    for pubsub in list(self._pubsubs.values()):
                        await pubsub.ping()
                    await self._execute([beat_command(self.names, room) for room in rooms])
