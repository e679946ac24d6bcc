"""``/ws/echo`` on the real server, through a real websocket client."""

import socket

import pytest
from live_server import Server
from websockets.sync.client import connect


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


@pytest.mark.parametrize("path", ["/ws", "/ws/echo"])
def test_permessage_deflate_is_declined(server: Server, path: str) -> None:
    """Offered compression (browsers always offer it) is not taken: small frames barely
    shrink, and a broadcast would be compressed again for every member."""
    with connect(f"{server.ws_url}{path}", open_timeout=5, compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv(timeout=5)
