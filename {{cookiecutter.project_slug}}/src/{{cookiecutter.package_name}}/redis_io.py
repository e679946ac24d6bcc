"""What the Redis broker's core (``redis_pubsub.py``) asks of its I/O, and what it is given.

The core yields :data:`Io` and is sent the answers; the adapter
(``{{ "redis_asyncio.py" if cookiecutter.server == "asgi-uvicorn" else "redis_gevent.py" }}``) carries them out with its own concurrency
library, and hands the core a queue (:class:`Jobs`) and events (:class:`Flag`)
of that library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .redis_layout import Command
from .rooms import Effect


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe to ``channels``, and wait until Redis has confirmed them all.

    The broker answers None, or the error it failed with."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Let ``channels`` go; nothing waits for it."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Execute:
    """Send ``commands`` in one round trip (a pipeline, no transaction).

    The broker answers the list of each command's reply or error, or the one
    error that the whole round trip failed with."""

    commands: tuple[Command, ...]


Io = Subscribe | Unsubscribe | Execute
"""What a batch asks of the broker's I/O."""


class Jobs(Protocol):
    """A broker's queue of submitted effects, of its own concurrency library."""

    def put_nowait(self, item: list[Effect], /) -> None: ...

    def get_nowait(self) -> list[Effect]: ...

    def empty(self) -> bool: ...


class Flag(Protocol):
    """An event a broker waits on, of its own concurrency library."""

    def set(self) -> None: ...
