"""WSGI adapter: ``falcon.App`` with websockets from gevent-websocket.

Serve it with ``gunicorn --config gunicorn.conf.py``, which selects
gevent-websocket's worker. Under WSGI falcon never calls ``on_websocket``:
the worker has already answered the upgrade before the app runs and hands
the socket over in ``req.env["wsgi.websocket"]`` on a plain GET. A plain
``gunicorn {{ cookiecutter.package_name }}.wsgi:app`` serves no websocket at all.
"""

import falcon

from . import pages
from .errors import upgrade_required


class IndexResource:
    """The browser client page."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = pages.INDEX_HTML


class HealthResource:
    """Liveness probe for load balancers and orchestrators."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


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


def create_app() -> falcon.App[falcon.Request, falcon.Response]:
    """Build the WSGI application with every route."""
    app = falcon.App()
    app.add_route("/", IndexResource())
    app.add_route("/health", HealthResource())
    app.add_route("/ws/echo", EchoResource())
    app.add_static_route("/static", pages.STATIC_DIR)
    return app


app = create_app()
