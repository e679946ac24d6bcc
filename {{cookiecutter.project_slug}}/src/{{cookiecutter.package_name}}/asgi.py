"""ASGI adapter: ``falcon.asgi.App`` with falcon's native websockets.

Serve it with ``python -m {{ cookiecutter.package_name }}`` (uvicorn, settings from the
environment) or ``uvicorn {{ cookiecutter.package_name }}.asgi:app``.
"""

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import falcon
import falcon.asgi
from falcon.media import BinaryBaseHandlerWS, TextBaseHandlerWS

from . import pages
{%- if cookiecutter.broker == "redis" %}
from .broker import Broker, health
{%- else %}
from .broker import Broker, MemoryBroker, health
{%- endif %}
from .close_codes import CloseCode
from .config import Settings
from .errors import upgrade_required
from .guard import Authenticate, HandshakeGuard
from .limits import ConnectionLimit
{%- if cookiecutter.broker == "redis" %}
from .redis_asyncio import RedisBroker
{%- endif %}
from .rooms import Hub
from .uvicorn_server import SEND_NOWAIT

FLUSH_TIMEOUT = 1.0


class RawText(TextBaseHandlerWS):
    """Pass TEXT payloads through as ``str``, unparsed."""

    def serialize(self, media: object) -> str:
        return str(media)

    def deserialize(self, payload: str) -> object:
        return payload


class RawBinary(BinaryBaseHandlerWS):
    """Pass BINARY payloads through as ``bytes``, unparsed."""

    def serialize(self, media: object) -> bytes:
        if not isinstance(media, bytes | bytearray | memoryview):
            raise TypeError(f"expected a bytes-like object, got {type(media).__name__}")
        return bytes(media)

    def deserialize(self, payload: bytes) -> object:
        return payload


ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]
HTTP_VERSIONS = frozenset({"1.0", "1.1", "2", "3"})


class SupportedHTTPVersions:
    """Answers 400 to HTTP versions falcon cannot serve.

    uvicorn's parser lets an HTTP/0.9 request line through, and falcon refuses
    its scope with an exception: a 500 and a traceback for any client to cause.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope.get("http_version") not in HTTP_VERSIONS:
            headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": b"HTTP/1.0 or newer required"})
            return
        await self.app(scope, receive, send)


class GuardMiddleware:
    """Refuses a websocket handshake with 403, before it is accepted, if the guard says so."""

    def __init__(self, guard: HandshakeGuard) -> None:
        self.guard = guard

    async def process_request_ws(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        reason = self.guard.refusal(req)
        if reason is not None:
            raise falcon.HTTPForbidden(description=reason)


async def accept(ws: falcon.asgi.WebSocket, connections: ConnectionLimit) -> bool:
    """Accept the handshake; if the process is at its cap, close at once with 1013."""
    await ws.accept()
    if connections.acquire():
        return True
    with contextlib.suppress(falcon.WebSocketDisconnected):
        await ws.close(CloseCode.TRY_AGAIN_LATER, "server at capacity, try again later")
    return False


class IndexResource:
    """The browser client page."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = pages.INDEX_HTML


class HealthResource:
    """Readiness probe: 200 while the server can serve, 503 with a reason when it cannot."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self.hub = hub
        self.broker = broker

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        document = health(self.hub, self.broker)
        resp.media = document
        if document["status"] != "ok":
            resp.status = falcon.HTTP_503


class EchoResource:
    """Send every message back unchanged: text as text, binary as binary."""

    def __init__(self, connections: ConnectionLimit) -> None:
        self.connections = connections

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise upgrade_required()

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        if not await accept(ws, self.connections):
            return
        try:
            while True:
                # receive_media() takes either frame type; the raw handlers
                # installed by create_app() hand back str or bytes as sent.
                message = await ws.receive_media()
                if isinstance(message, str):
                    await ws.send_text(message)
                elif isinstance(message, bytes):
                    await ws.send_data(message)
        except falcon.WebSocketDisconnected:
            pass
        finally:
            self.connections.release()


class Outbox:
    """A connection's bounded queue of frames, filled by the hub, drained by its sender.

    One deque and futures made when needed, not an ``asyncio.Queue`` and an
    ``Event``: every connection holds its outbox for life, idle or not, and
    those would hold four deques and a task to wait on the event.
    """

    def __init__(self, size: int, send_nowait: Callable[[str], bool] | None = None) -> None:
        self.size = size
        self.send_nowait = send_nowait
        self.frames: collections.deque[str] = collections.deque()
        # Set while the sender waits for a frame with nothing queued or being sent,
        # and the outbox is open; a broadcast asks only this of every member.
        self.waiter: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int = CloseCode.NORMAL_CLOSURE
        self.close_reason = ""

    def offer(self, frame: str) -> bool:
        waiter = self.waiter
        if waiter is not None:
            # The frame goes at once if the server can write it now (no task
            # woken); else it is queued below and the sender woken.
            if self.send_nowait is not None and self.send_nowait(frame):
                return True
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(self.frames) >= self.size:
            return False
        self.frames.append(frame)
        return True

    async def get(self) -> str:
        """The next frame, once there is one."""
        while not self.frames:
            waiter = asyncio.get_running_loop().create_future()
            if not self.closed.done():
                self.waiter = waiter
            try:
                await waiter
            finally:
                self.waiter = None
        return self.frames.popleft()

    def close(self, code: int, reason: str) -> None:
        if not self.closed.done():
            self.close_code, self.close_reason = code, reason
            self.waiter = None
            self.closed.set_result(None)


class RoomsResource:
    """``/ws``: the rooms protocol (see ``protocol.py``), one hub per process."""

    def __init__(
        self, hub: Hub, broker: Broker, connections: ConnectionLimit, outbox_size: int
    ) -> None:
        self.hub = hub
        self.broker = broker
        self.connections = connections
        self.outbox_size = outbox_size

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise upgrade_required()

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        if not await accept(ws, self.connections):
            return
        # Where the server offers it (uvicorn_server.py does): a send that needs no task.
        send_nowait = req.scope.get("extensions", {}).get(SEND_NOWAIT, {}).get("send")
        try:
            await self._serve(ws, send_nowait)
        finally:
            self.connections.release()

    async def _serve(
        self, ws: falcon.asgi.WebSocket, send_nowait: Callable[[str], bool] | None
    ) -> None:
        outbox = Outbox(self.outbox_size, send_nowait)
        connection_id, welcome = self.hub.connect(outbox)
        self.broker.submit(welcome)
        tasks = {
            asyncio.create_task(self._send_frames(ws, outbox)),
            asyncio.create_task(self._receive_frames(ws, connection_id, outbox)),
        }
        try:
            # Whichever ends first ends the connection: the peer left, a send
            # failed, or the hub or the receiver asked for a close.
            await asyncio.wait({*tasks, outbox.closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.broker.submit(self.hub.disconnect(connection_id))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if outbox.closed.done():
            # What was queued before the close (the errors that led to it, say) goes
            # first, for a bounded time: a reader too slow for its outbox takes nothing.
            flush = asyncio.create_task(self._send_queued(ws, outbox))
            await asyncio.wait({flush}, timeout=FLUSH_TIMEOUT)
            flush.cancel()
            with contextlib.suppress(falcon.WebSocketDisconnected):
                await ws.close(outbox.close_code, outbox.close_reason)

    async def _send_queued(self, ws: falcon.asgi.WebSocket, outbox: Outbox) -> None:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            while outbox.frames:
                await ws.send_text(outbox.frames.popleft())

    async def _send_frames(self, ws: falcon.asgi.WebSocket, outbox: Outbox) -> None:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            while True:
                await ws.send_text(await outbox.get())

    async def _receive_frames(
        self, ws: falcon.asgi.WebSocket, connection_id: str, outbox: Outbox
    ) -> None:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            while True:
                frame = await ws.receive_media()
                if not isinstance(frame, str):
                    outbox.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
                    return
                self.broker.submit(self.hub.receive(connection_id, frame))
                # Let the senders run between two frames of a burst: without it a
                # burst larger than an outbox closes readers that keep up.
                await asyncio.sleep(0)


def create_app(
    settings: Settings | None = None, authenticate: Authenticate | None = None
) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """Build the ASGI application with every route.

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
    # As middleware, the broker starts and stops with the ASGI lifespan.
    app = falcon.asgi.App(middleware=(guard, broker))
{%- else %}
    broker = MemoryBroker(hub)
    app = falcon.asgi.App(middleware=[guard])
{%- endif %}
    # Falcon 4 has no public "receive whatever frame comes next" call; raw
    # media handlers turn receive_media() into exactly that.
    app.ws_options.media_handlers[falcon.WebSocketPayloadType.TEXT] = RawText()
    app.ws_options.media_handlers[falcon.WebSocketPayloadType.BINARY] = RawBinary()
    # Falcon's receive buffer (a task per connection that reads ahead) is for apps
    # that stop receiving while they send, to notice a peer that left; every
    # handler here always has a receive pending, which notices it as soon.
    app.ws_options.max_receive_queue = 0

    app.add_route("/", IndexResource())
    app.add_route("/health", HealthResource(hub, broker))
    app.add_route("/ws", RoomsResource(hub, broker, connections, settings.outbox_size))
    app.add_route("/ws/echo", EchoResource(connections))
    app.add_static_route("/static", pages.STATIC_DIR)
    return app


app = SupportedHTTPVersions(create_app())
