"""The Redis broker under asyncio: room frames and member counts shared by every process.

Started and stopped with the app (falcon calls :meth:`RedisBroker.process_startup`
and :meth:`RedisBroker.process_shutdown` from the ASGI lifespan). Effects run
in one task, in the order they were submitted; a listener task keeps the
subscription alive across Redis restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

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
from .rooms import Close, Deliver, Effect, Hub, Publish, Recount

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 2.0


class RedisBroker(Subscriber):
    """Carries out the hub's effects through Redis pub/sub (see ``redis_pubsub.py``)."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        super().__init__(hub, url, prefix)
        self._redis = redis.Redis.from_url(url, **client_options())
        self._recount_script = self._redis.register_script(RECOUNT_SCRIPT)
        self._jobs: asyncio.Queue[list[Effect]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def submit(self, effects: list[Effect]) -> None:
        if effects:
            self._jobs.put_nowait(effects)

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._work()),
            asyncio.create_task(self._beat()),
        ]

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        # Let the departures of the last connections reach the other processes.
        drained = asyncio.ensure_future(self._jobs.join())
        await asyncio.wait({drained}, timeout=DRAIN_TIMEOUT)
        drained.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            async with self._redis.pipeline() as pipe:
                pipe.delete(self.names.heartbeat)
                for room in self.hub.local_rooms():
                    pipe.hdel(self.names.room(room), self.names.process_id)
                await pipe.execute()
        await self._redis.aclose()

    async def _work(self) -> None:
        while True:
            effects = await self._jobs.get()
            try:
                await self._run(effects)
            except Exception:
                log.exception("effects failed: %r", effects)
            finally:
                self._jobs.task_done()

    async def _run(self, effects: list[Effect]) -> None:
        """Like :func:`broker.run`, with Redis round trips awaited."""
        pending = deque(effects)
        while pending:
            effect = pending.popleft()
            if isinstance(effect, Deliver):
                pending.extend(self.hub.deliver(effect.connection_id, effect.frame))
            elif isinstance(effect, Close):
                pending.extend(self.hub.close(effect.connection_id, effect.code, effect.reason))
            else:
                pending.extend(await self._remote(effect))

    async def _remote(self, effect: Publish | Recount) -> list[Effect]:
        """Publish, or recount and announce, through Redis; locally while it is unreachable."""
        if self.subscribed:
            try:
                while (held := self.next_held()) is not None:
                    await self._recount(held)
                    self.sent(held)
                if isinstance(effect, Publish):
                    await self._redis.publish(self.names.channel, encode_envelope(effect))
                else:
                    await self._recount(effect)
                return []  # this process's members get it back through the subscription
            except RedisError as error:
                self.on_failed(error)
        return self.carry_locally(effect)

    async def _recount(self, recount: Recount) -> None:
        await self._recount_script(
            keys=[self.names.room(recount.room)], args=recount_arguments(self.names, recount)
        )

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.names.channel)
                    self.check_subscribed(await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT))
                    await self._register()
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

    async def _register(self) -> None:
        """Announce this process and its members again: Redis may have restarted empty."""
        async with self._redis.pipeline() as pipe:
            pipe.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)
            for room, members in self.hub.local_rooms().items():
                pipe.hset(self.names.room(room), self.names.process_id, members)
            await pipe.execute()

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.set(self.names.heartbeat, 1, ex=HEARTBEAT_TTL)
            await asyncio.sleep(HEARTBEAT_INTERVAL)
