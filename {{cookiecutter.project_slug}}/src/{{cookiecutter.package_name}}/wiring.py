"""What ``create_app`` builds from the settings, the same under every server.

Each adapter adds its broker, its falcon App class and its resources, and
routes them with :func:`add_routes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon

from . import pages
from .config import Settings
from .guard import Authenticate, HandshakeGuard
from .limits import ConnectionLimit
from .rooms import Hub


@dataclass(frozen=True)
class Services:
    """The parts every route of one app shares."""

    settings: Settings
    hub: Hub
    connections: ConnectionLimit
    guard: HandshakeGuard

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, authenticate: Authenticate | None = None
    ) -> Services:
        """Build them from ``settings`` (defaults to the environment's).

        Args:
            settings: Defaults to the environment's.
            authenticate: A check every websocket handshake must pass; defaults to
                the ``AUTH_TOKEN`` check when that is set.
        """
        settings = settings or Settings.from_env()
        return cls(
            settings=settings,
            hub=Hub(
                max_rooms=settings.max_rooms,
                rate_limit=settings.rate_limit,
                rate_burst=settings.rate_burst,
            ),
            connections=ConnectionLimit(settings.max_connections),
            guard=HandshakeGuard.from_settings(settings, authenticate),
        )


def add_routes(
    app: falcon.App[Any, Any], *, index: object, health: object, rooms: object, echo: object
) -> None:
    """Route the app's resources: the page, ``/health``, ``/ws``, ``/ws/echo`` and ``/static``."""
    app.add_route("/", index)
    app.add_route("/health", health)
    app.add_route("/ws", rooms)
    app.add_route("/ws/echo", echo)
    app.add_static_route("/static", pages.STATIC_DIR)
