"""The reference: the same messages through raw redis-py (asyncio), nothing else around them.

``PUBLISH`` runs in the benchmark process, ``SUBSCRIBE`` in the receiver process.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as redis

from bench.common import BenchError, now_us
from bench.redis_messages import SETUP_TIMEOUT, Load, Tally, project_payload_length, stamped
from bench.redis_senders import within


async def publish_to_redis(
    url: str, channel: str, load: Load, text_bytes: int, deadline: float
) -> int:
    """Publish every message with raw redis-py; return the first send's time.

    One connection per sender, each with at most ``load.window`` commands not yet answered
    (pipelined when that is more than one).
    """
    length = project_payload_length(text_bytes)
    clients = [redis.Redis.from_url(url, decode_responses=True) for _ in range(load.senders)]

    async def publish(index: int) -> None:
        client = clients[index]
        numbers = range(index, load.messages, load.senders)
        for start in range(0, len(numbers), load.window):
            if load.window == 1:
                number = numbers[start]
                receivers = [await client.publish(channel, stamped(index, number, length))]
            else:
                async with client.pipeline(transaction=False) as pipe:
                    for number in numbers[start : start + load.window]:
                        pipe.publish(channel, stamped(index, number, length))
                    receivers = await pipe.execute()
            if 0 in receivers:
                raise BenchError("a reference PUBLISH reached no subscriber")

    try:
        for client in clients:
            await client.ping()  # connected before the clock starts
        started = now_us()
        sending = asyncio.gather(*(publish(index) for index in range(load.senders)))
        await within(sending, deadline - time.monotonic(), "the reference messages to go out")
        return started
    finally:
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)


async def receive_redis(url: str, channel: str, tally: Tally) -> None:
    """Subscribe to ``channel``, say ready, and count its messages."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            while await pubsub.get_message(timeout=SETUP_TIMEOUT) is None:
                pass  # the subscription's confirmation
            tally.say_ready()
            async for message in pubsub.listen():
                arrived = now_us()
                if message["type"] == "message":
                    tally.add(message["data"], 0, arrived)
                    if tally.done.is_set():
                        return
    finally:
        await client.aclose()
