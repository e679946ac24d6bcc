"""The app's routes and what their resources share, the same under every server.

The adapter (``{{ "asgi.py" if cookiecutter.server == "asgi-uvicorn" else "wsgi.py" }}``) subclasses the resources here with its responders
and routes them with :func:`add_routes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon

from . import pages
from .broker import Broker{% if cookiecutter.broker == "memory" %}, MemoryBroker{% endif %}
from .config import Settings
from .guard import Authenticate, HandshakeGuard
from .history import {% if cookiecutter.broker == "memory" %}Histories, {% endif %}Retention
from .limits import ConnectionLimit
{%- if cookiecutter.broker == "redis" %}
from .{{ "redis_asyncio" if cookiecutter.server == "asgi-uvicorn" else "redis_gevent" }} import RedisBroker
{%- endif %}
from .rooms import Hub


@dataclass(frozen=True)
class Services:
    """The parts of one app that its routes share."""

    settings: Settings
    hub: Hub
    broker: Broker
    connections: ConnectionLimit
    guard: HandshakeGuard

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, authenticate: Authenticate | None = None
    ) -> Services:
        """Build every part; the broker is made, not started.

        Args:
            settings: Defaults to the environment's.
            authenticate: A check every websocket handshake must pass; defaults to
                the ``AUTH_TOKEN`` check when that is set.
        """
        settings = settings or Settings.from_env()
        hub = Hub(
            max_rooms=settings.max_rooms,
            rate_limit=settings.rate_limit,
            rate_burst=settings.rate_burst,
        )
        retention = Retention(settings.history_size, settings.history_ttl)
        return cls(
            settings=settings,
            hub=hub,
{%- if cookiecutter.broker == "redis" %}
            broker=RedisBroker(hub, settings.redis_url, settings.redis_prefix, retention),
{%- else %}
            broker=MemoryBroker(hub, Histories(retention)),
{%- endif %}
            connections=ConnectionLimit(settings.max_connections),
            guard=HandshakeGuard.from_settings(settings, authenticate),
        )


class Part:
    """A resource or middleware of this app, made with the app's :class:`Services`."""

    def __init__(self, services: Services) -> None:
        self.services = services


class Index(Part):
    """``/``: the browser client page (see ``pages.py``)."""

    def respond(self, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = pages.INDEX_HTML


class Health(Part):
    """``/health``: readiness probe, 200 while the server can serve, 503 with a reason when not."""

    def respond(self, resp: falcon.Response) -> None:
        reason = self.services.broker.not_ready()
        document: dict[str, object] = {"status": "ok" if reason is None else "unavailable"}
        if reason is not None:
            document["reason"] = reason
            resp.status = falcon.HTTP_503
        hub = self.services.hub
        document.update(connections=hub.connections, rooms=hub.rooms)
        if broker := self.services.broker.report():
            document["broker"] = broker
        resp.media = document


class Echo(Part):
    """``/ws/echo``: every message back unchanged, text as text, binary as binary."""


class Rooms(Part):
    """``/ws``: the rooms protocol (``protocol.py``), one hub per process; each
    connection goes through the steps of ``connection.py``."""


def add_routes(
    app: falcon.App[Any, Any],
    services: Services,
    index: type[Index],
    health: type[Health],
    rooms: type[Rooms],
    echo: type[Echo],
) -> None:
    """Route the app's resources: the page, ``/health``, ``/ws``, ``/ws/echo`` and ``/static``."""
    app.add_route("/", index(services))
    app.add_route("/health", health(services))
    app.add_route("/ws", rooms(services))
    app.add_route("/ws/echo", echo(services))
    app.add_static_route("/static", pages.STATIC_DIR)
