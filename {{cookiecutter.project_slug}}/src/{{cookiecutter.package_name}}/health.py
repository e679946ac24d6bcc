"""The ``/health`` document, the same under every server."""

from __future__ import annotations

import falcon

from .broker import Broker
from .rooms import Hub


def health(hub: Hub, broker: Broker) -> tuple[dict[str, object], str]:
    """The document and its status: 200 while the server can serve, 503 with a reason when not."""
    reason = broker.not_ready()
    document: dict[str, object] = {"status": "ok" if reason is None else "unavailable"}
    if reason is not None:
        document["reason"] = reason
    document.update(connections=hub.connections, rooms=hub.rooms)
    return document, falcon.HTTP_200 if reason is None else falcon.HTTP_503
