"""The HTTP side of the real server: client page, static files, health, errors."""

import json
from pathlib import Path

import pytest

from tests.support.live_server import Server, ServerStartError, get, start_server, stop_server


def test_index_serves_the_client_page(server: Server) -> None:
    status, headers, body = get(f"{server.http_url}/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'src="static/page.js"' in body


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/client.js", "text/javascript"),
        ("/static/page.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ],
)
def test_static_files_are_served(server: Server, path: str, content_type: str) -> None:
    status, headers, body = get(f"{server.http_url}{path}")
    assert status == 200
    assert headers["Content-Type"].startswith(content_type)
    assert body


def test_health_answers_json(server: Server) -> None:
    status, headers, body = get(f"{server.http_url}/health")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert isinstance(health["connections"], int)
    assert isinstance(health["rooms"], int)


def test_plain_get_on_websocket_route_is_426(server: Server) -> None:
    status, headers, body = get(f"{server.http_url}/ws/echo")
    assert status == 426
    assert headers["Upgrade"] == "websocket"
    assert b"WebSocket" in body


def test_unknown_path_is_404(server: Server) -> None:
    status, _, _ = get(f"{server.http_url}/no-such-page")
    assert status == 404


def test_bad_setting_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    # Every setting is validated by Settings.from_env (test_config.py), before the server starts.
    with pytest.raises(ServerStartError) as refused:
        stop_server(start_server(tmp_path, {"MAX_MESSAGE_BYTES": "lots"}))
    errors = [line for line in str(refused.value).splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: MAX_MESSAGE_BYTES='lots' is not valid: use a whole number from 125 to 67108864."
    ]
{%- if cookiecutter.broker == "memory" %}


def test_more_than_one_worker_is_refused(tmp_path: Path) -> None:
    # Rooms live in process memory: a second worker would split every room.
    with pytest.raises(ServerStartError, match=r"WORKERS=2: rooms live in this process's memory"):
        stop_server(start_server(tmp_path, {"WORKERS": "2"}))
{%- endif %}
