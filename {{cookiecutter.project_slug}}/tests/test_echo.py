"""``/ws/echo`` on the real server, through a real websocket client."""

import itertools
import socket
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.support.live_server import Server
from tests.support.raw_websocket import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    close_code,
    close_frame,
    frame,
    open_websocket,
    read_frame,
)

# Client frames of every kind a peer may send, and the frames each must bring back.
FRAMES_AND_ANSWERS = [
    (frame(b"a"), (OPCODE_TEXT, b"a")),
    (frame(b"\x00\x01", OPCODE_BINARY), (OPCODE_BINARY, b"\x00\x01")),
    (frame(b"p", OPCODE_PING), (OPCODE_PONG, b"p")),
    (
        frame(b"hel", fin=False) + frame(b"p", OPCODE_PING) + frame(b"lo", OPCODE_CONTINUATION),
        (OPCODE_PONG, b"p"),
    ),
    (b"", (OPCODE_TEXT, b"hello")),  # the fragmented message, once whole
    (frame(b"y" * 126), (OPCODE_TEXT, b"y" * 126)),  # a 16-bit length
    (frame(bytes(range(256)) * 20, OPCODE_BINARY), (OPCODE_BINARY, bytes(range(256)) * 20)),
    (frame("é✓".encode() * 40), (OPCODE_TEXT, "é✓".encode() * 40)),
    (frame(b""), (OPCODE_TEXT, b"")),
]


@pytest.mark.parametrize(
    "message",
    [
        "hello",
        "",
        "ünïcødé ✓ 🚀",
        "x" * 60_000,
        b"\x00\x01\xfe\xff",
        b"",
        bytes(range(256)) * 200,
    ],
    ids=["text", "empty-text", "unicode", "large-text", "binary", "empty-binary", "large-binary"],
)
def test_echoes_text_and_binary_unchanged(server: Server, message: str | bytes) -> None:
    with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as ws:
        ws.send(message)
        reply = ws.recv(timeout=5)
    assert type(reply) is type(message)
    assert reply == message


def test_echoes_many_messages_in_order(server: Server) -> None:
    messages = [f"message {i}" for i in range(200)]
    with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as ws:
        for message in messages:
            ws.send(message)
        replies = [ws.recv(timeout=5) for _ in messages]
    assert replies == messages


def test_clients_are_independent(server: Server) -> None:
    with (
        connect(f"{server.ws_url}/ws/echo", open_timeout=5) as first,
        connect(f"{server.ws_url}/ws/echo", open_timeout=5) as second,
    ):
        first.send("to first")
        second.send("to second")
        assert second.recv(timeout=5) == "to second"
        assert first.recv(timeout=5) == "to first"


def test_server_keeps_serving_after_a_client_drops(server: Server) -> None:
    with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as dropped:
        dropped.send("bye")
        dropped.socket.shutdown(socket.SHUT_RDWR)  # vanish without a close frame
    with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as ws:
        ws.send("still here?")
        assert ws.recv(timeout=5) == "still here?"


def cut(data: bytes, chunking: str) -> Iterator[bytes]:
    if chunking == "one write":
        yield data
    elif chunking == "byte by byte":
        yield from (data[i : i + 1] for i in range(len(data)))
    else:  # uneven pieces, so that cuts fall inside every part of a frame
        at = 0
        for size in itertools.cycle((1, 2, 3, 5, 7, 11, 13, 64)):
            if at >= len(data):
                return
            yield data[at : at + size]
            at += size


@pytest.mark.parametrize("chunking", ["one write", "byte by byte", "uneven pieces"])
def test_frames_are_answered_alike_however_the_stream_is_cut(server: Server, chunking: str) -> None:
    """Whole frames, fragments with a ping between, 7- and 16-bit lengths and a close,
    in one write or cut anywhere: the same answers, the echoes in order. (Pongs
    come from the protocol layer, so they may pass echoes, which come from the app.
    A server that reads whole frames on a short path of its own and gives the rest
    to a library's parser is tested here where the two meet.)"""
    sock = open_websocket(server.host, server.port, "/ws/echo")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(10)
    with sock:
        for piece in cut(b"".join(data for data, _ in FRAMES_AND_ANSWERS), chunking):
            sock.sendall(piece)
        answers = [read_frame(sock) for _ in FRAMES_AND_ANSWERS]
        for piece in cut(close_frame(1000), chunking):
            sock.sendall(piece)
        answers.append(read_frame(sock))
    expected = [answer for _, answer in FRAMES_AND_ANSWERS]
    assert [a for a in answers if a[0] == OPCODE_PONG] == [(OPCODE_PONG, b"p")] * 2
    assert [a for a in answers if a[0] in (OPCODE_TEXT, OPCODE_BINARY)] == [
        a for a in expected if a[0] in (OPCODE_TEXT, OPCODE_BINARY)
    ]
    assert answers[-1][0] == OPCODE_CLOSE
    assert close_code(answers[-1][1]) == 1000


@pytest.mark.parametrize("path", ["/ws", "/ws/echo"])
def test_permessage_deflate_is_declined(server: Server, path: str) -> None:
    """Offered compression (browsers always offer it) is not taken: small frames barely
    shrink, and a broadcast would be compressed again for every member."""
    with connect(f"{server.ws_url}{path}", open_timeout=5, compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv(timeout=5)
