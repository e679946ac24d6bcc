"""The scale benchmark's client process: room members on many servers, a few of them senders.

``bench/redis_scale.py`` starts a few of these (a ``workloads.ClientPool``) and sends them
commands on stdin, one JSON object a line, as ``bench/loadclient.py``'s are (whose ``picows``
connections on uvloop these reuse):

- ``enter``: a connection per member given, to its server, joined to its room;
- ``phase``: from a start time on ``CLOCK_MONOTONIC`` on, the senders here send their rooms'
  stamped messages at their rates; every member counts what reaches it, and the answer comes
  once each has every message of the phase (or time is up), with every delivery's latency.

Each room has one sender, and a room's messages come through one Redis channel, so each
member gets them in order: a number it already had is a duplicate, one it skips is missing.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.common import at_most, now_us, run_on_uvloop
from bench.loadclient import MESSAGE_PREFIX, TEXT_KEY, Connection, LoadClient, serve_commands
from bench.redis_messages import STAMP_LENGTH, stamped

TEXT_BYTES = 32  # of each message text: its stamp, padded
MAX_PROBLEMS = 5  # kept per phase, the first ones


def room_name(room: int) -> str:
    return f"scale-{room}"


class Member(Connection):
    """One member of one room, on one server; it may also be the room's sender."""

    def __init__(self, client: ScaleClient, room: int, server: int) -> None:
        super().__init__(client)
        self.scale = client
        self.room = room
        self.server = server  # the index of the server process it is connected to
        self.joined = asyncio.Event()
        self.next = 0  # the number of the next message it should get from its room
        self.end = 0  # one past the last number of the current phase
        self.head = ('{"type":"message","room":"' + room_name(room) + '","text":"').encode()

    def on_message(self, payload: bytes) -> None:
        arrived = now_us()
        if payload.startswith(MESSAGE_PREFIX):  # the hot path: no JSON parsing
            at = payload.find(TEXT_KEY) + len(TEXT_KEY)
            self.scale.count(self, payload[at : at + STAMP_LENGTH], arrived)
        elif payload.startswith(b'{"type":"joined"'):
            self.joined.set()
        elif payload.startswith(b'{"type":"error"'):
            self.scale.problem(f"the server sent an error: {payload[:200]!r}")

    def on_lost(self) -> None:
        self.joined.set()

    def send_number(self, number: int) -> None:
        self.send_text(self.head + stamped(self.room, number, TEXT_BYTES).encode() + b'"}')


class ScaleClient(LoadClient):
    """This process's members and what they counted in the current phase."""

    def __init__(self) -> None:
        super().__init__()
        self.members: list[Member] = []
        self.senders: dict[int, Member] = {}  # room: its sender, for the rooms sent from here
        self.start_phase()

    def commands(self) -> dict[str, Callable[..., Awaitable[dict[str, Any]]]]:
        return {"enter": self.enter, "phase": self.phase, "close": self.close}

    def start_phase(self) -> None:
        self.outstanding = 0  # deliveries of the phase not yet counted as arrived or missing
        self.delivered: collections.Counter[int] = collections.Counter()  # server: deliveries
        self.latencies: list[int] = []  # µs
        self.duplicates = 0
        self.missing = 0
        self.problems: list[str] = []
        self.done = asyncio.Event()

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    def count(self, member: Member, stamp: bytes, arrived: int) -> None:
        """Count the message stamped ``stamp`` (see ``redis_messages.stamped``) at ``member``."""
        number = int(stamp[3:10])
        if int(stamp[:3]) != member.room or number >= member.end:
            self.problem(f"room {member.room} got a message it was not sent: {stamp!r}")
            return
        if number < member.next:
            self.duplicates += 1
            return
        if number > member.next:  # skipped: those will not come in order any more
            self.missing += number - member.next
            self.outstanding -= number - member.next
        member.next = number + 1
        self.delivered[member.server] += 1
        self.latencies.append(arrived - int(stamp[10:STAMP_LENGTH]))
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.done.set()

    async def enter(self, members: Sequence[tuple[str, int, int, bool]]) -> dict[str, Any]:
        """A connection per ``(url, room, server, sends)``, each joined to its room."""
        by_url: dict[str, list[tuple[int, int, bool]]] = {}
        for url, room, server, sends in members:
            by_url.setdefault(url, []).append((room, server, sends))

        async def join(connection: Connection) -> None:
            assert isinstance(connection, Member)  # noqa: S101 - made by maker() below
            self.members.append(connection)
            joining = {"type": "join", "room": room_name(connection.room)}
            connection.send_text(json.dumps(joining).encode())
            await connection.joined.wait()

        for url, specs in by_url.items():
            opening = self.open(f"{url}/ws", len(specs), self.maker(specs), join)
            await self.setup(asyncio.ensure_future(opening))
        return {"members": len(self.members)}

    def maker(self, specs: Sequence[tuple[int, int, bool]]) -> Callable[[], Member]:
        """What makes a member of each ``(room, server, sends)`` in turn."""
        pending = iter(specs)

        def make() -> Member:
            room, server, sends = next(pending)
            member = Member(self, room, server)
            if sends:
                self.senders[room] = member
            return member

        return make

    async def phase(
        self, start_us: int, rooms: Sequence[tuple[int, int, float, float]], end_us: int
    ) -> dict[str, Any]:
        """Send and count one phase: ``rooms[r]`` is room r's ``(first, count, rate, offset)``:
        its messages numbered from ``first``, ``count`` of them, ``rate`` a second, the first
        ``offset`` of a period after ``start_us`` (so that the rooms take turns); until
        ``end_us`` at the latest."""
        self.start_phase()
        for member in self.members:
            first, count, _, _ = rooms[member.room]
            if member.next != first:
                self.problem(f"room {member.room}: the phase starts at {first}, not {member.next}")
            member.end = first + count
            self.outstanding += count
        schedule = [
            (start_us + round((k + offset) / rate * 1e6), member, first + k)
            for room, member in self.senders.items()
            for first, count, rate, offset in [rooms[room]]
            for k in range(count)
        ]
        schedule.sort(key=lambda item: item[0])
        lag = [0]
        sending = asyncio.ensure_future(self.send(schedule, lag))
        if self.outstanding <= 0:
            self.done.set()
        waiting = asyncio.gather(sending, self.done.wait())
        if not await at_most((end_us - now_us()) / 1e6, waiting):
            self.problem(f"{self.outstanding} deliveries had not come in time")
        if self.lost:
            self.problem(f"{len(self.lost)} connections lost: {self.lost[0]}")
        return {
            "delivered": {str(server): n for server, n in self.delivered.items()},
            "latencies_us": self.latencies,
            "duplicates": self.duplicates,
            "missing": self.missing + max(self.outstanding, 0),
            "lag_ms": lag[0] / 1000,
            "problems": self.problems,
        }

    async def send(self, schedule: Sequence[tuple[int, Member, int]], lag: list[int]) -> None:
        """Each message at its time; ``lag[0]``: the latest it went out after its time (µs)."""
        for at, member, number in schedule:
            # Sleeps even when late, so that the arrivals are counted meanwhile.
            await asyncio.sleep(max(at - now_us(), 0) / 1e6)
            lag[0] = max(lag[0], now_us() - at)
            member.send_number(number)


if __name__ == "__main__":
    run_on_uvloop(serve_commands(ScaleClient))
