"""WSGI adapter: ``falcon.App`` with websockets from gevent-websocket.

Serve it with ``gunicorn --config gunicorn.conf.py``, which selects this
project's worker (``gunicorn_worker.py``, built on gevent-websocket's). Under WSGI falcon
never calls ``on_websocket``: an upgrade request arrives as a plain GET with
``req.env[ACCEPT_WEBSOCKET]``, which answers 101 and returns the websocket (also left in
``req.env["wsgi.websocket"]``, as gevent-websocket does). Until then the app may
still refuse with any HTTP status. A plain ``gunicorn {{ cookiecutter.package_name }}.wsgi:app``
serves no websocket at all.
"""

import contextlib

import falcon
import gevent
import gevent.event
from geventwebsocket.exceptions import WebSocketError

from . import pages
{%- if cookiecutter.broker == "redis" %}
from .broker import Broker
{%- else %}
from .broker import Broker, MemoryBroker
{%- endif %}
from .config import Settings
from .connection import AT_CAPACITY, FLUSH_TIMEOUT, BoundedOutbox, Session
from .errors import upgrade_required
from .gevent_websocket import ACCEPT_WEBSOCKET, WebSocket, text_frame
from .guard import Authenticate, HandshakeGuard
from .health import health
from .limits import ConnectionLimit
{%- if cookiecutter.broker == "redis" %}
from .redis_gevent import RedisBroker
{%- endif %}
from .rooms import Hub
from .wiring import Services, add_routes


class GuardMiddleware:
    """Refuses a websocket handshake with 403, before the 101, if the guard says so."""

    def __init__(self, guard: HandshakeGuard) -> None:
        self.guard = guard

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if ACCEPT_WEBSOCKET in req.env:
            reason = self.guard.refusal(req)
            if reason is not None:
                raise falcon.HTTPForbidden(description=reason)


class App(falcon.App[falcon.Request, falcon.Response]):
    """``falcon.App`` that owns the broker: started with the app, stopped by the
    worker (``gunicorn_worker.py``) once its connections have ended."""

    def __init__(self, broker: Broker, middleware: list[GuardMiddleware]) -> None:
        super().__init__(middleware=middleware)
        self.broker = broker
        broker.start()

    def stop(self) -> None:
        """Let the broker carry out what it was given (departures, say), then stop it."""
        self.broker.stop()


def accept(req: falcon.Request, connections: ConnectionLimit) -> WebSocket | None:
    """Accept the handshake; None if the process is at its cap (the socket is closed: 1013).

    Raises:
        falcon.HTTPError: 426 for a plain GET, which asked for no websocket.
    """
    accept_websocket = req.env.get(ACCEPT_WEBSOCKET)
    if accept_websocket is None:
        raise upgrade_required()
    ws: WebSocket = accept_websocket()
    if connections.acquire():
        return ws
    ws.close(*AT_CAPACITY)
    return None


class IndexResource:
    """The browser client page."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = pages.INDEX_HTML


class HealthResource:
    """Readiness probe (see ``health.py``)."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self.hub = hub
        self.broker = broker

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media, resp.status = health(self.hub, self.broker)


class EchoResource:
    """Send every message back unchanged: text as text, binary as binary."""

    def __init__(self, connections: ConnectionLimit) -> None:
        self.connections = connections

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ws = accept(req, self.connections)
        if ws is None:
            return
        try:
            # receive() gives str for text, bytes for binary, None once the peer
            # is gone; the worker ignores this responder's status and body.
            while (message := ws.receive()) is not None:
                ws.send(message, binary=not isinstance(message, str))
        except WebSocketError:
            pass  # the peer vanished while its echo was on the way
        finally:
            self.connections.release()


class GeventOutbox(BoundedOutbox):
    """The outbox of a connection served by greenlets.

    A frame goes out at once when nothing is queued and the socket takes it
    whole: a broadcast writes to one member after the other, with no greenlet
    switch. Otherwise it is queued for a sender greenlet, started then and ended
    once the queue is empty: an idle connection holds no greenlet for sending
    (each greenlet holds a stack of its own).
    """

    def __init__(self, size: int, ws: WebSocket) -> None:
        super().__init__(size)
        self.ws = ws
        self.sender: gevent.Greenlet[..., None] | None = None
        self.sending = True  # until the connection ends: then frames only queue
        self.ended = gevent.event.Event()  # closed, or a send failed: the connection ends

    def offer(self, frame: str) -> bool:
        idle = self.sending and self.sender is None and not self.frames
        if idle and self.ws.send_nowait(text_frame(frame)):
            return True
        if len(self.frames) >= self.size:
            return False
        self.frames.append(frame)
        if self.sending and self.sender is None:
            self.sender = gevent.spawn(self._send_queued)
        return True

    def on_close(self) -> None:
        self.ended.set()

    def stop_sending(self) -> None:
        """Kill the sender, if one runs, and start no other: frames only queue now."""
        self.sending = False
        if self.sender is not None:
            self.sender.kill()

    def _send_queued(self) -> None:
        try:
            while self.frames:
                self.ws.send(self.frames.popleft())
        except WebSocketError:
            self.ended.set()  # the peer vanished with frames still queued
        finally:
            self.sender = None


class ConnectionEnded(BaseException):
    """Thrown into the receiving greenlet when its outbox ends the connection; a
    BaseException, as ``gevent.Timeout`` is, so that no ``except Exception`` on the
    way swallows it."""


class RoomsResource:
    """``/ws``: the rooms protocol (``protocol.py``, ``connection.py``), one hub per process."""

    def __init__(self, services: Services, broker: Broker) -> None:
        self.hub = services.hub
        self.broker = broker
        self.connections = services.connections
        self.outbox_size = services.settings.outbox_size

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ws = accept(req, self.connections)
        if ws is None:
            return
        try:
            self._serve(ws, GeventOutbox(self.outbox_size, ws))
        finally:
            self.connections.release()

    def _serve(self, ws: WebSocket, outbox: GeventOutbox) -> None:
        session = Session(self.hub, self.broker, outbox)
        # This greenlet receives (no greenlet of its own for that: each holds a
        # stack). The outbox ending the connection interrupts the receiving, as
        # gevent.Timeout interrupts what it guards.
        receiver, receiving = gevent.getcurrent(), True

        def interrupt(_: object) -> None:
            if receiving:
                receiver.throw(ConnectionEnded)

        outbox.ended.rawlink(interrupt)
        try:
            with contextlib.suppress(ConnectionEnded):
                self._receive_frames(ws, session)
        finally:
            receiving = False
            outbox.ended.unlink(interrupt)
            session.end()
            outbox.stop_sending()
        if outbox.closed:
            with contextlib.suppress(gevent.Timeout, WebSocketError), gevent.Timeout(FLUSH_TIMEOUT):
                while outbox.frames:
                    ws.send(outbox.frames.popleft())
            ws.close(outbox.close_code, outbox.close_reason)

    def _receive_frames(self, ws: WebSocket, session: Session) -> None:
        while (frame := ws.receive()) is not None and session.receive(frame):
            # Let the senders run between two frames of a burst: without it a
            # burst larger than an outbox closes readers that keep up.
            gevent.sleep(0)


def create_app(settings: Settings | None = None, authenticate: Authenticate | None = None) -> App:
    """Build the WSGI application with every route, its broker started.

    Args:
        settings: Defaults to the environment's.
        authenticate: A check every websocket handshake must pass; defaults to
            the ``AUTH_TOKEN`` check when that is set.
    """
    services = Services.from_settings(settings, authenticate)
{%- if cookiecutter.broker == "redis" %}
    broker: Broker = RedisBroker(
        services.hub, services.settings.redis_url, services.settings.redis_prefix
    )
{%- else %}
    broker: Broker = MemoryBroker(services.hub)
{%- endif %}
    app = App(broker, [GuardMiddleware(services.guard)])
    add_routes(
        app,
        index=IndexResource(),
        health=HealthResource(services.hub, broker),
        rooms=RoomsResource(services, broker),
        echo=EchoResource(services.connections),
    )
    return app


app = create_app()
