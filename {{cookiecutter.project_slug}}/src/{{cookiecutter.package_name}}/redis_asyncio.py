"""The Redis broker under asyncio: room frames and member counts shared by every process.

Started and stopped with the ASGI lifespan (``asgi.BrokerLifespan``). Effects run
in one task, in the order they were submitted; a listener task keeps the
subscription alive across Redis restarts. What the broker does is in
``redis_pubsub.py``; this module adds the asyncio client, tasks and waits.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as redis
from redis.exceptions import RedisError

from .broker import Remote
from .redis_pubsub import DRAIN_TIMEOUT, HEARTBEAT_INTERVAL, SUBSCRIBE_TIMEOUT, Subscriber
from .rooms import Effect, Hub


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub."""

    redis: redis.Redis

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        self._jobs: asyncio.Queue[list[Effect]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        super().__init__(hub, url, prefix, redis.Redis)

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

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
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                self.queue_deregistration(pipe)
                await pipe.execute()
        await self.redis.aclose()

    async def _work(self) -> None:
        while True:
            effects = await self._jobs.get()
            try:
                steps = self.steps(effects)
                with contextlib.suppress(StopIteration):
                    command = next(steps)
                    while True:
                        command = steps.send(await self._send(command))
            except Exception:
                self.on_effects_failed(effects)
            finally:
                self._jobs.task_done()

    async def _send(self, command: Remote) -> RedisError | None:
        try:
            await self.call(command)
        except RedisError as error:
            return error
        return None

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.names.channel)
                    self.check_subscribed(await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))
                    async with self.redis.pipeline() as pipe:
                        self.queue_registration(pipe)
                        await pipe.execute()
                    failures = 0
                    self.submit(self.on_subscribed())
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None:
                            self.submit(self.on_message(message["data"]))
                            # Let the connections send between two frames of a burst: without it
                            # a burst larger than an outbox closes readers that keep up.
                            await asyncio.sleep(0)
            except (RedisError, OSError) as error:
                await asyncio.sleep(self.on_lost(error, failures))
                failures += 1

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(RedisError, OSError):
                await self.beat()
            await asyncio.sleep(HEARTBEAT_INTERVAL)
