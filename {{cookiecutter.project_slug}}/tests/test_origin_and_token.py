"""Who may open a websocket on the real server: the Origin allowlist and the token.

Each test stands for one guard and fails without it.
"""

from __future__ import annotations

import json
import secrets

import pytest
from websockets.sync.client import connect

from tests.support.live_server import (
    Server,
    ServerWith,
    get,
)
from tests.support.probes import (
    handshake_status,
    wait_for_log,
)
from tests.support.ws_client import SERVER_EVENT

pytestmark = pytest.mark.slow

ENDPOINTS = ["/ws", "/ws/echo"]
ALLOWED_ORIGINS = "https://app.example.com,http://localhost:5173"


@pytest.fixture(scope="module")
def origin_server(server_with: ServerWith) -> Server:
    return server_with({"ALLOWED_ORIGINS": ALLOWED_ORIGINS})


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "http://localhost:5173",
        "https://app.example.com:443",  # the default port, spelled out
        "HTTPS://App.Example.COM",
        "same-origin",
        None,  # no Origin: not a browser, so no page can be behind it
    ],
)
def test_allowed_origins_may_connect(origin_server: Server, path: str, origin: str | None) -> None:
    if origin == "same-origin":
        origin = f"http://{origin_server.host}:{origin_server.port}"
    assert handshake_status(origin_server, path, {"Origin": origin}) == 101


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",  # listed with https only
        "https://app.example.com.evil.example",
        "https://app.example.com:8443",
        "http://localhost:5174",
        "http://localhost:5173@evil.example",
        "null",  # sandboxed frames and file:// pages
        "other-port",
    ],
)
def test_foreign_origins_are_refused_before_the_upgrade(
    origin_server: Server, path: str, origin: str
) -> None:
    if origin == "other-port":
        origin = f"http://{origin_server.host}:{origin_server.port + 1}"
    assert handshake_status(origin_server, path, {"Origin": origin}) == 403


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("chat.example:80", "http://chat.example", 101),
        ("chat.example", "http://chat.example:80", 101),
        ("chat.example", "https://chat.example:443", 101),  # TLS ended at a proxy
        ("chat.example", "http://chat.example:8080", 403),
        ("chat.example", "http://other.example", 403),
        ("chat.example", "https://evil.example", 403),
    ],
)
def test_by_default_only_the_same_origin_may_connect(
    server: Server, host: str, origin: str, status: int
) -> None:
    assert handshake_status(server, "/ws", {"Host": host, "Origin": origin}) == status


def test_a_star_allows_any_origin(server_with: ServerWith) -> None:
    server = server_with({"ALLOWED_ORIGINS": "*"})
    for path in ENDPOINTS:
        assert handshake_status(server, path, {"Origin": "https://anywhere.example"}) == 101


TOKEN = f"tok-{secrets.token_hex(12)}"
WRONG_TOKEN = f"wrong-{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def auth_server(server_with: ServerWith) -> Server:
    return server_with({"AUTH_TOKEN": TOKEN})


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("query", "authorization", "status"),
    [
        ("", None, 403),
        ("", f"Bearer {WRONG_TOKEN}", 403),
        ("", f"Basic {TOKEN}", 403),
        ("", "Bearer", 403),
        (f"?token={WRONG_TOKEN}", None, 403),
        ("?token=", None, 403),
        (f"?token={TOKEN[:-1]}", None, 403),  # a prefix of the token is no token
        ("", f"Bearer {TOKEN}", 101),
        (f"?token={TOKEN}", None, 101),
        (f"?room=lobby&token={TOKEN}", None, 101),
    ],
)
def test_a_handshake_needs_the_token(
    auth_server: Server, path: str, query: str, authorization: str | None, status: int
) -> None:
    assert handshake_status(auth_server, path + query, {"Authorization": authorization}) == status


def test_plain_http_needs_no_token(auth_server: Server) -> None:
    assert get(f"{auth_server.http_url}/health")[0] == 200
    assert get(f"{auth_server.http_url}/")[0] == 200


def test_tokens_never_reach_the_log(auth_server: Server) -> None:
    marker = secrets.token_hex(6)
    offset = len(auth_server.log())
    with connect(f"{auth_server.ws_url}/ws?probe={marker}-ok&token={TOKEN}", open_timeout=5) as ws:
        SERVER_EVENT.validate(json.loads(ws.recv(timeout=5)))
    path = f"/ws/echo?probe={marker}-refused&token={WRONG_TOKEN}"
    assert handshake_status(auth_server, path) == 403
    with connect(
        f"{auth_server.ws_url}/ws/echo?probe={marker}-header",
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
        open_timeout=5,
    ) as ws:
        ws.send("hi")
        ws.recv(timeout=5)
    # The lines of all three attempts are there, so the check below is not vacuous.
    for outcome in ("ok", "refused", "header"):
        log = wait_for_log(auth_server, f"probe={marker}-{outcome}", offset)
    assert TOKEN not in log
    assert WRONG_TOKEN not in log
    assert TOKEN not in auth_server.log()
