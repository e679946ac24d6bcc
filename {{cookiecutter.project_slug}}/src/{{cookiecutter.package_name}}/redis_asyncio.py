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
from collections.abc import Sequence

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.exceptions import ConnectionError, RedisError, ResponseError

from . import redis_layout, redis_scripts
from .history import Retention
from .redis_io import Execute, Io, Subscribe
from .redis_pubsub import DRAIN_TIMEOUT, SUBSCRIBE_TIMEOUT, Subscriber
from .rooms import Effect, Hub

FAILURES = (RedisError, OSError, TimeoutError)


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub, on one Redis or a cluster."""

    def __init__(self, hub: Hub, url: str, prefix: str, retention: Retention) -> None:
        self._jobs: asyncio.Queue[list[Effect]] = asyncio.Queue()
        self._confirmed, self._broken = asyncio.Event(), asyncio.Event()
        super().__init__(hub, url, prefix, retention, self._jobs, self._confirmed, self._broken)
        self.url = url
        self.redis: redis.Redis | RedisCluster = redis_layout.client(
            url, redis.Redis, RedisCluster, Retry
        )
        self._tasks: list[asyncio.Task[None]] = []

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
            await self._execute(self.leaving())
        await self._close_subscribers()
        await self.redis.aclose()

    async def _work(self) -> None:
        while True:
            count, effects = self.batch(await self._jobs.get())
            try:
                steps = self.work(effects)
                with contextlib.suppress(StopIteration):
                    io = next(steps)
                    while True:
                        io = steps.send(await self._carry(io))
            except Exception:
                self.on_effects_failed(effects)
            finally:
                for _ in range(count):
                    self._jobs.task_done()

    async def _carry(self, io: Io) -> object:
        """Carry out what a batch asks: the replies, None, or the error it failed with."""
        try:
            if isinstance(io, Execute):
                return await self._execute(io.commands)
            if isinstance(io, Subscribe):
                await self._subscribe(io.channels)
            else:
                await self._unsubscribe(io.channels)
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

    async def _unsubscribe(self, channels: Sequence[str]) -> None:
        for channel in channels:
            pubsub = self.subscriber_of(channel)
            await (pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe)(channel)

    async def _execute(self, commands: Sequence[redis_layout.Command]) -> list[object]:
        """Each command's reply or error; one command goes without a pipeline."""
        if len(commands) > 1:
            async with self.redis.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                return list(await pipe.execute(raise_on_error=False))
        replies: list[object] = []
        for command in commands:
            try:
                replies.append(await self.redis.execute_command(*command))
            except ResponseError as error:
                replies.append(error)
        return replies

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                self._broken.clear()
                await self._connect()
                readers: list[asyncio.Task[object]] = [
                    asyncio.create_task(self._read(node, pubsub))
                    for node, (_, pubsub) in self.subscribers.items()
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
        nodes: list[str | None] = [None]
        if isinstance(self.redis, RedisCluster):
            await self.redis.nodes_manager.initialize()
            nodes = [node.name for node in self.redis.get_primaries()]
        for script in redis_scripts.SCRIPTS:
            await self.redis.script_load(script)
        self.sharded = self.offers_sharded(await self._execute([self.probe]))
        for node in nodes:
            client = redis_layout.subscriber_client(self.url, node, redis.Redis, Retry)
            pubsub = client.pubsub()
            self.add_subscriber(node or "", client, pubsub)
            await pubsub.subscribe(self.names.control)
            self.check_subscribed(await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))

    async def _close_subscribers(self) -> None:
        for client, pubsub in self.take_subscribers():
            with contextlib.suppress(*FAILURES):
                await pubsub.aclose()
                await client.aclose()

    async def _read(self, node: str, pubsub: PubSub) -> object:
        while True:
            # No timeout to set up for each frame: see SUBSCRIBER_TIMEOUT.
            if self.on_read(node, await pubsub.get_message(timeout=None)):
                await asyncio.sleep(0)  # the connections' turn to send

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(redis_layout.HEARTBEAT_INTERVAL)
            commands = self.heartbeat()
            if commands is not None:
                with contextlib.suppress(*FAILURES):
                    for _, pubsub in list(self.subscribers.values()):
                        await pubsub.ping()
                    await self._execute(commands)
