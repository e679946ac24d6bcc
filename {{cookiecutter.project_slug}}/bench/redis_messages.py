"""The Redis benchmark's stamped messages: how they are made, sized and counted.

Each message's text starts with its sender, its number and its send time (``CLOCK_MONOTONIC``,
the same clock in every process of the machine), so the receiver measures every latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from bench.common import now_us

ACROSS, WITHIN = "across", "within"  # the rooms: receiver on the other server, on the same one
QUIET = "quiet"  # the room of the one-message-at-a-time measurement
READY = "receiver ready"
SETUP_TIMEOUT = 30.0
TEXT_KEY = '"text":"'
# The head of every message text: sender (3 digits), number (7), send time in µs (16).
STAMP_LENGTH = 26


@dataclass(frozen=True)
class Load:
    """``messages`` from ``senders``, each with at most ``window`` of them in flight."""

    messages: int
    senders: int
    window: int


def stamped(sender: int, number: int, length: int) -> str:
    return f"{sender:03d}{number:07d}{now_us():016d}".ljust(length, ".")


def project_payload_length(text_bytes: int) -> int:
    """Characters the project publishes on the channel for one message of ``text_bytes``.

    The envelope is the room, who to skip and who only (both empty), then the frame as
    clients get it (see the package's ``redis_layout.py`` and ``protocol.py``).
    """
    frame = {"type": "message", "room": ACROSS, "from": "x" * 8, "text": "x" * text_bytes}
    encoded = json.dumps({**frame, "ts": 1_700_000_000_000}, separators=(",", ":"))
    return len(f"{ACROSS}\x00\x00\x00{encoded}")


@dataclass
class Tally:
    """What the receiver counted."""

    expected: int
    senders: int
    seen: bytearray = field(init=False)
    last: list[int] = field(init=False)
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    latencies: list[int] = field(default_factory=list)  # µs
    last_us: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ready_cpu: float = 0.0  # this process's CPU seconds when it said ready
    problem: str = ""

    def __post_init__(self) -> None:
        self.seen = bytearray(self.expected)
        self.last = [-1] * self.senders

    def say_ready(self) -> None:
        """Tell the benchmark (which reads this process's output) that it may send."""
        self.ready_cpu = time.process_time()
        print(READY, flush=True)

    def add(self, text: str, at: int, arrived: int) -> None:
        """Count the message whose stamp starts at ``text[at]``, arrived at ``arrived`` µs."""
        sender = int(text[at : at + 3])
        number = int(text[at + 3 : at + 10])
        if not (0 <= number < self.expected and 0 <= sender < self.senders):
            self.problem = f"a message that no sender sent: {text[at : at + STAMP_LENGTH]!r}"
            self.done.set()
            return
        if self.seen[number]:
            self.duplicates += 1
            return
        self.seen[number] = 1
        if number < self.last[sender]:
            self.out_of_order += 1
        self.last[sender] = number
        self.latencies.append(arrived - int(text[at + 10 : at + STAMP_LENGTH]))
        self.received += 1
        self.last_us = arrived
        self.last_progress = time.monotonic()
        if self.received == self.expected:
            self.done.set()
