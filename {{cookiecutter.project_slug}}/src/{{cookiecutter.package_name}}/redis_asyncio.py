"""The Redis broker under asyncio: room frames and member counts shared by every process.

Started and stopped with the ASGI lifespan (``asgi.BrokerLifespan``). Effects run
in one task, in the order they were submitted; a listener task keeps the
subscription alive across Redis restarts. What the broker does is in
``redis_pubsub.py``; this module adds the asyncio client, tasks and waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as redis
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
        self._jobs: asyncio.Queue[list[Effect]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

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
            async with self._redis.pipeline() as pipe:
                self.queue_deregistration(pipe)
                await pipe.execute()
        await self._redis.aclose()

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
                log.exception("effects failed: %r", effects)
            finally:
                self._jobs.task_done()

    async def _send(self, command: Remote) -> RedisError | None:
        try:
            if isinstance(command, Publish):
                await self._redis.publish(self.names.channel, encode_envelope(command))
            else:
                keys = [self.names.room(command.room)]
                await self._recount_script(keys=keys, args=recount_arguments(self.names, command))
        except RedisError as error:
            return error
        return None

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.names.channel)
                    self.check_subscribed(await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))
                    async with self._redis.pipeline() as pipe:
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
                await self._redis.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)
            await asyncio.sleep(HEARTBEAT_INTERVAL)
