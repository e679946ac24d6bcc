"""The WSGI variant's :class:`WebSocket` on a socket pair: what reaches the wire when a
write is cut short.

A sender greenlet killed in the middle of a frame (the hub dropping a slow reader does
that) leaves part of the frame on the wire. Anything written after it, a close frame
included, would be read by the peer as the rest of that frame's payload.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace

import gevent
import gevent.socket
import pytest
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.websocket import Stream

from {{ cookiecutter.package_name }}.gevent_websocket import WebSocket

PAYLOAD = b"x" * 4_000_000  # far more than the socket buffers of a pair hold
HEADER_BYTES = 10  # a 64-bit length: 2 + 8 bytes, unmasked from the server


@pytest.fixture
def pair() -> Iterator[tuple[WebSocket, gevent.socket.socket]]:
    """A server-side WebSocket and the raw peer socket it talks to."""
    server, peer = gevent.socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # What gevent-websocket reads of its handler: the socket, its reader, and an app
    # without gevent-websocket's own callbacks.
    handler = SimpleNamespace(
        socket=server, rfile=server.makefile("rb"), server=SimpleNamespace(application=None)
    )
    ws = WebSocket({}, Stream(handler), handler, max_message_bytes=1024)
    yield ws, peer
    server.close()
    peer.close()


def read_to_end(peer: gevent.socket.socket, timeout: float = 10) -> bytes:
    received = bytearray()
    with gevent.Timeout(timeout):
        while chunk := peer.recv(65536):
            received += chunk
    return bytes(received)


def assert_only_the_cut_short_frame(received: bytes) -> None:
    assert received[0] == 0x82  # FIN + binary: the frame that was cut short
    assert len(received) < HEADER_BYTES + len(PAYLOAD)
    # Only payload after the header: no other frame hidden inside it.
    assert set(received[HEADER_BYTES:]) <= {ord("x")}


@pytest.fixture
def cut_short(
    pair: tuple[WebSocket, gevent.socket.socket],
) -> tuple[WebSocket, gevent.Greenlet[[gevent.socket.socket], bytes]]:
    """A WebSocket whose sender was killed mid-frame, and a greenlet reading what the peer
    gets until the connection ends."""
    ws, peer = pair
    sender = gevent.spawn(ws.send, PAYLOAD, binary=True)
    gevent.sleep(0.05)
    assert not sender.dead, "the send finished: the frame was not cut short"
    sender.kill()
    return ws, gevent.spawn(read_to_end, peer)


def test_a_close_after_a_cut_short_frame_ends_the_connection_without_writing(
    cut_short: tuple[WebSocket, gevent.Greenlet[[gevent.socket.socket], bytes]],
) -> None:
    ws, reading = cut_short
    ws.close(1008, "outbox overflow")
    assert_only_the_cut_short_frame(reading.get())


def test_a_send_after_a_cut_short_frame_is_refused(
    cut_short: tuple[WebSocket, gevent.Greenlet[[gevent.socket.socket], bytes]],
) -> None:
    ws, reading = cut_short
    with pytest.raises(WebSocketError):
        ws.send("next")
    ws.abort()
    assert_only_the_cut_short_frame(reading.get())
