"""uvicorn's websocket protocol, with short paths for what every message takes.

:class:`WebSocketProtocol` reads whole frames without websockets' parser, writes
frames without uvicorn's general ``send``, writes a broadcast to each member at
once (the :data:`SEND_NOWAIT` scope extension), pauses reading only when
:data:`READ_AHEAD` messages wait, and holds less per connection.
:class:`ServerConnection` is websockets' sans-I/O server side under it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask
from websockets.server import ServerProtocol

from .close_codes import CloseCode
from .write_batches import WriteBatches

SEND_NOWAIT = "{{ cookiecutter.package_name }}.send_nowait"
"""The ASGI scope extension with ``{"send": callable}``: it sends a text frame if
that needs no waiting and says whether it did (see ``WebSocketProtocol.send_nowait``)."""


class ServerConnection(ServerProtocol):
    """websockets' server side, answering a close frame between the fragments of a message
    with the usual echo of its code.

    RFC 6455 (section 5.4) lets control frames come between fragments: a close
    there is a peer leaving in the middle of a message, and the unfinished
    message ends with the connection. websockets fails the connection with 1002
    (protocol error) instead, by design, and so blames a peer that broke no rule.

    It also calls :attr:`on_state_change` whenever its state changes.
    """

    on_state_change: Callable[[], None] | None = None

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        ServerProtocol.state.fset(self, state)  # type: ignore[attr-defined]
        if self.on_state_change is not None:
            self.on_state_change()

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None  # no message is in progress any more
        super().recv_frame(frame)

    def forget_request(self) -> None:
        """Start the frame parser afresh, between the handshake and the first frame.

        websockets' server parser reads the request and then every frame in one
        generator, whose frame holds the request, headers and all, for the life
        of the connection. Only for a parser with no byte past the request.
        """
        self.parser = Protocol.parse(self)
        next(self.parser)


BATCHES = WriteBatches(lambda write: asyncio.get_running_loop().call_soon(write))
"""The connections with frames gathered in the loop's current step."""
# Messages read ahead of the app before reading pauses (each up to MAX_MESSAGE_BYTES).
READ_AHEAD = 8
# Frames up to this size take the short path; a larger one would be gathered
# here chunk by chunk, where websockets' parser reads it in place.
SHORT_PATH_BYTES = 64 * 1024


@functools.lru_cache(maxsize=1)
def text_frame(text: str) -> bytes:
    """``text`` as a server's text frame (unmasked, no extension), framed once for
    a broadcast: the hub hands every member the same string."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=())


def frame_head(data: bytes, at: int) -> tuple[int, int, int] | None:
    """``(first byte, payload length, payload offset)`` of the masked client frame
    starting at ``data[at]`` (RFC 6455, section 5.2), or None while its head is
    incomplete. The payload offset is past the 4-byte mask, which precedes it."""
    if len(data) - at < 2:
        return None
    length = data[at + 1] & 0x7F
    if length == 126:
        if len(data) - at < 4:
            return None
        return data[at], int.from_bytes(data[at + 2 : at + 4], "big"), at + 8
    if length == 127:
        if len(data) - at < 10:
            return None
        return data[at], int.from_bytes(data[at + 2 : at + 10], "big"), at + 14
    return data[at], length, at + 6


class ReceiveQueue:
    """What uvicorn asks of the queue of events for the app's ``receive()``, in one
    deque and a future made while the app waits: an ``asyncio.Queue`` holds four
    deques for the whole life of every connection."""

    def __init__(self) -> None:
        self.events: collections.deque[Any] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, event: Any) -> None:
        self.events.append(event)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Any:
        while not self.events:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.events.popleft()

    def empty(self) -> bool:
        return not self.events

    def qsize(self) -> int:
        return len(self.events)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol over a :class:`ServerConnection`, with short
    paths for what every message takes and less held per connection.

    It closes with 1001 (going away) when the server stops or a peer stops
    answering pings: uvicorn says 1012 (service restart) on shutdown, which
    promises that the server is back at once, and 1011 (internal error) on a
    ping timeout, which blames the server; neither is true here.
    """

    conn: ServerConnection  # made so in __init__
    # Until the handshake, and for good after anything unusual, every byte goes
    # through websockets' parser; see data_received().
    _short_path = True
    _accepted_plain = False  # accepted, with no extension: frames can be written as they are
    # Whether a frame can be written at once (see _can_write_now); kept by every
    # change it depends on, so that a broadcast reads one attribute per member.
    writes_now = False
    _close_sent = False
    _request_ended = False
    _request_tail = b""
    _unparsed = b""
    pending: list[bytes] | None = None  # frames gathered in this loop step (write_batches.py)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn builds its ServerProtocol here with no way to choose the class;
        # switching the class keeps every setting uvicorn gave it (size limit, extensions).
        self.conn.__class__ = ServerConnection
        self.conn.on_state_change = self._note_change
        self.queue = ReceiveQueue()  # type: ignore[assignment]  # what uvicorn uses of a Queue

    def data_received(self, data: bytes) -> None:
        """Whole unfragmented data frames are unmasked here and go to the app as
        uvicorn's own parsing would send them; every other frame goes through
        websockets' parser, whole, so that the parser never holds part of one.

        websockets' generator-based parser costs more than the rest of a small
        message's way through the server. Whatever could need a refusal on its
        head alone (reserved bits, no mask, over the size limit), a frame over
        :data:`SHORT_PATH_BYTES`, anything after a close, and frames that arrive
        before the handshake is over leave this path for good: from there on
        websockets sees every byte, as it would without it.
        """
        if not self._short_path:
            super().data_received(data)
        elif not self.handshake_complete:
            self._note_request(data)
            super().data_received(data)
        else:
            self._parse_frames(self._unparsed + data if self._unparsed else data)

    def _note_request(self, data: bytes) -> None:
        """Keep the short path only if the handshake request ends where a chunk
        ends: bytes after it are frames that websockets' parser already holds."""
        seen = self._request_tail + data
        ended = seen.endswith(b"\r\n\r\n")
        if self._request_ended or (b"\r\n\r\n" in seen and not ended):
            self._short_path = False
        self._request_ended = ended
        self._request_tail = seen[-4:]

    def _parse_frames(self, data: bytes) -> None:
        at = 0
        limit = self.config.ws_max_size
        while head := frame_head(data, at):
            first, length, start = head
            if (
                first & 0x70  # reserved bits: no extension is negotiated on this path
                or not data[at + 1] & 0x80  # unmasked
                or (limit is not None and length > limit)
                or length > SHORT_PATH_BYTES
                or self.close_sent
                or self.conn.state is not State.OPEN
                or self.conn.extensions
            ):
                self._short_path = False
                break
            end = start + length
            if len(data) < end:
                break
            opcode = first & 0x0F
            if first & 0x80 and opcode in (1, 2) and self.conn.current_size is None:
                payload = apply_mask(data[start:end], data[start - 4 : start])
                if opcode == 1:
                    self.handle_text(Frame(Opcode.TEXT, payload))
                else:
                    self.handle_bytes(Frame(Opcode.BINARY, payload))
            else:  # control frames and fragments: websockets' parser, one whole frame
                super().data_received(data[at:end])
            at = end
        rest = data[at:] if at else data
        self._unparsed = rest if self._short_path else b""
        if rest and not self._short_path:
            super().data_received(rest)

    def send_receive_event_to_app(self) -> None:
        # uvicorn stops reading as soon as one message waits for the app and starts
        # again once the app took it: two epoll_ctl calls for every message. Up to
        # READ_AHEAD waiting messages it is told that reading is paused already.
        reading = not self.read_paused
        if reading and self.queue.qsize() + 1 < READ_AHEAD:
            self.read_paused = True
            try:
                super().send_receive_event_to_app()
            finally:
                self.read_paused = False
        else:
            super().send_receive_event_to_app()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.handshake_complete:  # the app gets the scope
            self.scope["extensions"][SEND_NOWAIT] = {"send": self.send_nowait}

    def send_nowait(self, text: str) -> bool:
        """Write a text frame now if the connection can take it at once; False if
        it cannot (not open, or paused for writing), for the caller to send it the
        usual way. A broadcast then writes to each member in turn, no task switch,
        and each member's frames of one loop step in one write (``write_batches.py``)."""
        if not self.writes_now:
            return False
        BATCHES.add(self, text_frame(text))
        return True

    def write_pending(self) -> None:
        """Write the frames gathered in this step, unless a close went out meanwhile."""
        pending, self.pending = self.pending, None
        if pending and not self.close_sent and not self.transport.is_closing():
            self.transport.write(b"".join(pending))

    async def send(self, message: Any) -> None:
        if self.pending:  # what was handed over before goes first
            self.write_pending()
        if self.close_sent and self.handshake_complete and self.initial_response is None:
            # uvicorn raises RuntimeError for these, as for a bug in the app; but the
            # server closes on its own (a peer's protocol error, shutdown) while the
            # app may be about to send. The ASGI spec asks for an OSError, which
            # falcon turns into WebSocketDisconnected; a second close is a no-op.
            if message["type"] == "websocket.close":
                return
            if message["type"] == "websocket.send":
                raise ClientDisconnected
        if message["type"] == "websocket.send" and self.writes_now:
            # What uvicorn's path comes to for a frame that can go at once, without
            # its waits and copies: every message and every member of a broadcast
            # takes this path.
            text = message.get("text")
            if text is not None:
                self.transport.write(text_frame(text))
            else:
                frame = Frame(Opcode.BINARY, message["bytes"])
                self.transport.write(frame.serialize(mask=False, extensions=()))
            return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response (headers and all) are not read
            # again; every connection would hold them for life.
            del self.request, self.response
            self._accepted_plain = not self.conn.extensions and self.initial_response is None
            self._note_change()
            if self._short_path:  # no byte past the request came yet
                self.conn.forget_request()

    def _can_write_now(self) -> bool:
        """Accepted with no extension, open, no close sent, not paused for writing."""
        return (
            self._accepted_plain
            and self.writable.is_set()
            and not self.close_sent
            and not self.disconnected
            and self.conn.state is State.OPEN
        )

    def _note_change(self) -> None:
        self.writes_now = self._can_write_now()

    # What _can_write_now() reads, each telling of its changes: the state through
    # ServerConnection, close_sent as a property, the others in their callbacks.
    @property
    def close_sent(self) -> bool:
        return self._close_sent

    @close_sent.setter
    def close_sent(self, sent: bool) -> None:
        self._close_sent = sent
        self._note_change()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._note_change()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._note_change()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._note_change()

    def handle_close(self, event: Frame) -> None:
        if self.pending:  # before the echo of the peer's close
            self.write_pending()
        super().handle_close(event)

    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        if self.pending:
            self.write_pending()
        self.conn.fail(CloseCode.GOING_AWAY, "keepalive ping timeout")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True

    def shutdown(self) -> None:
        if not self.handshake_complete or self.close_sent:
            super().shutdown()
            return
        if self.pending:
            self.write_pending()
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": CloseCode.GOING_AWAY})
        self.conn.send_close(CloseCode.GOING_AWAY, "server shutting down")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
