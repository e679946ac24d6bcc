"""HTTP errors both server adapters raise the same way."""

import falcon


def upgrade_required() -> falcon.HTTPError:
    """A plain HTTP request reached a websocket-only route: answer 426."""
    return falcon.HTTPError(
        falcon.HTTP_426,
        title="Upgrade Required",
        description="This endpoint speaks WebSocket only: open it with a websocket client.",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )
