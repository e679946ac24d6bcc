"""Hostile JSON, broken frames, malformed handshakes: each gets its error event, close code
or status from the real server, which keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket

import pytest
from websockets.sync.client import connect

from tests.support.live_server import (
    Server,
)
from tests.support.probes import (
    assert_healthy,
    handshake_status,
    wait_for_log,
)
from tests.support.raw_websocket import (
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    FrameReader,
    close_code,
    close_frame,
    frame,
    open_websocket,
    read_until_close,
    status_of,
)
from tests.support.ws_client import SERVER_EVENT, RoomsClient

pytestmark = pytest.mark.slow

ENDPOINTS = ["/ws", "/ws/echo"]


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
