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

from .broker import Broker
from .config import Settings
from .connection import AT_CAPACITY, FLUSH_TIMEOUT, BoundedOutbox, Session
from .errors import upgrade_required
from .guard import Authenticate
from .routes import Echo, Health, Index, Part, Rooms, Services, add_routes
from .uvicorn_websocket import SEND_NOWAIT


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


class GuardMiddleware(Part):
    """Refuses a websocket handshake with 403, before it is accepted, if the guard says so."""

    async def process_request_ws(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        self.services.guard.check(req)


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


async def accept(ws: falcon.asgi.WebSocket, admitted: bool) -> bool:
    """Accept the handshake, and close the connection at once (1013) if the process had
    no place for it; return ``admitted``."""
    await ws.accept()
    if not admitted:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            await ws.close(*AT_CAPACITY)
    return admitted


class WebSocketOnly:
    """A websocket route: a plain GET, which asked for no websocket, gets 426."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise upgrade_required()


class IndexResource(Index):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.respond(resp)


class HealthResource(Health):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.respond(resp)


class EchoResource(WebSocketOnly, Echo):
    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        with self.services.connections.place() as admitted:
            if not await accept(ws, admitted):
                return
            # receive_media() takes either frame type; the raw handlers
            # installed by App hand back str or bytes as sent.
            with contextlib.suppress(falcon.WebSocketDisconnected):
                while True:
                    message = await ws.receive_media()
                    if isinstance(message, str):
                        await ws.send_text(message)
                    elif isinstance(message, bytes):
                        await ws.send_data(message)


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
        return self.queue(frame)

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


class RoomsResource(WebSocketOnly, Rooms):
    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        # Where the server offers it (uvicorn_websocket.py does): a send that needs no task.
        send_nowait = req.scope.get("extensions", {}).get(SEND_NOWAIT, {}).get("send")
        with self.services.connections.place() as admitted:
            if not await accept(ws, admitted):
                return
            outbox = AsyncioOutbox(self.services.settings.outbox_size, send_nowait)
            session = Session(self.services.hub, self.services.broker, outbox)
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
                await asyncio.sleep(0)  # the senders' turn


class App(falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]):
    """``falcon.asgi.App`` with every route; its broker runs with the ASGI lifespan."""

    def __init__(self, services: Services) -> None:
        guard, lifespan = GuardMiddleware(services), BrokerLifespan(services.broker)
        super().__init__(middleware=(guard, lifespan))
        # Falcon 4 has no public "receive whatever frame comes next" call; raw
        # media handlers turn receive_media() into exactly that.
        self.ws_options.media_handlers[falcon.WebSocketPayloadType.TEXT] = RawText()
        self.ws_options.media_handlers[falcon.WebSocketPayloadType.BINARY] = RawBinary()
        # Falcon's receive buffer (a task per connection that reads ahead) is for apps
        # that stop receiving while they send, to notice a peer that left; every
        # handler here always has a receive pending, which notices it as soon.
        self.ws_options.max_receive_queue = 0
        add_routes(self, services, IndexResource, HealthResource, RoomsResource, EchoResource)


def create_app(settings: Settings | None = None, authenticate: Authenticate | None = None) -> App:
    """Build the ASGI application (arguments: :meth:`routes.Services.from_settings`)."""
    return App(Services.from_settings(settings, authenticate))


app = SupportedHTTPVersions(create_app())
