"""What a websocket connection does, whatever the transport.

A ``/ws`` connection goes through the same steps under every server: it is
accepted, or closed with 1013 when the process is at its cap; its session
joins the hub; frames from the peer go to the hub, frames from the hub queue in
its outbox; whichever ends first ends the connection (the peer left, a send
failed, or the hub or the receiver asked for a close); its departure is
announced; and a close that was asked for is sent after what was queued before
it, for :data:`FLUSH_TIMEOUT` at most. The receiver lets the senders run
between two frames of a burst: without that, a burst larger than an outbox
would close readers that keep up. The adapter (``{{ "asgi.py" if cookiecutter.server == "asgi-uvicorn" else "wsgi.py" }}``) keeps only
what is its stack's own: how it waits, sends and runs side by side.
"""

from __future__ import annotations

from collections import deque

from .broker import Broker
from .close_codes import CloseCode
from .rooms import Hub, Outbox

AT_CAPACITY = (CloseCode.TRY_AGAIN_LATER, "server at capacity, try again later")
"""The close for a connection past ``MAX_CONNECTIONS``, sent right after the accept."""
BINARY_REFUSED = (CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
"""The close for a binary frame on ``/ws``, whose protocol is JSON text."""
FLUSH_TIMEOUT = 1.0
"""Seconds the frames queued before a close have to go out: a reader too slow
for its outbox takes nothing."""


class BoundedOutbox:
    """A connection's bounded queue of frames, and the first close asked of it.

    Adapters add how frames reach the socket (:meth:`offer`) and who is told
    that the connection ends (:meth:`on_close`).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.frames: deque[str] = deque()
        self.closed = False  # the hub or the receiver asked for a close
        self.close_code: int = CloseCode.NORMAL_CLOSURE
        self.close_reason = ""

    def queue(self, frame: str) -> bool:
        """Queue ``frame`` for the sender; False if the outbox is full."""
        if len(self.frames) >= self.size:
            return False
        self.frames.append(frame)
        return True

    def close(self, code: int, reason: str) -> None:
        """Ask for a close with ``code``; the first one asked is the one sent."""
        if not self.closed:
            self.closed = True
            self.close_code, self.close_reason = code, reason
            self.on_close()

    def on_close(self) -> None:
        """Wake whoever waits for the connection to end."""


class Session:
    """One ``/ws`` connection's dealings with the hub and the broker, from its open to its end."""

    __slots__ = ("broker", "connection_id", "hub", "outbox")

    def __init__(self, hub: Hub, broker: Broker, outbox: Outbox) -> None:
        self.hub = hub
        self.broker = broker
        self.outbox = outbox
        self.connection_id, welcome = hub.connect(outbox)
        broker.submit(welcome)

    def receive(self, frame: object) -> bool:
        """Hand a frame from the peer to the hub; False if it ends the connection."""
        if not isinstance(frame, str):
            self.outbox.close(*BINARY_REFUSED)
            return False
        self.broker.submit(self.hub.receive(self.connection_id, frame))
        return True

    def end(self) -> None:
        """The connection ended: it leaves its rooms, and the others are told."""
        self.broker.submit(self.hub.disconnect(self.connection_id))
