"""The reference server: the raw ``websockets`` library on uvloop, no framework, one process.

``/ws/echo`` sends every frame back; ``/ws`` keeps one set of members per room and broadcasts
each ``message`` to it, encoded once. It answers what the benchmark clients send (``join`` with
``joined``, ``ping`` with ``pong``) and nothing else; run it as
``python -m bench.reference --port PORT`` from the project root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from bench.common import HOST, run_on_uvloop


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


class Rooms:
    """Room name: its members."""

    def __init__(self) -> None:
        self.members: dict[str, set[ServerConnection]] = {}

    async def serve(self, ws: ServerConnection) -> None:
        joined: set[str] = set()
        try:
            async for frame in ws:
                event = json.loads(frame)
                kind, room = event.get("type"), event.get("room", "")
                if kind == "message" and room in joined:
                    message = {"type": "message", "room": room, "text": event["text"]}
                    broadcast(self.members[room], encode({**message, "ts": int(time.time() * 1e3)}))
                elif kind == "join":
                    members = self.members.setdefault(room, set())
                    members.add(ws)
                    joined.add(room)
                    await ws.send(encode({"type": "joined", "room": room, "members": len(members)}))
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
        except ConnectionClosed:
            pass  # benchmark clients drop their connections without a closing handshake
        finally:
            for room in joined:
                self.members[room].discard(ws)


async def echo(ws: ServerConnection) -> None:
    try:
        async for frame in ws:
            await ws.send(frame)
    except ConnectionClosed:
        pass


async def main(port: int) -> None:
    rooms = Rooms()

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        await (echo(ws) if path == "/ws/echo" else rooms.serve(ws))

    # Its defaults but compression, as every server of the benchmark; pings every 20 s.
    async with serve(handler, HOST, port, compression=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    run_on_uvloop(main(parser.parse_args().port))
