"""What both peers do on ``/ws``, written once: the benchmark's one-room protocol.

``join`` is answered with ``joined``, ``ping`` with ``pong``; a ``message`` is encoded once
and sent to every member in turn, awaiting each send, as the frameworks' docs broadcast.
``send`` is the framework's own "send this text to that socket" coroutine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Hashable


def encode(event: dict[str, object]) -> str:
    return json.dumps(event, separators=(",", ":"))  # compact, as the other servers send


class Rooms:
    """Room name: its members; one instance per app."""

    def __init__(self, send: Callable[[Hashable, str], Awaitable[object]]) -> None:
        self.members: dict[str, set[Hashable]] = {}
        self.send = send

    async def handle(self, member: Hashable, joined: set[str], frame: str) -> None:
        """Act on one text ``frame`` of ``member``, who is in the rooms ``joined``."""
        event = json.loads(frame)
        kind, room = event.get("type"), event.get("room", "")
        if kind == "message" and room in joined:
            now = int(time.time() * 1000)
            text = encode({"type": "message", "room": room, "text": event["text"], "ts": now})
            for other in list(self.members[room]):
                await self.send(other, text)
        elif kind == "join":
            self.members.setdefault(room, set()).add(member)
            joined.add(room)
            count = len(self.members[room])
            await self.send(member, encode({"type": "joined", "room": room, "members": count}))
        elif kind == "ping":
            await self.send(member, '{"type":"pong"}')

    def leave(self, member: Hashable, joined: set[str]) -> None:
        for room in joined:
            self.members[room].discard(member)
