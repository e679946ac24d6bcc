"""A bare-bones websocket peer on a raw socket, for tests that misbehave on purpose.

Real clients (``websockets``) are polite: they always read, always mask, never
send malformed frames. These helpers let a test be the peer a server must survive:
handshakes with any headers, frames with any bits, lengths that lie.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Mapping

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
MAX_HANDSHAKE_RESPONSE = 64 * 1024


class HandshakeRefused(ConnectionError):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int, response: bytes) -> None:
        status_line = response.split(b"\r\n", 1)[0]
        super().__init__(f"handshake refused: {status_line!r}")
        self.status = status
        self.response = response


def upgrade(
    host: str,
    port: int,
    path: str,
    headers: Mapping[str, str | None] | None = None,
    receive_buffer: int | None = None,
    timeout: float = 10,
) -> tuple[int, bytes, socket.socket]:
    """Send an opening handshake; return the status, the response head and the socket.

    ``headers`` add to or replace the usual ones (``Host``, ``Upgrade``,
    ``Connection``, ``Sec-WebSocket-Key``, ``Sec-WebSocket-Version``); a value of
    None leaves that header out. After a 101 the socket is ready for frames; the
    caller closes it in every case.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(handshake_request(host, port, path, headers))
        response = read_response_head(sock)
    except BaseException:
        sock.close()
        raise
    return status_of(response), response, sock


def handshake_request(
    host: str, port: int, path: str, headers: Mapping[str, str | None] | None = None
) -> bytes:
    """The bytes of an opening handshake for ``path``, with ``headers`` as in :func:`upgrade`."""
    fields: dict[str, str | None] = {
        "Host": f"{host}:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    for name, value in (headers or {}).items():
        # Replace case-insensitively, so that "origin" and "Origin" are one header.
        for known in [known for known in fields if known.lower() == name.lower()]:
            del fields[known]
        fields[name] = value
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response_head(sock: socket.socket) -> bytes:
    """Read an HTTP response head (through the blank line), and not one byte more."""
    response = b""
    while b"\r\n\r\n" not in response:
        # Peek, then take exactly the head: the frames behind it stay in the socket.
        chunk = sock.recv(4096, socket.MSG_PEEK)
        if not chunk:
            raise ConnectionError(f"handshake cut short: {response!r}")
        end = (response + chunk).find(b"\r\n\r\n")
        take = len(chunk) if end < 0 else end + 4 - len(response)
        response += sock.recv(take)
        if len(response) > MAX_HANDSHAKE_RESPONSE:
            raise ConnectionError("handshake response head too long")
    return response


def status_of(response: bytes) -> int:
    """The status code of an HTTP response head."""
    parts = response.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {response[:80]!r}")
    return int(parts[1])


def open_websocket(
    host: str,
    port: int,
    path: str,
    receive_buffer: int | None = None,
    headers: Mapping[str, str | None] | None = None,
) -> socket.socket:
    """Connect and complete the opening handshake; return the socket, ready for frames.

    ``receive_buffer`` shrinks the socket's receive buffer before connecting, so
    that a peer that stops reading pushes back on the server sooner. Raises
    :class:`HandshakeRefused` if the answer is not 101.
    """
    status, response, sock = upgrade(host, port, path, headers, receive_buffer)
    if status != 101:
        sock.close()
        raise HandshakeRefused(status, response)
    return sock


def frame(
    payload: bytes,
    opcode: int = OPCODE_TEXT,
    fin: bool = True,
    *,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """One client frame: masked, unless ``masked`` is False.

    ``rsv`` sets the reserved bits (0-7); ``length`` claims a payload length other
    than the real one (a lie), encoded in the smallest form that holds it.
    """
    mask = os.urandom(4) if masked else b""
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0x0F])
    length_bytes = length_field(len(payload) if length is None else length, masked)
    return head + length_bytes + mask + (apply_mask(payload, mask) if masked else payload)


def length_field(length: int, masked: bool = True) -> bytes:
    """The second byte of a frame header and its extended length, smallest form."""
    bit = 0x80 if masked else 0
    if length < 126:
        return bytes([bit | length])
    if length < 1 << 16:
        return bytes([bit | 126]) + struct.pack("!H", length)
    return bytes([bit | 127]) + struct.pack("!Q", length)


def apply_mask(payload: bytes, mask: bytes) -> bytes:
    """``payload`` XOR the 4-byte ``mask``, repeated (masking and unmasking are the same)."""
    if not payload:
        return payload
    key = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        len(payload), "big"
    )


def close_frame(code: int | None = 1000, reason: bytes = b"") -> bytes:
    """A masked close frame with ``code`` and ``reason`` (no payload at all if code is None)."""
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return frame(payload, OPCODE_CLOSE)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one unmasked server frame: ``(opcode, payload)``."""
    first, second = _read_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exactly(sock, 8))
    return first & 0x0F, _read_exactly(sock, length)


def close_code(payload: bytes) -> int | None:
    """The status code in a close frame's payload (None if it carries none)."""
    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else None


def read_until_close(sock: socket.socket) -> int | None:
    """Skip frames until a close frame; return its code (None if the socket just ended)."""
    try:
        while True:
            opcode, payload = read_frame(sock)
            if opcode == OPCODE_CLOSE:
                return close_code(payload)
    except (ConnectionError, OSError):
        return None


class FrameReader:
    """Reads server frames from a socket through a buffer: far fewer system calls than
    :func:`read_frame`, for tests that read thousands of frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def read(self) -> tuple[int, bool, bytes]:
        """The next frame: ``(opcode, fin, payload)``; ConnectionError at the end of the stream."""
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        mask = self._take(4) if second & 0x80 else b""
        payload = self._take(length)
        return first & 0x0F, bool(first & 0x80), apply_mask(payload, mask) if mask else payload

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self.buffer)))
            if not chunk:
                raise ConnectionError("socket closed")
            self.buffer += chunk
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("socket closed")
        data += chunk
    return data
