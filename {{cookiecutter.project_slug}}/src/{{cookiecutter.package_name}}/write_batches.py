"""A connection's frames of one event-loop step, written together when the step ends.

A broadcast hands each member its frame at once (the adapters' ``send_nowait``).
In a burst, many broadcasts in one step (many room frames read together, many
peers' messages read together), a system call per member and frame would cost
more than everything else a frame takes. So a connection gathers what it
is handed during the step, and writes it all with one call once the step is
over: at once for the peer, as few calls as the burst allows.

The adapter (``{{ "uvicorn_websocket.py" if cookiecutter.server == "asgi-uvicorn" else "gevent_websocket.py" }}``) says how the end of a step is reached
and how a connection writes; a connection writes what it gathered before
anything else it writes, a close frame above all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Gathering(Protocol):
    """A connection that gathers frames: None in :attr:`pending` while it holds none."""

    pending: list[bytes] | None

    def write_pending(self) -> None:
        """Write (or drop, if the connection closed meanwhile) what :attr:`pending` holds."""
        ...


class WriteBatches:
    """The connections with frames gathered in the current step of one event loop."""

    __slots__ = ("_at_step_end", "_waiting")

    def __init__(self, at_step_end: Callable[[Callable[[], None]], object]) -> None:
        """``at_step_end(callback)``: have the loop call ``callback`` once this step is over."""
        self._at_step_end = at_step_end
        self._waiting: list[Gathering] = []

    def add(self, connection: Gathering, frame: bytes) -> None:
        """Gather ``frame`` for ``connection``, to be written when the step ends."""
        if connection.pending is not None:
            connection.pending.append(frame)
            return
        connection.pending = [frame]
        if not self._waiting:
            self._at_step_end(self._write_all)
        self._waiting.append(connection)

    def _write_all(self) -> None:
        waiting, self._waiting = self._waiting, []
        for connection in waiting:
            connection.write_pending()
