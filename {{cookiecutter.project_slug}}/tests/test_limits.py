"""The real server's limits: message size (1009), message rate, the connection cap (1013).

Each test stands for one limit and fails without it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections import Counter

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.live_server import (
    Server,
    ServerWith,
)
from tests.support.probes import (
    assert_healthy,
    close_of,
    welcomed_connection,
)
from tests.support.raw_websocket import (
    OPCODE_BINARY,
    OPCODE_CONTINUATION,
    OPCODE_TEXT,
    frame,
    length_field,
    open_websocket,
    read_until_close,
)
from tests.support.ws_client import SERVER_EVENT, RoomsClient

pytestmark = pytest.mark.slow

ENDPOINTS = ["/ws", "/ws/echo"]
MAX_MESSAGE_BYTES = 1024
RATE_LIMIT = 10  # messages per second: a full bucket refills in RATE_BURST / RATE_LIMIT s
RATE_BURST = 5


@pytest.fixture(scope="module")
def limits_server(server_with: ServerWith) -> Server:
    return server_with(
        {
            "MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
            "RATE_LIMIT": str(RATE_LIMIT),
            "RATE_BURST": str(RATE_BURST),
        }
    )


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


def test_connections_past_the_cap_are_closed_with_1013(server_with: ServerWith) -> None:
    server = server_with({"MAX_CONNECTIONS": "2"})
    with RoomsClient(server.ws_url) as first:
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
