"""WSGI adapter: ``falcon.App`` with websockets from gevent-websocket.

Serve it with ``gunicorn --config gunicorn.conf.py``, which selects
gevent-websocket's worker. Under WSGI falcon never calls ``on_websocket``:
the worker has already answered the upgrade before the app runs and hands
the socket over in ``req.env["wsgi.websocket"]`` on a plain GET. A plain
``gunicorn {{ cookiecutter.package_name }}.wsgi:app`` serves no websocket at all.
"""

import contextlib
from typing import Any

import falcon
import gevent
import gevent.event
import gevent.queue
from geventwebsocket.exceptions import WebSocketError

from . import pages
{%- if cookiecutter.broker == "redis" %}
from .broker import Broker, health
{%- else %}
from .broker import Broker, MemoryBroker, health
{%- endif %}
from .config import Settings
from .errors import upgrade_required
{%- if cookiecutter.broker == "redis" %}
from .redis_gevent import RedisBroker
{%- endif %}
from .rooms import Hub

CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_TIMEOUT = 2.0


class IndexResource:
    """The browser client page."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = pages.INDEX_HTML


class HealthResource:
    """Readiness probe: 200 while the server can serve, 503 with a reason when it cannot."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self.hub = hub
        self.broker = broker

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        document = health(self.hub, self.broker)
        resp.media = document
        if document["status"] != "ok":
            resp.status = falcon.HTTP_503


class EchoResource:
    """Send every message back unchanged: text as text, binary as binary."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ws = req.env.get("wsgi.websocket")
        if ws is None:
            raise upgrade_required()
        # receive() gives str for text, bytes for binary, None once the peer
        # is gone; the worker ignores this responder's status and body.
        while (message := ws.receive()) is not None:
            ws.send(message, binary=not isinstance(message, str))


class Outbox:
    """A connection's bounded queue of frames, filled by the hub, drained by its sender."""

    def __init__(self, size: int) -> None:
        self.frames: gevent.queue.Queue[str] = gevent.queue.Queue(size)
        self.closed = gevent.event.Event()
        self.close_code = 1000
        self.close_reason = ""

    def offer(self, frame: str) -> bool:
        try:
            self.frames.put_nowait(frame)
        except gevent.queue.Full:
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()


class RoomsResource:
    """``/ws``: the rooms protocol (see ``protocol.py``), one hub per process."""

    def __init__(self, hub: Hub, broker: Broker, outbox_size: int) -> None:
        self.hub = hub
        self.broker = broker
        self.outbox_size = outbox_size

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ws = req.env.get("wsgi.websocket")
        if ws is None:
            raise upgrade_required()
        outbox = Outbox(self.outbox_size)
        connection_id, welcome = self.hub.connect(outbox)
        self.broker.submit(welcome)
        greenlets: list[gevent.Greenlet[..., object]] = [
            gevent.spawn(self._send_frames, ws, outbox),
            gevent.spawn(self._receive_frames, ws, connection_id, outbox),
            gevent.spawn(outbox.closed.wait),
        ]
        try:
            # Whichever ends first ends the connection: the peer left, a send
            # failed, or the hub or the receiver asked for a close.
            gevent.wait(greenlets, count=1)
        finally:
            self.broker.submit(self.hub.disconnect(connection_id))
            gevent.killall(greenlets)
        if outbox.closed.is_set():
            close(ws, outbox.close_code, outbox.close_reason)

    def _send_frames(self, ws: Any, outbox: Outbox) -> None:
        # A peer that vanished with frames still queued ends the sending quietly.
        with contextlib.suppress(WebSocketError):
            for frame in outbox.frames:
                ws.send(frame)

    def _receive_frames(self, ws: Any, connection_id: str, outbox: Outbox) -> None:
        while (frame := ws.receive()) is not None:
            if not isinstance(frame, str):
                outbox.close(CLOSE_UNSUPPORTED_DATA, "binary frames are not accepted")
                return
            self.broker.submit(self.hub.receive(connection_id, frame))
            # Let the senders run between two frames of a burst: without it a
            # burst larger than an outbox closes readers that keep up.
            gevent.sleep(0)


def close(ws: Any, code: int, reason: str) -> None:
    """Close with ``code``; a peer that stopped reading can block the send, hence the timeout."""
    with contextlib.suppress(gevent.Timeout), gevent.Timeout(CLOSE_TIMEOUT):
        ws.close(code, reason)


def create_app(settings: Settings | None = None) -> falcon.App[falcon.Request, falcon.Response]:
    """Build the WSGI application with every route; settings default to the environment's."""
    settings = settings or Settings.from_env()
    hub = Hub(max_rooms=settings.max_rooms)
{%- if cookiecutter.broker == "redis" %}
    broker = RedisBroker(hub, settings.redis_url, settings.redis_prefix)
    broker.start()
{%- else %}
    broker = MemoryBroker(hub)
{%- endif %}
    app = falcon.App()
    app.add_route("/", IndexResource())
    app.add_route("/health", HealthResource(hub, broker))
    app.add_route("/ws", RoomsResource(hub, broker, settings.outbox_size))
    app.add_route("/ws/echo", EchoResource())
    app.add_static_route("/static", pages.STATIC_DIR)
    return app


app = create_app()
