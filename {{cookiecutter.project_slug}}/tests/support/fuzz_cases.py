"""The fuzzer's cases: frames, messages and HTTP requests drawn from a seeded ``random.Random``.

Pure: no I/O. ``test_fuzz.py`` sends them to a real server.
"""

from __future__ import annotations

import json
import random
import string
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.raw_websocket import (
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    frame,
    handshake_request,
    length_field,
)

ROOMS = ["lobby", "fuzz", "a", "Z-9_.:x", "x" * 64]
MAX_MESSAGE_BYTES = 4096  # small, so that oversize cases are cheap


def random_text(rng: random.Random, size: int) -> str:
    """Text from every plane: ASCII, control characters, accents, CJK, emoji (no surrogates)."""
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0x80, 0x2FF), (0x4E00, 0x4FFF), (0x1F600, 0x1F64F)]
    chars = []
    for _ in range(size):
        low, high = rng.choice(ranges)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value of any type."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**31, 2**63, -(2**64), 10**300, rng.randint(-999, 999)])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, 5e-324, rng.random()])
    if kind == 4:
        return random_text(rng, rng.randint(0, 40))
    if kind == 5:
        return rng.choice([*ROOMS, "", " ", "x" * 65, "é", "a/b", "a b", "\x00"])
    if kind == 6:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["type", "room", "text", "id", "members", random_text(rng, 5)]
    return {rng.choice(keys): json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def room_name(rng: random.Random) -> Any:
    if rng.random() < 0.7:
        return rng.choice(ROOMS)
    return json_value(rng)


def protocol_message(rng: random.Random) -> dict[str, Any]:
    """A join, leave, message or ping, usually well-formed."""
    kind = rng.choice(["join", "join", "leave", "message", "message", "ping"])
    message: dict[str, Any] = {"type": kind}
    if kind != "ping":
        message["room"] = room_name(rng)
    if kind == "message":
        size = rng.choice([1, 5, 50, 4096, 4097, 0])
        message["text"] = random_text(rng, size) if rng.random() < 0.8 else json_value(rng)
    if rng.random() < 0.1:
        message[random_text(rng, 4)] = json_value(rng)  # extra fields are ignored
    return message


def mutate(rng: random.Random, text: str) -> str:
    """``text`` with a few characters inserted, deleted or replaced."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(chars) + 1)
        choice = rng.randrange(3)
        if choice == 0:
            chars.insert(at, rng.choice('{}[]":,\\ 0123456789eE+-.ntfu\x00\x7f'))
        elif choice == 1 and at < len(chars):
            del chars[at]
        elif at < len(chars):
            chars[at] = random_text(rng, 1)
    return "".join(chars)


def hostile_text(rng: random.Random) -> str:
    """One text message for ``/ws``: valid UTF-8, anything but well-behaved."""
    roll = rng.random()
    if roll < 0.35:
        return json.dumps(protocol_message(rng), ensure_ascii=rng.random() < 0.5)
    if roll < 0.5:
        wrong = {"type": json_value(rng), "room": json_value(rng), "text": json_value(rng)}
        return json.dumps(wrong)
    if roll < 0.58:
        return json.dumps({"type": random_text(rng, rng.randint(0, 80)), "room": "lobby"})
    if roll < 0.66:
        return random_text(rng, rng.randint(0, 200))
    if roll < 0.72:
        depth = rng.choice([50, 999, 1001, 2000, MAX_MESSAGE_BYTES // 2 - 10])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        return opener * depth + "1" + closer * depth * rng.randint(0, 1)
    if roll < 0.78:
        number = rng.choice(["1" * rng.randint(300, 4000), "1e999", "-1e999", "NaN", "-Infinity"])
        return rng.choice(
            [number, '{"type": ' + number + "}", '{"type": "join", "room": ' + number + "}"]
        )
    if roll < 0.86:
        escape = rng.choice(["\\ud800", "\\udfff", "\\u0000", "\\ud83d\\ude00", "\\uffff"])
        template = rng.choice(
            [
                '{"type": "message", "room": "lobby", "text": "a%sb"}',
                '{"type": "join", "room": "lob%sby"}',
                '{"type": "%s"}',
                '{"type": "join", "room": "lobby", "%s": 1}',
            ]
        )
        return template % escape
    if roll < 0.9:
        return rng.choice(["", " ", "null", "[]", "{}", '"ping"', "\ufeff{}", '{"type":"ping"'])
    return mutate(rng, json.dumps(protocol_message(rng)))


def frames_of(rng: random.Random, payload: bytes, opcode: int) -> bytes:
    """One valid message as frames: whole, or split at random bytes (mid-character
    too) with pings in between, which a server must answer without losing the message."""
    if rng.random() < 0.7 or len(payload) < 2:
        return frame(payload, opcode)
    cuts = sorted(rng.sample(range(1, len(payload)), min(len(payload) - 1, rng.randint(1, 5))))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    # The websockets library counts a ping between fragments against the message
    # size limit: no pings into a message that would reach it that way.
    pings = len(payload) + 125 <= MAX_MESSAGE_BYTES
    data = b""
    for n, piece in enumerate(pieces):
        data += frame(piece, opcode if n == 0 else OPCODE_CONTINUATION, fin=n == len(pieces) - 1)
        if pings and rng.random() < 0.3:
            data += frame(rng.randbytes(rng.randint(0, 125)), OPCODE_PING)
    return data


def invalid_utf8(rng: random.Random) -> bytes:
    good = random_text(rng, rng.randint(0, 20)).encode()
    bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"])
    return good + bad + random_text(rng, rng.randint(0, 5)).encode()


@dataclass(frozen=True)
class FrameCase:
    """Bytes for a fresh connection. ``must_close``: RFC 6455 (or this server's limits)
    require the server to close on its own; otherwise the client half-closes at once."""

    name: str
    path: str
    data: bytes
    must_close: bool


def frame_case(rng: random.Random) -> FrameCase:
    path = rng.choice(["/ws", "/ws", "/ws/echo"])
    text = json.dumps(protocol_message(rng)).encode()
    control = rng.choice([OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
    bad_code = rng.choice([0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
    cases: list[tuple[str, Callable[[], bytes], bool]] = [
        ("reserved-bits", lambda: frame(text, rsv=rng.randint(1, 7)), True),
        ("reserved-opcode", lambda: frame(text, rng.choice([3, 4, 5, 6, 7, *range(11, 16)])), True),
        (
            "unmasked",
            lambda: frame(text, rng.choice([OPCODE_TEXT, OPCODE_PING]), masked=False),
            True,
        ),
        ("long-control", lambda: frame(b"x" * rng.randint(126, 300), control), True),
        ("fragmented-control", lambda: frame(b"x", control, fin=False), True),
        (
            "lone-continuation",
            lambda: frame(text, OPCODE_CONTINUATION, fin=rng.random() < 0.5),
            True,
        ),
        ("interrupted-message", lambda: frame(text[:3], fin=False) + frame(text), True),
        ("one-byte-close", lambda: frame(b"\x03", OPCODE_CLOSE), True),
        ("bad-close-code", lambda: frame(struct.pack("!H", bad_code), OPCODE_CLOSE), True),
        (
            "bad-close-reason",
            lambda: frame(struct.pack("!H", 1000) + invalid_utf8(rng)[:100], OPCODE_CLOSE),
            True,
        ),
        (
            "good-close",
            lambda: frame(
                struct.pack("!H", rng.choice([1000, 1001, 3000, 4999])) + b"bye", OPCODE_CLOSE
            ),
            True,
        ),
        ("invalid-utf8", lambda: frames_of(rng, invalid_utf8(rng), OPCODE_TEXT), True),
        ("oversize", lambda: frames_of(rng, b"x" * (MAX_MESSAGE_BYTES + 1), OPCODE_TEXT), True),
        (
            "huge-claim",
            lambda: bytes([0x81]) + length_field(rng.choice([1 << 20, 1 << 31, 1 << 63])) + b"mask",
            True,
        ),
        ("truncated-header", lambda: frame(text)[: rng.randint(1, 5)], False),
        (
            "long-length-lie",
            lambda: frame(text, length=len(text) + rng.randint(1, MAX_MESSAGE_BYTES)),
            False,
        ),
        ("short-length-lie", lambda: frame(text, length=rng.randrange(len(text))), False),
        (
            "non-minimal-length",
            lambda: bytes([0x81, 0xFE]) + struct.pack("!H", len(text)) + frame(text)[6:],
            False,
        ),
        ("bit-flips", lambda: flip_bits(rng, frames_of(rng, text, OPCODE_TEXT)), False),
        ("garbage", lambda: rng.randbytes(rng.randint(1, 300)), False),
    ]
    if path == "/ws":
        cases.append(("binary-on-rooms", lambda: frame(rng.randbytes(rng.randint(0, 50)), 2), True))
    name, make, must_close = rng.choice(cases)
    return FrameCase(name, path, make(), must_close)


def flip_bits(rng: random.Random, data: bytes) -> bytes:
    mutable = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        mutable[rng.randrange(len(mutable))] ^= 1 << rng.randrange(8)
    return bytes(mutable)


def http_case(rng: random.Random, host: str, port: int) -> bytes:
    """Garbage where a request belongs, or a handshake with bits flipped."""
    roll = rng.random()
    if roll < 0.3:
        return rng.randbytes(rng.randint(1, 500))
    if roll < 0.5:
        line = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 200)))
        return (line + "\r\n\r\n").encode()
    request = handshake_request(host, port, rng.choice(["/ws", "/ws/echo", "/health"]))
    return flip_bits(rng, request) if roll < 0.9 else request[: rng.randrange(len(request))]
