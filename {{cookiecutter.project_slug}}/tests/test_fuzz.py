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
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jsonschema import ValidationError

from {{ cookiecutter.package_name }} import protocol
from tests.support.fuzz_cases import (
    MAX_MESSAGE_BYTES,
    FrameCase,
    frame_case,
    frames_of,
    hostile_text,
    http_case,
    random_text,
)
from tests.support.live_server import Server, get, start_server, stop_server
from tests.support.raw_websocket import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_TEXT,
    FrameReader,
    close_code,
    frame,
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
REACTION_TIMEOUT = 2.0  # for a server that must close on its own
SOCKET_TIMEOUT = 5.0
MAX_PROBLEMS = 20

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
