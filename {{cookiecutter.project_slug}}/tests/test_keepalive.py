"""The real server's pings: a peer that stops answering is dropped, one that answers stays."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from tests.support.live_server import (
    Server,
    ServerWith,
)
from tests.support.raw_websocket import (
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameReader,
    frame,
    open_websocket,
)
from tests.support.ws_client import RoomsClient

pytestmark = pytest.mark.slow

PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def ping_server(server_with: ServerWith) -> Server:
    return server_with({"PING_INTERVAL": str(PING_INTERVAL), "PING_TIMEOUT": str(PING_TIMEOUT)})


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
