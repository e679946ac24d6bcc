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

from .config import Settings
from .connection import AT_CAPACITY, FLUSH_TIMEOUT, BoundedOutbox, Session
from .errors import upgrade_required
from .gevent_websocket import ACCEPT_WEBSOCKET, WebSocket, text_frame
from .guard import Authenticate
from .routes import Echo, Health, Index, Part, Rooms, Services, add_routes


class GuardMiddleware(Part):
    """Refuses a websocket handshake with 403, before the 101, if the guard says so."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if ACCEPT_WEBSOCKET in req.env:
            self.services.guard.check(req)


def accept(req: falcon.Request, admitted: bool) -> WebSocket | None:
    """Accept the handshake: the websocket, or None if the process had no place for it
    (the socket is closed at once: 1013).

    Raises:
        falcon.HTTPError: 426 for a plain GET, which asked for no websocket.
    """
    accept_websocket = req.env.get(ACCEPT_WEBSOCKET)
    if accept_websocket is None:
        raise upgrade_required()
    ws: WebSocket = accept_websocket()
    if not admitted:
        ws.close(*AT_CAPACITY)
    return ws if admitted else None


class IndexResource(Index):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.respond(resp)


class HealthResource(Health):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.respond(resp)


class EchoResource(Echo):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # WebSocketError: the peer vanished while its echo was on the way.
        with self.services.connections.place() as admitted, contextlib.suppress(WebSocketError):
            # receive() gives str for text, bytes for binary, None once the peer
            # is gone; the worker ignores this responder's status and body.
            ws = accept(req, admitted)
            while ws is not None and (message := ws.receive()) is not None:
                ws.send(message, binary=not isinstance(message, str))


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
        if not self.queue(frame):
            return False
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


class RoomsResource(Rooms):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.services.connections.place() as admitted:
            if (ws := accept(req, admitted)) is None:
                return
            outbox = GeventOutbox(self.services.settings.outbox_size, ws)
            session = Session(self.services.hub, self.services.broker, outbox)
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
                    while (frame := ws.receive()) is not None and session.receive(frame):
                        gevent.sleep(0)  # the senders' turn
            finally:
                receiving = False
                outbox.ended.unlink(interrupt)
                session.end()
                outbox.stop_sending()
            if outbox.closed:
                timeout = gevent.Timeout(FLUSH_TIMEOUT)
                with contextlib.suppress(gevent.Timeout, WebSocketError), timeout:
                    while outbox.frames:
                        ws.send(outbox.frames.popleft())
                ws.close(outbox.close_code, outbox.close_reason)


class App(falcon.App[falcon.Request, falcon.Response]):
    """``falcon.App`` with every route; its broker starts with it and stops with
    :meth:`stop`, which the worker (``gunicorn_worker.py``) calls once its
    connections have ended."""

    def __init__(self, services: Services) -> None:
        super().__init__(middleware=[GuardMiddleware(services)])
        self.broker = services.broker
        add_routes(self, services, IndexResource, HealthResource, RoomsResource, EchoResource)
        self.broker.start()

    def stop(self) -> None:
        """Let the broker carry out what it was given (departures, say), then stop it."""
        self.broker.stop()


def create_app(settings: Settings | None = None, authenticate: Authenticate | None = None) -> App:
    """Build the WSGI application (arguments: :meth:`routes.Services.from_settings`)."""
    return App(Services.from_settings(settings, authenticate))


app = create_app()
