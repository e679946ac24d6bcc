"""ASGI adapter: ``falcon.asgi.App`` with falcon's native websockets.

Serve it with ``python -m {{ cookiecutter.package_name }}`` (uvicorn, settings from the
environment) or ``uvicorn {{ cookiecutter.package_name }}.asgi:app``.
"""

import falcon
import falcon.asgi
from falcon.media import BinaryBaseHandlerWS, TextBaseHandlerWS

from . import pages
from .errors import upgrade_required


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


class IndexResource:
    """The browser client page."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = pages.INDEX_HTML


class HealthResource:
    """Liveness probe for load balancers and orchestrators."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "ok"}


class EchoResource:
    """Send every message back unchanged: text as text, binary as binary."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise upgrade_required()

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        await ws.accept()
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


def create_app() -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """Build the ASGI application with every route."""
    app = falcon.asgi.App()
    # Falcon 4 has no public "receive whatever frame comes next" call; raw
    # media handlers turn receive_media() into exactly that.
    app.ws_options.media_handlers[falcon.WebSocketPayloadType.TEXT] = RawText()
    app.ws_options.media_handlers[falcon.WebSocketPayloadType.BINARY] = RawBinary()

    app.add_route("/", IndexResource())
    app.add_route("/health", HealthResource())
    app.add_route("/ws/echo", EchoResource())
    app.add_static_route("/static", pages.STATIC_DIR)
    return app


app = create_app()
