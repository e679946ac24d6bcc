"""gevent-websocket's socket, with the receiving side made safe for the open internet.

gevent-websocket 0.10.1 (unmaintained since 2017) reads whatever a frame header
claims (a header saying 2 GB makes the worker allocate it), accepts unmasked
client frames, validates UTF-8 in pure Python, builds close frames without
their code, and lets two greenlets interleave their frames on the wire. This
:class:`WebSocket` keeps its API (``receive()``, ``send()``, ``close()``) and
its frame encoding, and replaces the rest:

- a message bigger than ``max_message_bytes`` is refused with 1009 from its
  header, before its payload is read, also when it comes in fragments;
- frames that break RFC 6455 (unmasked, reserved bits, bad opcodes, bad close
  payloads) end the connection with 1002, invalid UTF-8 with 1007, both
  checked with Python's own C codecs;
- every close frame carries its code, writes hold a lock, a frame cut short
  (its sender killed, a timeout) is never followed by another, and a close to
  a peer that stopped reading gives up after :data:`CLOSE_TIMEOUT` seconds;
- it records when the peer last sent anything, for the keep-alive pings.

The worker's handler (``gunicorn_worker.py``) makes these and hands the app a way to
accept one: the callable in ``environ[ACCEPT_WEBSOCKET]``.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import os
import socket
import struct
import time
from typing import Any

import gevent
import gevent.lock
from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.websocket import WebSocket as BaseWebSocket

from .close_codes import CloseCode, may_be_sent_by_peer
from .write_batches import WriteBatches

ACCEPT_WEBSOCKET = "{{ cookiecutter.package_name }}.accept_websocket"
"""Environ key of the callable that completes a valid handshake: it answers 101
and returns the :class:`WebSocket`. Absent when the request is no upgrade."""

CLOSE_TIMEOUT = 2.0
MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes
OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA
BATCHES = WriteBatches(lambda write: gevent.get_hub().loop.run_callback(write))
"""The connections with frames gathered in the hub's current turn: written before it waits."""


class MessageTooBig(ProtocolError):  # type: ignore[misc]
    """A peer announced a message bigger than the limit."""


def server_frame(data: bytes, opcode: int) -> bytes:
    """One whole unmasked frame, as a server sends it (RFC 6455, section 5.2)."""
    length = len(data)
    if length < 126:
        return bytes((0x80 | opcode, length)) + data
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + data
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + data


@functools.lru_cache(maxsize=1)
def text_frame(text: str) -> bytes:
    """``text`` as a server's text frame, framed once for a broadcast: the hub
    hands every member the same string."""
    return server_frame(text.encode(), OPCODE_TEXT)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask``, as one big integer: C speed, no extension."""
    size = len(payload)
    if not size:
        return payload
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class WebSocket(BaseWebSocket):  # type: ignore[misc]
    """A server-side websocket on a gevent stream.

    Args:
        environ: The WSGI environ of the handshake.
        stream: The connection, as gevent-websocket's ``Stream``.
        handler: The gevent handler serving the connection.
        max_message_bytes: Largest message the peer may send.
    """

    __slots__ = ("last_seen", "max_message_bytes", "peer_closed", "pending", "torn", "write_lock")

    def __init__(self, environ: Any, stream: Any, handler: Any, max_message_bytes: int) -> None:
        super().__init__(environ, stream, handler)
        self.max_message_bytes = max_message_bytes
        self.write_lock = gevent.lock.Semaphore()
        self.last_seen = time.monotonic()
        self.peer_closed = False  # its close frame came, or the connection is gone
        # A write cut short (a timeout, a killed sender) leaves part of a frame on the
        # wire: whatever followed it would be read as that frame's payload.
        self.torn = False
        self.pending: list[bytes] | None = None  # frames gathered in this step (write_batches.py)

    def receive(self) -> str | bytes | None:
        """The next message: ``str`` for text, ``bytes`` for binary, None once closed.

        A peer that breaks the protocol is sent the matching close code first.
        """
        state: Any = self  # the base is untyped and slotted: its attributes are unknown to mypy
        if state.closed:
            return None
        try:
            return self.read_message()
        except MessageTooBig as error:
            self.close(CloseCode.MESSAGE_TOO_BIG, str(error))
        except UnicodeDecodeError:
            self.close(CloseCode.INVALID_DATA, "invalid UTF-8")
        except ProtocolError as error:
            self.close(CloseCode.PROTOCOL_ERROR, str(error))
        except OSError:  # the peer is gone (WebSocketError is an OSError too)
            self.peer_closed = True
            self.close(CloseCode.NORMAL_CLOSURE)
        return None

    def read_message(self) -> str | bytes | None:
        """Read frames up to the end of a message, answering control frames on the way."""
        opcode: int | None = None
        parts: list[bytes] = []
        texts: list[str] = []
        size = 0
        decoder: codecs.IncrementalDecoder | None = None
        while True:
            fin, frame_opcode, length, mask = self._read_header()
            if frame_opcode >= OPCODE_CLOSE:
                payload = self._read_payload(length, mask)
                if frame_opcode == OPCODE_CLOSE:
                    self._answer_close(payload)
                    return None
                if frame_opcode == OPCODE_PING:
                    self.send_frame(payload, OPCODE_PONG)
                continue  # a pong only proves the peer alive, which last_seen recorded
            if frame_opcode == OPCODE_CONTINUATION:
                if opcode is None:
                    raise ProtocolError("continuation frame without a message to continue")
            elif opcode is not None:
                raise ProtocolError("new message before the last one ended")
            else:
                opcode = frame_opcode
            size += length
            if size > self.max_message_bytes:
                raise MessageTooBig(f"message over {self.max_message_bytes} bytes")
            payload = self._read_payload(length, mask)
            if opcode == OPCODE_TEXT:
                if fin and decoder is None:  # a message in one frame, as most are
                    return payload.decode()
                if decoder is None:
                    decoder = codecs.getincrementaldecoder("utf-8")()
                # Decoded as it arrives, so a bad message fails at its first bad frame.
                texts.append(decoder.decode(payload, final=fin))
            else:
                parts.append(payload)
            if fin:
                return "".join(texts) if opcode == OPCODE_TEXT else b"".join(parts)

    def send_frame(self, message: str | bytes, opcode: int) -> None:
        """Send one whole frame; frames from concurrent greenlets never interleave."""
        state: Any = self
        if state.closed:
            raise WebSocketError("Connection is already closed")
        self._write_frame(message.encode() if isinstance(message, str) else message, opcode)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, message: bytes | str = b"") -> None:
        """Send a close frame with ``code`` and ``message`` (the reason), then stop."""
        state: Any = self
        if state.closed:
            return
        state.closed = True  # from here on, nothing else is sent
        if self.torn:
            self.abort()  # a close frame after half a frame would be read as garbage
            return
        reason = message.encode() if isinstance(message, str) else bytes(message or b"")
        frame = struct.pack("!H", code) + reason[:MAX_REASON_BYTES]
        sent = False
        try:
            # A peer that stopped reading blocks the send; it gets a bounded wait.
            with contextlib.suppress(gevent.Timeout), gevent.Timeout(CLOSE_TIMEOUT):
                self._write_frame(frame, OPCODE_CLOSE)
                sent = True
        except WebSocketError:
            sent = True  # the peer is gone already: nothing left to tell it
        if not sent:
            self.abort()

    def wait_closed(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """After our close frame, drop what the peer still sends, up to its own close frame.

        Closing a TCP connection with unread data in it resets the connection, and
        the reset can destroy our close frame before the peer reads it.
        """
        if self.peer_closed:
            return
        with contextlib.suppress(gevent.Timeout, OSError), gevent.Timeout(timeout):
            while True:
                _, opcode, length, mask = self._read_header()
                if length > self.max_message_bytes:
                    return
                self._read_payload(length, mask)
                if opcode == OPCODE_CLOSE:
                    self.peer_closed = True
                    return

    def abort(self) -> None:
        """End the TCP connection at once, waking whatever reads or writes on it."""
        state: Any = self
        with contextlib.suppress(OSError, AttributeError):
            state.handler.socket.shutdown(socket.SHUT_RDWR)

    def send_nowait(self, frame: bytes) -> bool:
        """Send a whole ``frame`` (see :func:`text_frame`) if that needs no waiting:
        True once it is on its way, written with the others of this step
        (``write_batches.py``).

        False when it would have to wait (another greenlet is writing) or cannot
        go (closed, a frame cut short); the caller then queues it for a greenlet
        that may wait.
        """
        state: Any = self
        if state.closed or self.torn or self.write_lock.locked():
            return False
        BATCHES.add(self, frame)
        return True

    def write_pending(self) -> None:
        """Write the frames gathered in this step, as far as the socket takes them
        at once. What it does not take is finished by a greenlet of its own, which
        holds the write lock to the end, so that nothing passes it."""
        pending, self.pending = self.pending, None
        state: Any = self
        if not pending or state.closed or self.torn:
            return  # taken by a write under the lock, or nothing may follow any more
        data = b"".join(pending)
        if not self.write_lock.acquire(blocking=False):
            # Not expected: whoever takes the lock takes the pending frames with it.
            gevent.spawn(self.send_frames, data)
            return
        try:
            sent = self._write_now(data)
        except OSError:  # the peer is gone: the receiving side finds out
            sent = len(data)
        if sent == len(data):
            self.write_lock.release()
        else:
            self.torn = True  # until the rest is out
            gevent.spawn(self._write_rest, memoryview(data)[sent:])

    def send_frames(self, frames: bytes) -> None:
        """Send whole frames, waiting for the lock and the socket; nothing if it is closed."""
        with contextlib.suppress(WebSocketError):
            self._write_frame(frames, None)

    def _write_rest(self, rest: memoryview) -> None:
        state: Any = self
        try:
            state.raw_write(rest)
            self.torn = False
        except (OSError, TypeError):
            pass  # torn for good: the next send fails, and that ends the connection
        finally:
            self.write_lock.release()

    def _write_frame(self, data: bytes, opcode: int | None) -> None:
        """Write a frame of ``data`` (``opcode`` None: frames already), after the
        frames gathered in this step."""
        frame = data if opcode is None else server_frame(data, opcode)
        with self.write_lock:
            if self.torn:
                raise WebSocketError("an earlier frame was cut short")
            if self.pending:
                frame = b"".join((*self.pending, frame))
            self.pending = None
            state: Any = self
            self.torn = True  # until the whole frame is out
            try:
                sent = self._write_now(frame)
                if sent < len(frame):
                    state.raw_write(memoryview(frame)[sent:])
            except (OSError, TypeError) as error:  # TypeError: closed meanwhile
                raise WebSocketError("Socket is dead") from error
            self.torn = False

    def _write_now(self, frame: bytes | memoryview) -> int:
        """How much of ``frame`` the socket took at once (0 if it has no room).

        One system call: gevent's send() is Python around the same call and
        waits for room, its sendall() also asks for the buffer size and arms a
        timeout, on every frame. Other OSErrors (the peer is gone) go to the caller.
        """
        state: Any = self
        try:
            return os.write(state.handler.socket.fileno(), frame)
        except BlockingIOError:
            return 0

    def _read_header(self) -> tuple[bool, int, int, bytes]:
        """``(fin, opcode, payload length, mask)`` of the next frame (RFC 6455, section
        5.2), refused unless a client may send it: masked, no reserved bits or opcodes,
        control frames whole and short."""
        state: Any = self
        read = state.raw_read
        head = read(2)
        if len(head) != 2:
            raise WebSocketError("connection closed in a frame header")
        self.last_seen = time.monotonic()
        first, second = head
        fin, opcode, length = bool(first & 0x80), first & 0x0F, second & 0x7F
        if first & 0x70:
            raise ProtocolError("reserved bits set without an extension")
        if not second & 0x80:
            raise ProtocolError("client frames must be masked")
        if opcode not in (0x0, 0x1, 0x2, 0x8, 0x9, 0xA):
            raise ProtocolError(f"reserved opcode {opcode}")
        if opcode >= OPCODE_CLOSE and (not fin or length > 125):
            raise ProtocolError("control frames must be whole and at most 125 bytes")
        if length >= 126:
            size = 2 if length == 126 else 8
            extended = read(size)
            if len(extended) != size:
                raise WebSocketError("connection closed in a frame header")
            length = int.from_bytes(extended, "big")
        mask = read(4)
        if len(mask) != 4:
            raise WebSocketError("connection closed in a frame header")
        return fin, opcode, length, mask

    def _read_payload(self, length: int, mask: bytes) -> bytes:
        state: Any = self
        payload: bytes = state.raw_read(length) if length else b""
        if len(payload) != length:
            raise WebSocketError("connection closed in the middle of a frame")
        self.last_seen = time.monotonic()
        return unmask(payload, mask)

    def _answer_close(self, payload: bytes) -> None:
        self.peer_closed = True
        if not payload:
            self.close(CloseCode.NORMAL_CLOSURE)
            return
        if len(payload) < 2:
            raise ProtocolError("close frame with a one-byte payload")
        (code,) = struct.unpack("!H", payload[:2])
        payload[2:].decode()  # the reason must be UTF-8 (raises UnicodeDecodeError)
        if not may_be_sent_by_peer(code):
            raise ProtocolError(f"invalid close code {code}")
        self.close(code)
