"""ASGI adapter: ``falcon.asgi.App`` with falcon's native websockets.

Serve it with ``python -m {{ cookiecutter.package_name }}`` (uvicorn, settings from the
environment) or ``uvicorn {{ cookiecutter.package_name }}.asgi:app``.
"""

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import falcon
import falcon.asgi
from falcon.media import BinaryBaseHandlerWS, TextBaseHandlerWS

from . import pages
{%- if cookiecutter.broker == "redis" %}
from .broker import Broker
{%- else %}
from .broker import Broker, MemoryBroker
{%- endif %}
from .config import Settings
from .connection import AT_CAPACITY, FLUSH_TIMEOUT, BoundedOutbox, Session
from .errors import upgrade_required
from .guard import Authenticate, HandshakeGuard
from .health import health
from .limits import ConnectionLimit
{%- if cookiecutter.broker == "redis" %}
from .redis_asyncio import RedisBroker
{%- endif %}
from .rooms import Hub
from .uvicorn_server import SEND_NOWAIT
from .wiring import Services, add_routes


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


class BrokerLifespan:
    """Starts the broker with the ASGI lifespan, and stops it with the lifespan's end."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        self.broker.start()

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        stopping = self.broker.stop()
        if inspect.isawaitable(stopping):
            await stopping


async def accept(ws: falcon.asgi.WebSocket, connections: ConnectionLimit) -> bool:
    """Accept the handshake; if the process is at its cap, close at once (1013)."""
    await ws.accept()
    if connections.acquire():
        return True
    with contextlib.suppress(falcon.WebSocketDisconnected):
        await ws.close(*AT_CAPACITY)
    return False


class IndexResource:
    """The browser client page."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = pages.INDEX_HTML


class HealthResource:
    """Readiness probe (see ``health.py``)."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self.hub = hub
        self.broker = broker

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media, resp.status = health(self.hub, self.broker)


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


class AsyncioOutbox(BoundedOutbox):
    """The outbox of a connection served by tasks: its sender awaits :meth:`get`.

    Futures made when needed, not an ``asyncio.Queue`` and an ``Event``: every
    connection holds its outbox for life, idle or not, and those would hold
    four deques and a task to wait on the event.
    """

    def __init__(self, size: int, send_nowait: Callable[[str], bool] | None = None) -> None:
        super().__init__(size)
        self.send_nowait = send_nowait
        # Set while the sender waits for a frame with nothing queued or being sent,
        # and the outbox is open; a broadcast asks only this of every member.
        self.waiter: asyncio.Future[None] | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

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
            if not self.closed:
                self.waiter = waiter
            try:
                await waiter
            finally:
                self.waiter = None
        return self.frames.popleft()

    def on_close(self) -> None:
        self.waiter = None
        self.ended.set_result(None)


class RoomsResource:
    """``/ws``: the rooms protocol (``protocol.py``, ``connection.py``), one hub per process."""

    def __init__(self, services: Services, broker: Broker) -> None:
        self.hub = services.hub
        self.broker = broker
        self.connections = services.connections
        self.outbox_size = services.settings.outbox_size

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise upgrade_required()

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        if not await accept(ws, self.connections):
            return
        # Where the server offers it (uvicorn_server.py does): a send that needs no task.
        send_nowait = req.scope.get("extensions", {}).get(SEND_NOWAIT, {}).get("send")
        try:
            await self._serve(ws, AsyncioOutbox(self.outbox_size, send_nowait))
        finally:
            self.connections.release()

    async def _serve(self, ws: falcon.asgi.WebSocket, outbox: AsyncioOutbox) -> None:
        session = Session(self.hub, self.broker, outbox)
        tasks = {
            asyncio.create_task(self._send_frames(ws, outbox)),
            asyncio.create_task(self._receive_frames(ws, session)),
        }
        try:
            await asyncio.wait({*tasks, outbox.ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            session.end()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if outbox.closed:
            flush = asyncio.create_task(self._send_queued(ws, outbox))
            await asyncio.wait({flush}, timeout=FLUSH_TIMEOUT)
            flush.cancel()
            with contextlib.suppress(falcon.WebSocketDisconnected):
                await ws.close(outbox.close_code, outbox.close_reason)

    async def _send_queued(self, ws: falcon.asgi.WebSocket, outbox: AsyncioOutbox) -> None:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            while outbox.frames:
                await ws.send_text(outbox.frames.popleft())

    async def _send_frames(self, ws: falcon.asgi.WebSocket, outbox: AsyncioOutbox) -> None:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            while True:
                await ws.send_text(await outbox.get())

    async def _receive_frames(self, ws: falcon.asgi.WebSocket, session: Session) -> None:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            while session.receive(await ws.receive_media()):
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
    services = Services.from_settings(settings, authenticate)
{%- if cookiecutter.broker == "redis" %}
    broker: Broker = RedisBroker(
        services.hub, services.settings.redis_url, services.settings.redis_prefix
    )
{%- else %}
    broker: Broker = MemoryBroker(services.hub)
{%- endif %}
    app = falcon.asgi.App(middleware=(GuardMiddleware(services.guard), BrokerLifespan(broker)))
    # Falcon 4 has no public "receive whatever frame comes next" call; raw
    # media handlers turn receive_media() into exactly that.
    app.ws_options.media_handlers[falcon.WebSocketPayloadType.TEXT] = RawText()
    app.ws_options.media_handlers[falcon.WebSocketPayloadType.BINARY] = RawBinary()
    # Falcon's receive buffer (a task per connection that reads ahead) is for apps
    # that stop receiving while they send, to notice a peer that left; every
    # handler here always has a receive pending, which notices it as soon.
    app.ws_options.max_receive_queue = 0
    add_routes(
        app,
        index=IndexResource(),
        health=HealthResource(services.hub, broker),
        rooms=RoomsResource(services, broker),
        echo=EchoResource(services.connections),
    )
    return app


app = SupportedHTTPVersions(create_app())
