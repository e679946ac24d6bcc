"""Attacks on the real server: foreign origins, missing tokens, huge or broken frames,
floods, too many connections, silent peers, malformed handshakes.

Each test stands for one guard and fails without it. Servers with unusual
settings are started per module and shared by the tests that need them.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tests.support.live_server import (
    Server,
    ServerStartError,
    get,
    start_server,
    stop_server,
    wait_for_health,
)
from tests.support.raw_websocket import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameReader,
    close_code,
    close_frame,
    frame,
    length_field,
    open_websocket,
    read_until_close,
    status_of,
    upgrade,
)
from tests.support.ws_client import SERVER_EVENT, RoomsClient

pytestmark = pytest.mark.slow

ENDPOINTS = ["/ws", "/ws/echo"]
ALLOWED_ORIGINS = "https://app.example.com,http://localhost:5173"
MAX_MESSAGE_BYTES = 1024
RATE_LIMIT = 10  # messages per second: a full bucket refills in RATE_BURST / RATE_LIMIT s
RATE_BURST = 5
PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5


@contextlib.contextmanager
def running(log_dir: Path, env: Mapping[str, str]) -> Iterator[Server]:
    # One worker: limits are per process, and every request meets the same one.
    server = start_server(log_dir, {"WORKERS": "1", **env})
    try:
        yield server
    finally:
        stop_server(server)


def handshake_status(
    server: Server, path: str, headers: Mapping[str, str | None] | None = None
) -> int:
    """The HTTP status the server answers an opening handshake with."""
    status, _, sock = upgrade(server.host, server.port, path, headers, timeout=5)
    sock.close()
    return status


def wait_for_log(server: Server, needle: str, offset: int = 0, timeout: float = 5) -> str:
    """The server's log from ``offset`` on, once it holds ``needle``."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.log()[offset:]
        if needle in log:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in the server's log:\n{log[-3000:]}")
        time.sleep(0.05)


def assert_healthy(server: Server, log_offset: int = 0) -> None:
    """The process runs, answers /health, serves a websocket, and logged no traceback."""
    assert server.process.poll() is None, server.log()[-3000:]
    wait_for_health(server, 200, timeout=5)
    with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as ws:
        ws.send("still serving?")
        assert ws.recv(timeout=5) == "still serving?"
    log = server.log()[log_offset:]
    assert "Traceback" not in log, log[-3000:]


def close_of(ws: Connection, timeout: float = 5) -> int | None:
    """Read until the server closes ``ws``; the close code it sent (None: no close frame)."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


# --- Origin ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin_server(
    tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]
) -> Iterator[Server]:
    env = {**server_env, "ALLOWED_ORIGINS": ALLOWED_ORIGINS}
    with running(tmp_path_factory.mktemp("origin"), env) as server:
        yield server


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "http://localhost:5173",
        "https://app.example.com:443",  # the default port, spelled out
        "HTTPS://App.Example.COM",
        "same-origin",
        None,  # no Origin: not a browser, so no page can be behind it
    ],
)
def test_allowed_origins_may_connect(origin_server: Server, path: str, origin: str | None) -> None:
    if origin == "same-origin":
        origin = f"http://{origin_server.host}:{origin_server.port}"
    assert handshake_status(origin_server, path, {"Origin": origin}) == 101


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",  # listed with https only
        "https://app.example.com.evil.example",
        "https://app.example.com:8443",
        "http://localhost:5174",
        "http://localhost:5173@evil.example",
        "null",  # sandboxed frames and file:// pages
        "other-port",
    ],
)
def test_foreign_origins_are_refused_before_the_upgrade(
    origin_server: Server, path: str, origin: str
) -> None:
    if origin == "other-port":
        origin = f"http://{origin_server.host}:{origin_server.port + 1}"
    assert handshake_status(origin_server, path, {"Origin": origin}) == 403


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("chat.example:80", "http://chat.example", 101),
        ("chat.example", "http://chat.example:80", 101),
        ("chat.example", "https://chat.example:443", 101),  # TLS ended at a proxy
        ("chat.example", "http://chat.example:8080", 403),
        ("chat.example", "http://other.example", 403),
        ("chat.example", "https://evil.example", 403),
    ],
)
def test_by_default_only_the_same_origin_may_connect(
    server: Server, host: str, origin: str, status: int
) -> None:
    assert handshake_status(server, "/ws", {"Host": host, "Origin": origin}) == status


def test_a_star_allows_any_origin(tmp_path: Path, server_env: dict[str, str]) -> None:
    with running(tmp_path, {**server_env, "ALLOWED_ORIGINS": "*"}) as server:
        for path in ENDPOINTS:
            assert handshake_status(server, path, {"Origin": "https://anywhere.example"}) == 101


# --- Token -----------------------------------------------------------------------------

TOKEN = f"tok-{secrets.token_hex(12)}"
WRONG_TOKEN = f"wrong-{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def auth_server(
    tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]
) -> Iterator[Server]:
    env = {**server_env, "AUTH_TOKEN": TOKEN}
    with running(tmp_path_factory.mktemp("auth"), env) as server:
        yield server


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("query", "authorization", "status"),
    [
        ("", None, 403),
        ("", f"Bearer {WRONG_TOKEN}", 403),
        ("", f"Basic {TOKEN}", 403),
        ("", "Bearer", 403),
        (f"?token={WRONG_TOKEN}", None, 403),
        ("?token=", None, 403),
        (f"?token={TOKEN[:-1]}", None, 403),  # a prefix of the token is no token
        ("", f"Bearer {TOKEN}", 101),
        (f"?token={TOKEN}", None, 101),
        (f"?room=lobby&token={TOKEN}", None, 101),
    ],
)
def test_a_handshake_needs_the_token(
    auth_server: Server, path: str, query: str, authorization: str | None, status: int
) -> None:
    assert handshake_status(auth_server, path + query, {"Authorization": authorization}) == status


def test_plain_http_needs_no_token(auth_server: Server) -> None:
    assert get(f"{auth_server.http_url}/health")[0] == 200
    assert get(f"{auth_server.http_url}/")[0] == 200


def test_tokens_never_reach_the_log(auth_server: Server) -> None:
    marker = secrets.token_hex(6)
    offset = len(auth_server.log())
    with connect(f"{auth_server.ws_url}/ws?probe={marker}-ok&token={TOKEN}", open_timeout=5) as ws:
        SERVER_EVENT.validate(json.loads(ws.recv(timeout=5)))
    path = f"/ws/echo?probe={marker}-refused&token={WRONG_TOKEN}"
    assert handshake_status(auth_server, path) == 403
    with connect(
        f"{auth_server.ws_url}/ws/echo?probe={marker}-header",
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
        open_timeout=5,
    ) as ws:
        ws.send("hi")
        ws.recv(timeout=5)
    # The lines of all three attempts are there, so the check below is not vacuous.
    for outcome in ("ok", "refused", "header"):
        log = wait_for_log(auth_server, f"probe={marker}-{outcome}", offset)
    assert TOKEN not in log
    assert WRONG_TOKEN not in log
    assert TOKEN not in auth_server.log()


# --- Hostile JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,  # deeper than Python's recursion limit
        '{"a":' * 3000 + "1" + "}" * 3000,
        '{"type": "message", "room": "ROOM", "text": "a\\ud800b"}',  # valid JSON, yet no character
        '{"type": "message", "room": "ROOM", "text": "\\udfff"}',
        '{"type": "join", "room": "ROOM", "\\ud800": "\\udc00"}',
        '{"type": "message", "room": "ROOM", "text": "' + "1" * 5000 + '"}',
        '{"type": 1' + "0" * 5000 + "}",  # more digits than int() takes
    ],
    ids=["deep-array", "deep-object", "surrogate", "lone-low", "surrogate-key", "long", "bigint"],
)
def test_hostile_json_is_answered_and_the_room_stays_connected(server: Server, text: str) -> None:
    room = f"hostile-{secrets.token_hex(4)}"
    with RoomsClient(server.ws_url) as alice, RoomsClient(server.ws_url) as bob:
        alice.join(room)
        bob.join(room)
        alice.expect("presence")
        offset = len(server.log())
        alice.ws.send(text.replace("ROOM", room))
        # An error, or the message itself (a join is answered by joined, as usual).
        assert alice.receive()["type"] in ("error", "message", "joined")
        for client in (alice, bob):  # both still connected, both still served
            client.send(type="ping")
            while (event := client.receive())["type"] != "pong":
                assert event["type"] in ("message", "presence"), event
        assert "Traceback" not in server.log()[offset:], server.log()[offset:]


# --- Message size ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def limits_server(
    tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]
) -> Iterator[Server]:
    env = {
        **server_env,
        "MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "RATE_LIMIT": str(RATE_LIMIT),
        "RATE_BURST": str(RATE_BURST),
    }
    with running(tmp_path_factory.mktemp("limits"), env) as server:
        yield server


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_a_message_over_the_limit_is_closed_with_1009(
    limits_server: Server, path: str, opcode: int
) -> None:
    sock = open_websocket(limits_server.host, limits_server.port, path)
    with sock:
        sock.sendall(frame(b"x" * (MAX_MESSAGE_BYTES + 1), opcode))
        assert read_until_close(sock) == 1009


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("claimed", [1 << 30, 1 << 62, MAX_MESSAGE_BYTES + 1])
def test_a_frame_header_claiming_too_much_is_closed_with_1009_before_its_payload(
    limits_server: Server, path: str, claimed: int
) -> None:
    offset = len(limits_server.log())
    sock = open_websocket(limits_server.host, limits_server.port, path)
    with sock:
        # Only the header and a few bytes: a server that waits for the payload,
        # or reads it before checking, never answers (the socket times out).
        sock.sendall(bytes([0x80 | OPCODE_TEXT]) + length_field(claimed) + b"mask" + b"x" * 10)
        sock.settimeout(5)
        assert read_until_close(sock) == 1009
    assert_healthy(limits_server, offset)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_fragmented_message_over_the_limit_is_closed_with_1009(
    limits_server: Server, path: str
) -> None:
    sock = open_websocket(limits_server.host, limits_server.port, path)
    with sock:
        # 100-byte fragments, each well under the limit, adding up to twice it.
        fragments = [frame(b"x" * 100, OPCODE_TEXT, fin=False)]
        fragments += [frame(b"x" * 100, OPCODE_CONTINUATION, fin=False) for _ in range(20)]
        sock.sendall(b"".join(fragments))
        sock.settimeout(5)
        assert read_until_close(sock) == 1009


def test_a_message_of_exactly_the_limit_is_echoed_whole_or_in_fragments(
    limits_server: Server,
) -> None:
    message = "é" * (MAX_MESSAGE_BYTES // 2)  # 2 bytes each in UTF-8: exactly the limit
    # No compression: the limit is on the message, and compressed frames would blur it.
    echo_url = f"{limits_server.ws_url}/ws/echo"
    with connect(echo_url, open_timeout=5, max_size=None, compression=None) as ws:
        ws.send(message)
        assert ws.recv(timeout=5) == message
        ws.send(iter([message[:100], message[100:300], message[300:]]))  # three fragments
        assert ws.recv(timeout=5) == message


# --- Rate limit ------------------------------------------------------------------------


def flood_once(server: Server, room: str, count: int) -> tuple[int, int | None, int]:
    """Join ``room`` and send ``count`` messages at once.

    Returns the number of ``rate_limited`` errors received, the close code the
    server sent (None if none) and the number of messages sent before it closed.
    """
    errors = sent = 0
    with connect(f"{server.ws_url}/ws", open_timeout=5) as ws:
        SERVER_EVENT.validate(json.loads(ws.recv(timeout=5)))
        with contextlib.suppress(ConnectionClosed):
            ws.send(json.dumps({"type": "join", "room": room}))
            for n in range(count):
                ws.send(json.dumps({"type": "message", "room": room, "text": f"flood {n}"}))
                sent += 1
        try:
            while True:
                event = json.loads(ws.recv(timeout=5))
                SERVER_EVENT.validate(event)
                if event["type"] == "error":
                    assert event["code"] == "rate_limited", event
                    errors += 1
        except ConnectionClosed as closed:
            return errors, closed.rcvd.code if closed.rcvd else None, sent
        except TimeoutError:
            return errors, None, sent  # never closed: the caller's assertion says so


def test_a_flood_is_refused_then_closed_while_the_room_keeps_its_service(
    limits_server: Server,
) -> None:
    room, flood_seconds, victim_interval = f"flood-{secrets.token_hex(4)}", 2.0, 0.3
    floods: list[tuple[int, int | None, int]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def flood() -> None:
        try:
            while not stop.is_set():
                floods.append(flood_once(limits_server, room, 50))
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    with RoomsClient(limits_server.ws_url) as victim:
        victim.join(room)
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        sent = round_trips = flood_messages_seen = 0
        slowest = 0.0
        deadline = time.monotonic() + flood_seconds
        while time.monotonic() < deadline:
            sent += 1
            started = time.monotonic()
            victim.send(type="message", room=room, text=f"victim {sent}")
            while True:  # until its own message comes back through the room
                event = victim.receive(timeout=5)
                assert event["type"] not in ("error", "left"), event
                if event["type"] == "message" and event["from"] == victim.id:
                    assert event["text"] == f"victim {sent}"
                    round_trips += 1
                    break
                if event["type"] == "message":
                    flood_messages_seen += 1
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(victim_interval)
        stop.set()
        flooder.join(timeout=30)
        victim.send(type="ping")
        while victim.receive()["type"] != "pong":
            pass

    assert not failures, failures
    flood_sent = sum(sent for _, _, sent in floods)
    print(
        f"\nduring {len(floods)} flooding connections ({flood_sent} messages sent), the victim "
        f"got {round_trips}/{sent} messages round-trip, slowest {slowest * 1000:.0f} ms; "
        f"{flood_messages_seen} flood messages reached it"
    )
    assert floods
    print(f"flooders' (rate_limited errors, close code): {Counter(f[:2] for f in floods)}")
    for errors, code, _ in floods:
        assert code == 1008
        assert 1 <= errors <= RATE_BURST
    assert round_trips == sent
    # Refused messages are not acted on: each flooder got about a bucket's worth through.
    assert flood_messages_seen <= len(floods) * (RATE_BURST + 5) < flood_sent


def test_a_refused_message_is_not_acted_on(limits_server: Server) -> None:
    rooms = [f"refused-{n}" for n in range(2 * RATE_BURST)]
    with RoomsClient(limits_server.ws_url) as client:
        for room in rooms:  # twice the bucket at once
            client.send(type="join", room=room)
        answers = [client.receive() for _ in rooms]  # one each, not always in order
        joined = {answer["room"] for answer in answers if answer["type"] == "joined"}
        errors = [answer for answer in answers if answer["type"] == "error"]
        assert {error["code"] for error in errors} == {"rate_limited"}, answers
        assert len(joined) + len(errors) == len(rooms), answers
        time.sleep(RATE_BURST / RATE_LIMIT + 0.5)  # a full bucket again
        for room in rooms:
            client.send(type="leave", room=room)
            answer = client.receive()
            if room in joined:
                assert answer == {"type": "left", "room": room}
            else:
                assert (answer["type"], answer["code"]) == ("error", "not_joined"), answer
            time.sleep(1.5 / RATE_LIMIT)  # within the rate


def test_bursts_with_pauses_between_them_are_never_closed(limits_server: Server) -> None:
    refusals = 0
    with RoomsClient(limits_server.ws_url) as client:
        for _ in range(4):
            for _ in range(2 * RATE_BURST):
                client.send(type="ping")
            answers = [client.receive() for _ in range(2 * RATE_BURST)]
            pongs = [a for a in answers if a["type"] == "pong"]
            errors = [a for a in answers if a["type"] == "error"]
            assert len(pongs) + len(errors) == len(answers), answers
            assert {a["code"] for a in errors} == {"rate_limited"}, answers
            assert len(pongs) >= RATE_BURST
            refusals += len(errors)
            time.sleep(RATE_BURST / RATE_LIMIT + 0.5)  # the bucket fills up again
        # More refusals in all than a flood may have before it is closed, yet still open.
        assert refusals > RATE_BURST
        client.send(type="ping")
        assert client.receive() == {"type": "pong"}


def test_echo_is_not_rate_limited(limits_server: Server) -> None:
    messages = [f"echo {n}" for n in range(20 * RATE_BURST)]
    with connect(f"{limits_server.ws_url}/ws/echo", open_timeout=5) as ws:
        for message in messages:
            ws.send(message)
        assert [ws.recv(timeout=5) for _ in messages] == messages


# --- Connection cap --------------------------------------------------------------------


@contextlib.contextmanager
def welcomed_connection(server: Server, timeout: float = 5) -> Iterator[Connection]:
    """A /ws connection that got its welcome, retrying while the server says 1013."""
    deadline = time.monotonic() + timeout
    while True:
        with connect(f"{server.ws_url}/ws", open_timeout=5) as ws:
            try:
                SERVER_EVENT.validate(json.loads(ws.recv(timeout=5)))
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            else:
                yield ws
                return
        assert code == 1013
        assert time.monotonic() < deadline, "still at the cap after a connection closed"
        time.sleep(0.1)


def test_connections_past_the_cap_are_closed_with_1013(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    with (
        running(tmp_path, {**server_env, "MAX_CONNECTIONS": "2"}) as server,
        RoomsClient(server.ws_url) as first,
    ):
        with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as second:
            second.send("in")
            assert second.recv(timeout=5) == "in"
            for path in ("/ws", "/ws/echo", "/ws"):  # accepted, then closed at once
                with connect(f"{server.ws_url}{path}", open_timeout=5) as extra:
                    assert close_of(extra) == 1013
        # One gone, so one more fits (once the server has noticed): the refused
        # ones left nothing counted behind...
        # ...and took nothing away either: the cap is still exactly two.
        with (
            welcomed_connection(server),
            connect(f"{server.ws_url}/ws/echo", open_timeout=5) as extra,
        ):
            assert close_of(extra) == 1013
        first.send(type="ping")
        assert first.receive() == {"type": "pong"}


# --- Keep-alive pings ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ping_server(
    tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]
) -> Iterator[Server]:
    env = {**server_env, "PING_INTERVAL": str(PING_INTERVAL), "PING_TIMEOUT": str(PING_TIMEOUT)}
    with running(tmp_path_factory.mktemp("pings"), env) as server:
        yield server


def test_a_peer_that_never_answers_pings_is_dropped_and_leaves_its_rooms(
    ping_server: Server,
) -> None:
    room = f"silent-{secrets.token_hex(4)}"
    with RoomsClient(ping_server.ws_url) as watcher:
        watcher.join(room)
        silent = open_websocket(ping_server.host, ping_server.port, "/ws")
        with silent:
            silent.sendall(frame(json.dumps({"type": "join", "room": room}).encode()))
            assert watcher.expect("presence")["members"] == 2
            pings, ended = 0, False
            silent.settimeout(1)
            reader = FrameReader(silent)
            deadline = time.monotonic() + 10 * (PING_INTERVAL + PING_TIMEOUT)
            while not ended and time.monotonic() < deadline:
                try:
                    opcode, _, _ = reader.read()  # read, but never answer
                except TimeoutError:
                    continue
                except OSError:
                    ended = True  # EOF or reset
                    break
                pings += opcode == OPCODE_PING
                ended = opcode == OPCODE_CLOSE
        assert pings >= 1, "the server never pinged"
        assert ended, "a peer that answered no ping is still connected"
        presence = watcher.expect("presence")
        assert (presence["event"], presence["members"]) == ("leave", 1)


def test_a_peer_that_answers_pings_stays_connected(ping_server: Server) -> None:
    # The websockets client answers pings by itself.
    with RoomsClient(ping_server.ws_url) as client:
        time.sleep(8 * PING_INTERVAL)
        client.send(type="ping")
        assert client.receive() == {"type": "pong"}


def test_a_raw_peer_that_answers_pings_stays_connected(ping_server: Server) -> None:
    sock = open_websocket(ping_server.host, ping_server.port, "/ws/echo")
    with sock:
        sock.settimeout(5)
        reader = FrameReader(sock)
        pings = 0
        while pings < 6:  # several rounds of ping and timeout
            opcode, _, payload = reader.read()
            assert opcode == OPCODE_PING, (opcode, payload)
            sock.sendall(frame(payload, OPCODE_PONG))
            pings += 1
        sock.sendall(frame(b"alive"))
        while (answer := reader.read())[0] == OPCODE_PING:
            sock.sendall(frame(answer[2], OPCODE_PONG))
        assert answer == (OPCODE_TEXT, True, b"alive")


# --- Close codes -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "before",
    [b"", frame(b"first of two", fin=False)],  # RFC 6455 5.4: a close may come between fragments
    ids=["alone", "mid-message"],
)
def test_a_client_close_is_answered_with_1000(server: Server, path: str, before: bytes) -> None:
    sock = open_websocket(server.host, server.port, path)
    with sock:
        sock.sendall(before + close_frame(1000, "bye ✓".encode()))
        sock.settimeout(5)
        reader = FrameReader(sock)
        while (answer := reader.read())[0] != OPCODE_CLOSE:
            pass
        payload = answer[2]
        assert close_code(payload) == 1000
        payload[2:].decode()  # a reason, if any, is UTF-8
        assert sock.recv(1) == b""  # and then the server closes the TCP connection


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "frames",
    [
        [frame(b"ab\xffcd")],
        [frame(b"\xed\xa0\x80")],  # a UTF-16 surrogate, which UTF-8 may not encode
        [frame(b"ends mid-character \xe2\x82")],
        [frame(b"ok so far", fin=False), frame(b"\xc0\xaf", OPCODE_CONTINUATION)],
        [frame(b"\xe2", fin=False), frame(b"\x82", OPCODE_CONTINUATION)],
        [close_frame(1000, b"\xff\xfe")],
    ],
    ids=["bad-byte", "surrogate", "truncated", "bad-fragment", "split-truncated", "close-reason"],
)
def test_invalid_utf8_is_closed_with_1007(server: Server, path: str, frames: list[bytes]) -> None:
    offset = len(server.log())
    sock = open_websocket(server.host, server.port, path)
    with sock:
        sock.sendall(b"".join(frames))
        sock.settimeout(5)
        assert read_until_close(sock) == 1007
    assert_healthy(server, offset)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "data",
    [
        frame(b"hi", rsv=4),
        frame(b"hi", rsv=1),  # compression was not negotiated
        frame(b"hi", masked=False),
        frame(b"hi", 0x3),
        frame(b"hi", 0xB),
        frame(b"x" * 126, OPCODE_PING),
        frame(b"hi", OPCODE_PING, fin=False),
        frame(b"hi", OPCODE_CONTINUATION),
        frame(b"one", fin=False) + frame(b"two"),
        frame(b"\x03", OPCODE_CLOSE),
        close_frame(1005),
        close_frame(999),
        close_frame(1016),
        close_frame(5000),
    ],
    ids=[
        "rsv3",
        "rsv1",
        "unmasked",
        "opcode-3",
        "opcode-11",
        "long-ping",
        "fragmented-ping",
        "lone-continuation",
        "unfinished-message",
        "one-byte-close",
        "close-1005",
        "close-999",
        "close-1016",
        "close-5000",
    ],
)
def test_protocol_violations_are_closed_with_1002(server: Server, path: str, data: bytes) -> None:
    offset = len(server.log())
    sock = open_websocket(server.host, server.port, path)
    with sock:
        sock.sendall(data)
        sock.settimeout(5)
        assert read_until_close(sock) == 1002
    assert_healthy(server, offset)


# --- Handshake -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "statuses"),
    [
        ({"Sec-WebSocket-Key": "not base64!!"}, {400}),
        ({"Sec-WebSocket-Key": "c2hvcnQ="}, {400}),  # 5 bytes, not 16
        ({"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, {400}),  # 21 bytes
        ({"Sec-WebSocket-Key": ""}, {400}),
        ({"Sec-WebSocket-Key": None}, {400}),
        ({"Sec-WebSocket-Version": "8"}, {400, 426}),
        ({"Sec-WebSocket-Version": "14"}, {400, 426}),
        ({"Sec-WebSocket-Version": "thirteen"}, {400, 426}),
        ({"Sec-WebSocket-Version": None}, {400, 426}),
    ],
)
@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_malformed_handshake_is_a_client_error(
    server: Server, path: str, headers: dict[str, str | None], statuses: set[int]
) -> None:
    offset = len(server.log())
    assert handshake_status(server, path, headers) in statuses
    assert_healthy(server, offset)


{% if cookiecutter.server == "asgi-uvicorn" -%}
# Falcon refuses a websocket to a route it lacks before accepting it, which the
# server can only answer with 403: ASGI has no other status for a denial.
UNKNOWN_PATH_STATUS = 403
{%- else -%}
UNKNOWN_PATH_STATUS = 404
{%- endif %}


@pytest.mark.parametrize("path", ["/nope", "/ws/nope", "/ws/echo/more", "/static/nope.js"])
def test_an_upgrade_to_an_unknown_path_is_refused_before_any_101(server: Server, path: str) -> None:
    assert handshake_status(server, path) == UNKNOWN_PATH_STATUS


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
        b"o\x11\\uv\xb1\xea.\xcb\x17LR\r\n\r\n",
        b"GET /ws HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /ws\r\n\r\n",
        b"\r\n\r\n",
    ],
    ids=["tls", "binary", "bad-version", "http-0.9", "empty"],
)
def test_garbage_instead_of_a_request_is_refused_quietly(
    server: Server, request_bytes: bytes
) -> None:
    offset = len(server.log())
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(65536):
                answer += chunk
    if answer.startswith(b"HTTP/"):
        assert 400 <= status_of(answer) < 500, answer[:200]
    assert_healthy(server, offset)


# --- Access log ------------------------------------------------------------------------


def test_a_websocket_session_shows_in_the_access_log(server: Server) -> None:
    marker = secrets.token_hex(6)
    offset = len(server.log())
    with RoomsClient(server.ws_url) as client:
        client.ws.close()
    with connect(f"{server.ws_url}/ws?session={marker}", open_timeout=5) as ws:
        SERVER_EVENT.validate(json.loads(ws.recv(timeout=5)))
    log = wait_for_log(server, f"/ws?session={marker}", offset)
    line = next(line for line in log.splitlines() if f"/ws?session={marker}" in line)
{%- if cookiecutter.server == "asgi-uvicorn" %}
    assert "[accepted]" in line, line
{%- else %}
    # gunicorn's access line, written when the session ends: the status is the 101.
    assert '" 101 ' in line, line
{%- endif %}


# --- Settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALLOWED_ORIGINS", "app.example.com"),
        ("ALLOWED_ORIGINS", "https://app.example.com/path"),
        ("MAX_MESSAGE_BYTES", "lots"),
        ("MAX_MESSAGE_BYTES", "0"),
        ("RATE_LIMIT", "-1"),
        ("RATE_LIMIT", "nan"),
        ("RATE_BURST", "0"),
        ("MAX_CONNECTIONS", "0"),
        ("PING_INTERVAL", "0"),
        ("PING_TIMEOUT", "soon"),
        ("DRAIN_TIMEOUT", "-5"),
    ],
)
def test_a_bad_limit_stops_start_up_with_one_error_line(
    tmp_path: Path, server_env: dict[str, str], name: str, value: str
) -> None:
    with pytest.raises(ServerStartError) as refused:
        stop_server(start_server(tmp_path, {**server_env, name: value}))
    log = str(refused.value)
    errors = [line for line in log.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, log
    assert name in errors[0], log
    assert "Traceback" not in log, log
