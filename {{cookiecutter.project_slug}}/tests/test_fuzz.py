"""A seeded fuzzer against the real server, on raw sockets.

Three kinds of case, drawn from one ``random.Random(seed)`` so that a failure
replays (``FUZZ_SEED``, ``FUZZ_CASES``):

- *frame* cases break RFC 6455 (reserved bits and opcodes, unmasked frames, long
  or fragmented control frames, bad close payloads, lying lengths, invalid
  UTF-8, oversize messages, flipped bits, garbage). Each ends its connection, so
  each gets a fresh one;
- *message* cases are valid frames (fragmented at random, pings in between)
  carrying hostile text: broken or odd JSON, wrong types, huge numbers, deep
  nesting, bad rooms, control characters. Many are pipelined on one connection;
  the connection must survive them all and answer every ``ping`` message;
- *http* cases send garbage or mangled handshakes before any websocket exists.

The server must never close with 1011, never answer 5xx, never log a traceback,
never stop, and must serve normally afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import string
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError

from {{ cookiecutter.package_name }} import protocol
from tests.support.live_server import Server, get, start_server, stop_server
from tests.support.raw_websocket import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameReader,
    close_code,
    frame,
    handshake_request,
    length_field,
    open_websocket,
    read_response_head,
    status_of,
)
from tests.support.ws_client import SERVER_EVENT, RoomsClient

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FUZZ_SEED", "6455"))
CASES = int(os.environ.get("FUZZ_CASES", "10000"))
TIME_LIMIT = float(os.environ.get("FUZZ_SECONDS", "60"))
MIN_CASES = min(CASES, 2000)  # fewer than this in TIME_LIMIT proves too little
MAX_MESSAGE_BYTES = 4096  # small, so that oversize cases are cheap
REACTION_TIMEOUT = 2.0  # for a server that must close on its own
SOCKET_TIMEOUT = 5.0
MAX_PROBLEMS = 20

ROOMS = ["lobby", "fuzz", "a", "Z-9_.:x", "x" * 64]
PROTOCOL_VIOLATION_CODES = {1002, 1007, 1009}


@dataclass
class Tally:
    """What the fuzzer did and what went wrong, for the final report."""

    cases: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    close_codes: Counter[int | None] = field(default_factory=Counter)
    http_statuses: Counter[int | None] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


class Closed(Exception):
    """The server closed the websocket: ``code`` from its close frame, None for a bare EOF."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


# --- Generators ------------------------------------------------------------------------


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


# --- Runners ---------------------------------------------------------------------------


def read_message(reader: FrameReader) -> tuple[int, bytes]:
    """The next whole data message, skipping control frames; :class:`Closed` at the end."""
    opcode, parts = None, b""
    while True:
        try:
            frame_opcode, fin, payload = reader.read()
        except OSError as error:  # EOF (ConnectionError) or reset
            raise Closed(None) from error
        if frame_opcode == OPCODE_CLOSE:
            raise Closed(close_code(payload))
        if frame_opcode >= OPCODE_CLOSE:
            continue
        opcode = frame_opcode if opcode is None else opcode
        parts += payload
        if fin:
            return opcode, parts


def expected_pongs(texts: list[str]) -> int:
    """How many ``pong`` events the texts ask for, by the server's own parser."""
    count = 0
    for text in texts:
        with contextlib.suppress(Exception):  # unparsable (deep nesting included): no pong
            count += isinstance(protocol.parse(text), protocol.Ping)
    return count


def run_rooms_batch(
    rng: random.Random, sock: socket.socket, reader: FrameReader, tally: Tally
) -> bool:
    """Pipeline hostile messages on ``/ws``, then a ping; read every answer. False if
    the connection did not survive (a problem is recorded)."""
    texts = [hostile_text(rng) for _ in range(rng.randint(1, 32))]
    texts = [text for text in texts if len(text.encode()) <= MAX_MESSAGE_BYTES]
    sock.sendall(b"".join(frames_of(rng, t.encode(), OPCODE_TEXT) for t in texts))
    sock.sendall(frame(b'{"type":"ping"}'))
    tally.cases["message"] += len(texts)
    pongs, wanted = 0, expected_pongs(texts) + 1
    while pongs < wanted:
        try:
            opcode, payload = read_message(reader)
            event = json.loads(payload)
            SERVER_EVENT.validate(event)
        except Closed as closed:
            tally.close_codes[closed.code] += 1
            tally.problem(f"/ws closed with {closed.code} after valid frames: {texts!r:.600}")
            return False
        except TimeoutError:
            tally.problem(f"/ws stopped answering after: {texts!r:.600}")
            return False
        except (ValueError, ValidationError) as error:
            tally.problem(f"/ws sent an event off the schema ({error!s:.200}) after {texts!r:.400}")
            return False
        if opcode != OPCODE_TEXT:
            tally.problem(f"/ws sent a frame with opcode {opcode}")
        pongs += event["type"] == "pong"
    return True


def run_echo_batch(
    rng: random.Random, sock: socket.socket, reader: FrameReader, tally: Tally
) -> bool:
    """Pipeline text and binary messages of every size on ``/ws/echo``; each must come back."""
    messages: list[tuple[int, bytes]] = []
    for _ in range(rng.randint(1, 16)):
        size = rng.choice([0, 1, 125, 126, 127, 1000, MAX_MESSAGE_BYTES])
        if rng.random() < 0.5:
            text = random_text(rng, size)
            messages.append((OPCODE_TEXT, text.encode()[:MAX_MESSAGE_BYTES]))
        else:
            messages.append((OPCODE_BINARY, rng.randbytes(size)))
    # Cutting UTF-8 at a byte limit can split a character: keep whole characters only.
    messages = [
        (op, data.decode(errors="ignore").encode() if op == OPCODE_TEXT else data)
        for op, data in messages
    ]
    sock.sendall(b"".join(frames_of(rng, data, op) for op, data in messages))
    tally.cases["echo"] += len(messages)
    for sent in messages:
        try:
            echoed = read_message(reader)
        except Closed as closed:
            tally.close_codes[closed.code] += 1
            tally.problem(f"/ws/echo closed with {closed.code} echoing {sent!r:.200}")
            return False
        except TimeoutError:
            tally.problem(f"/ws/echo stopped answering, sent {sent!r:.200}")
            return False
        if echoed != sent:
            tally.problem(f"/ws/echo answered {echoed!r:.100} to {sent!r:.100}")
    return True


def run_frame_case(server: Server, case: FrameCase, tally: Tally) -> None:
    tally.cases[f"frame:{case.name}"] += 1
    tally.connections += 1
    with open_websocket(server.host, server.port, case.path) as sock:
        sock.settimeout(REACTION_TIMEOUT if case.must_close else SOCKET_TIMEOUT)
        with contextlib.suppress(OSError):  # the server may close while we still send
            sock.sendall(case.data)
            if not case.must_close:
                sock.shutdown(socket.SHUT_WR)  # whatever is missing never comes
        reader = FrameReader(sock)
        while True:
            try:
                read_message(reader)
            except Closed as closed:
                code = closed.code
                break
            except TimeoutError:
                waited = "no close in time" if case.must_close else "still open after EOF"
                tally.problem(f"{case.name} on {case.path}: {waited}: {case.data!r:.200}")
                return
    tally.close_codes[code] += 1
    if code == 1011:
        tally.problem(f"{case.name} on {case.path}: closed with 1011: {case.data!r:.200}")
    elif (
        case.must_close
        and case.name != "good-close"
        and code not in (*PROTOCOL_VIOLATION_CODES, 1003, None)
    ):
        tally.problem(f"{case.name} on {case.path}: closed with {code}: {case.data!r:.200}")


def run_http_case(server: Server, data: bytes, tally: Tally) -> None:
    tally.cases["http"] += 1
    tally.connections += 1
    with socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        try:
            status: int | None = status_of(read_response_head(sock))
        except (ConnectionError, TimeoutError):
            status = None  # closed without an answer: fine for garbage
        except OSError:
            status = None
    tally.http_statuses[status] += 1
    if status is not None and status >= 500:
        tally.problem(f"HTTP {status} for {data!r:.200}")


def fuzz(server: Server, seed: int, cases: int, time_limit: float, tally: Tally) -> None:
    """Run up to ``cases`` cases, or as many as fit in ``time_limit`` seconds."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible on purpose, not for secrets
    deadline = time.monotonic() + time_limit
    sock: socket.socket | None = None
    reader: FrameReader | None = None
    path = "/ws"
    try:
        while sum(tally.cases.values()) < cases and time.monotonic() < deadline:
            # A batch holds about 15 message cases: this makes about a fifth of
            # all cases frame cases, each on a connection of its own.
            roll = rng.random()
            if roll < 0.75:
                run_frame_case(server, frame_case(rng), tally)
            elif roll < 0.8:
                run_http_case(server, http_case(rng, server.host, server.port), tally)
            else:
                if sock is None or reader is None or rng.random() < 0.05:
                    if sock is not None:
                        sock.close()
                    path = rng.choice(["/ws", "/ws", "/ws", "/ws/echo"])
                    sock = open_websocket(server.host, server.port, path)
                    sock.settimeout(SOCKET_TIMEOUT)
                    reader = FrameReader(sock)
                    tally.connections += 1
                run = run_rooms_batch if path == "/ws" else run_echo_batch
                if not run(rng, sock, reader, tally):
                    sock.close()
                    sock = reader = None
    finally:
        if sock is not None:
            sock.close()


def tracebacks(log: str, limit: int = 3) -> list[str]:
    """The first ``limit`` tracebacks in ``log``, each with the line that announced it."""
    lines = log.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("Traceback")][:limit]
    return ["\n".join(lines[max(0, n - 1) : n + 25]) for n in starts]


@pytest.fixture
def fuzz_server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Server]:
    env = {
        **server_env,
        "WORKERS": "1",
        "MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        # Message cases are pipelined: limits high enough that they are all acted on.
        "RATE_LIMIT": "1000000",
        "RATE_BURST": "1000000",
    }
    server = start_server(tmp_path, env)
    try:
        yield server
    finally:
        stop_server(server)


def test_fuzz(fuzz_server: Server) -> None:
    server, tally = fuzz_server, Tally()
    started = time.monotonic()
    fuzz(server, SEED, CASES, TIME_LIMIT, tally)
    elapsed = time.monotonic() - started
    tried = sum(tally.cases.values())
    print(
        f"\nfuzz seed {SEED}: {tried} cases in {elapsed:.1f} s ({tried / elapsed:.0f}/s) "
        f"over {tally.connections} connections\n"
        f"cases: {dict(sorted(tally.cases.items()))}\n"
        f"close codes: {dict(tally.close_codes)}\nHTTP statuses: {dict(tally.http_statuses)}"
    )
    assert not tally.problems, "\n".join(tally.problems)
    assert tally.close_codes[1011] == 0
    assert tried >= MIN_CASES, f"only {tried} cases in {TIME_LIMIT} s"

    assert server.process.poll() is None, server.log()[-3000:]
    assert not tracebacks(server.log()), "\n\n".join(tracebacks(server.log()))
    assert get(f"{server.http_url}/health")[0] == 200
    with RoomsClient(server.ws_url) as alice, RoomsClient(server.ws_url) as bob:
        alice.join("after-the-fuzz")
        bob.join("after-the-fuzz")
        alice.expect("presence")
        bob.send(type="message", room="after-the-fuzz", text="still here")
        assert alice.expect("message")["text"] == "still here"
        assert bob.expect("message")["text"] == "still here"
