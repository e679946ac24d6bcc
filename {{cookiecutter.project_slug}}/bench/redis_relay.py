"""The floor: a relay that forwards room messages through Redis and does nothing else.

picows on uvloop for the websockets, redis-py with hiredis for Redis, the same
clients the benchmark's reference and load use. A text frame from a member is
published as it came, by one task that sends what queued meanwhile in one
pipeline; a frame from a room's channel is written to every member here at
once. No validation, no JSON but a join's, no presence, no limits, no outbox:
what any server that carries room messages between processes through Redis
with these libraries costs at the least, on the same machine in the same run.

``python -m bench.redis_relay --port P --redis URL`` serves websockets on any
path until it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

import redis.asyncio as redis
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from bench.common import HOST, run_on_uvloop

CHANNEL = "bench-relay:"
"""The channels' prefix: then the room (apart from the project's channels)."""


class Relay:
    """The rooms of this process, and the frames waiting to be published."""

    def __init__(self, url: str) -> None:
        self.publisher = redis.Redis.from_url(url)
        self.subscriber = redis.Redis.from_url(url)
        self.pubsub = self.subscriber.pubsub()
        self.members: dict[str, list[WSTransport]] = {}
        self.outgoing: list[tuple[str, bytes]] = []
        self.waiting = asyncio.Event()

    async def join(self, room: str, member: WSTransport) -> None:
        if room not in self.members:
            self.members[room] = []
            await self.pubsub.subscribe(CHANNEL + room)
        self.members[room].append(member)

    def publish(self, room: str, frame: bytes) -> None:
        self.outgoing.append((CHANNEL + room, frame))
        self.waiting.set()

    async def publishing(self) -> None:
        """Publish what waits, in the order it came, one pipeline at a time."""
        while True:
            await self.waiting.wait()
            self.waiting.clear()
            outgoing, self.outgoing = self.outgoing, []
            async with self.publisher.pipeline(transaction=False) as pipe:
                for channel, frame in outgoing:
                    pipe.publish(channel, frame)
                await pipe.execute()

    async def listening(self) -> None:
        """Hand every frame of a room's channel to the room's members here."""
        await self.pubsub.subscribe(CHANNEL)  # connected before the first join
        while True:
            message = await self.pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                room = message["channel"][len(CHANNEL) :].decode()
                for member in self.members.get(room, ()):
                    member.send(WSMsgType.TEXT, message["data"])


class Member(WSListener):
    """One connection: its first text frame is a join, every later one a message."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.room = ""
        self.joining: asyncio.Future[None] | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            if self.room:
                self.relay.publish(self.room, frame.get_payload_as_bytes())
            else:
                self.room = str(json.loads(frame.get_payload_as_bytes())["room"])
                self.joining = asyncio.ensure_future(self.join(transport))
        elif frame.msg_type == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    async def join(self, transport: WSTransport) -> None:
        await self.relay.join(self.room, transport)
        joined = {"type": "joined", "room": self.room}
        transport.send(WSMsgType.TEXT, json.dumps(joined, separators=(",", ":")).encode())


async def serve(port: int, url: str) -> None:
    relay = Relay(url)

    def member(_: WSUpgradeRequest) -> Member:
        return Member(relay)

    server = await ws_create_server(member, HOST, port)
    await asyncio.gather(server.serve_forever(), relay.publishing(), relay.listening())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The Redis benchmark's floor: a bare relay.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="Redis URL")
    options = parser.parse_args(argv)
    run_on_uvloop(serve(options.port, options.redis))


if __name__ == "__main__":
    main()
