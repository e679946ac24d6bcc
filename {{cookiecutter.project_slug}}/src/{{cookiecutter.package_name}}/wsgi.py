"""WSGI adapter: ``falcon.App`` with websockets from gevent-websocket.

Serve it with ``gunicorn --config gunicorn.conf.py``, which selects this
project's worker (``gunicorn_worker.py``, built on gevent-websocket's). Under WSGI falcon
never calls ``on_websocket``: an upgrade request arrives as a plain GET with
``req.env[ACCEPT_WEBSOCKET]``, which answers 101 and returns the websocket (also left in
``req.env["wsgi.websocket"]``, as gevent-websocket does). Until then the app may
still refuse with any HTTP status. A plain ``gunicorn {{ cookiecutter.package_name }}.wsgi:app``
serves no websocket at all.
"""

import collections
import contextlib

import falcon
import gevent
import gevent.event
from geventwebsocket.exceptions import WebSocketError

from . import pages
{%- if cookiecutter.broker == "redis" %}
from .broker import Broker, health
{%- else %}
from .broker import Broker, MemoryBroker, health
{%- endif %}
from .close_codes import CloseCode
from .config import Settings
from .errors import upgrade_required
from .gevent_websocket import ACCEPT_WEBSOCKET, WebSocket, text_frame
from .guard import Authenticate, HandshakeGuard
from .limits import ConnectionLimit
{%- if cookiecutter.broker == "redis" %}
from .redis_gevent import RedisBroker
{%- endif %}
from .rooms import Hub

FLUSH_TIMEOUT = 1.0


class GuardMiddleware:
    """Refuses a websocket handshake with 403, before the 101, if the guard says so."""

    def __init__(self, guard: HandshakeGuard) -> None:
        self.guard = guard

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if ACCEPT_WEBSOCKET in req.env:
            reason = self.guard.refusal(req)
            if reason is not None:
                raise falcon.HTTPForbidden(description=reason)


def accept(req: falcon.Request, connections: ConnectionLimit) -> WebSocket | None:
    """Accept the handshake; None if the process is at its cap (the socket is closed with 1013).

    Raises:
        falcon.HTTPError: 426 for a plain GET, which asked for no websocket.
    """
    accept_websocket = req.env.get(ACCEPT_WEBSOCKET)
    if accept_websocket is None:
        raise upgrade_required()
    ws: WebSocket = accept_websocket()
    if connections.acquire():
        return ws
    ws.close(CloseCode.TRY_AGAIN_LATER, "server at capacity, try again later")
    return None


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


class Outbox:
    """A connection's bounded queue of frames, filled by the hub.

    A frame goes out at once when nothing is queued and the socket takes it
    whole: a broadcast writes to one member after the other, with no greenlet
    switch. Otherwise it is queued for a sender greenlet, started then and ended
    once the queue is empty: an idle connection holds no greenlet for sending
    (each greenlet holds a stack of its own).
    """

    def __init__(self, size: int, ws: WebSocket) -> None:
        self.size = size
        self.ws = ws
        self.frames: collections.deque[str] = collections.deque()
        self.sender: gevent.Greenlet[..., None] | None = None
        self.sending = True  # until the connection ends: then frames only queue
        self.closed = False  # the hub or the receiver asked for a close
        self.close_code: int = CloseCode.NORMAL_CLOSURE
        self.close_reason = ""
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

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.close_code, self.close_reason = code, reason
            self.closed = True
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
    """``/ws``: the rooms protocol (see ``protocol.py``), one hub per process."""

    def __init__(
        self, hub: Hub, broker: Broker, connections: ConnectionLimit, outbox_size: int
    ) -> None:
        self.hub = hub
        self.broker = broker
        self.connections = connections
        self.outbox_size = outbox_size

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ws = accept(req, self.connections)
        if ws is None:
            return
        try:
            self._serve(ws)
        finally:
            self.connections.release()

    def _serve(self, ws: WebSocket) -> None:
        outbox = Outbox(self.outbox_size, ws)
        connection_id, welcome = self.hub.connect(outbox)
        self.broker.submit(welcome)
        # This greenlet receives (no greenlet of its own for that: each holds a
        # stack). Whichever comes first ends the connection: the peer left, which
        # ends the receiving, or the outbox ended it (the hub or the receiver
        # asked for a close, or a send failed), which interrupts the receiving as
        # gevent.Timeout interrupts what it guards.
        receiver, receiving = gevent.getcurrent(), True

        def interrupt(_: object) -> None:
            if receiving:
                receiver.throw(ConnectionEnded)

        outbox.ended.rawlink(interrupt)
        try:
            with contextlib.suppress(ConnectionEnded):
                self._receive_frames(ws, connection_id, outbox)
        finally:
            receiving = False
            outbox.ended.unlink(interrupt)
            self.broker.submit(self.hub.disconnect(connection_id))
            outbox.stop_sending()
        if outbox.closed:
            # What was queued before the close (the errors that led to it, say) goes
            # first, for a bounded time: a reader too slow for its outbox takes nothing.
            with contextlib.suppress(gevent.Timeout, WebSocketError), gevent.Timeout(FLUSH_TIMEOUT):
                while outbox.frames:
                    ws.send(outbox.frames.popleft())
            ws.close(outbox.close_code, outbox.close_reason)

    def _receive_frames(self, ws: WebSocket, connection_id: str, outbox: Outbox) -> None:
        while (frame := ws.receive()) is not None:
            if not isinstance(frame, str):
                outbox.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
                return
            self.broker.submit(self.hub.receive(connection_id, frame))
            # Let the senders run between two frames of a burst: without it a
            # burst larger than an outbox closes readers that keep up.
            gevent.sleep(0)


def create_app(
    settings: Settings | None = None, authenticate: Authenticate | None = None
) -> falcon.App[falcon.Request, falcon.Response]:
    """Build the WSGI application with every route.

    Args:
        settings: Defaults to the environment's.
        authenticate: A check every websocket handshake must pass; defaults to
            the ``AUTH_TOKEN`` check when that is set.
    """
    settings = settings or Settings.from_env()
    connections = ConnectionLimit(settings.max_connections)
    hub = Hub(
        max_rooms=settings.max_rooms,
        rate_limit=settings.rate_limit,
        rate_burst=settings.rate_burst,
    )
    guard = GuardMiddleware(HandshakeGuard.from_settings(settings, authenticate))
{%- if cookiecutter.broker == "redis" %}
    broker = RedisBroker(hub, settings.redis_url, settings.redis_prefix)
    broker.start()
{%- else %}
    broker = MemoryBroker(hub)
{%- endif %}
    app = falcon.App(middleware=[guard])
    app.add_route("/", IndexResource())
    app.add_route("/health", HealthResource(hub, broker))
    app.add_route("/ws", RoomsResource(hub, broker, connections, settings.outbox_size))
    app.add_route("/ws/echo", EchoResource(connections))
    app.add_static_route("/static", pages.STATIC_DIR)
    return app


app = create_app()
