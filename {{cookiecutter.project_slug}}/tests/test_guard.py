"""The handshake guard: which origins and credentials may open a websocket."""

from __future__ import annotations

import falcon.testing
import pytest

from {{ cookiecutter.package_name }}.guard import HandshakeGuard, redact, token_check
from {{ cookiecutter.package_name }}.limits import ConnectionLimit


def handshake(headers: dict[str, str] | None = None, query: str = "") -> falcon.Request:
    return falcon.testing.create_req(path="/ws", headers=headers, query_string=query)


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://chat.example", "chat.example", True),
        ("https://chat.example", "chat.example", True),  # TLS ended by a proxy
        ("http://chat.example:80", "chat.example", True),
        ("https://chat.example", "chat.example:443", True),
        ("HTTP://Chat.Example:8000", "chat.example:8000", True),
        ("http://chat.example:8001", "chat.example:8000", False),
        ("http://evil.example", "chat.example", False),
        ("http://chat.example.evil.example", "chat.example", False),
        ("null", "chat.example", False),  # sandboxed frames and file:// pages
        ("http://chat.example", None, False),
    ],
)
def test_same_origin_is_allowed_and_nothing_else(
    origin: str, host: str | None, allowed: bool
) -> None:
    assert HandshakeGuard().origin_allowed(origin, host) is allowed


def test_listed_origins_are_allowed_too() -> None:
    guard = HandshakeGuard(["https://app.example", "http://localhost:5173"])
    assert guard.origin_allowed("https://app.example:443", "api.example")
    assert guard.origin_allowed("http://localhost:5173", "api.example")
    assert not guard.origin_allowed("http://app.example", "api.example")
    assert not guard.origin_allowed("http://localhost:5174", "api.example")


def test_a_star_allows_every_origin() -> None:
    assert HandshakeGuard(["*"]).origin_allowed("http://anywhere.example", "api.example")


def test_refusal_names_the_reason() -> None:
    guard = HandshakeGuard(authenticate=token_check("s3cret"))
    foreign = {"Origin": "http://evil.example", "Host": "chat.example"}
    assert guard.refusal(handshake(foreign, "token=s3cret")) == "origin not allowed"
    assert guard.refusal(handshake({"Host": "chat.example"})) == "missing or wrong credentials"
    assert guard.refusal(handshake({"Host": "chat.example"}, "token=s3cret")) is None
    # No Origin: a program, not a page, which no other site can drive.
    assert HandshakeGuard().refusal(handshake({"Host": "chat.example"})) is None


@pytest.mark.parametrize(
    ("headers", "query", "passes"),
    [
        ({"Authorization": "Bearer s3cret"}, "", True),
        ({"Authorization": "bearer s3cret"}, "", True),
        ({}, "token=s3cret", True),
        ({}, "room=a&token=s3cret", True),
        ({"Authorization": "Bearer wrong"}, "token=s3cret", False),  # the header decides
        ({"Authorization": "Basic czNjcmV0"}, "", False),
        ({}, "token=s3cre", False),
        ({}, "token=s3cret2", False),
        ({}, "", False),
    ],
)
def test_token_check(headers: dict[str, str], query: str, passes: bool) -> None:
    assert token_check("s3cret")(handshake(headers, query)) is passes


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("GET /ws?token=s3cret HTTP/1.1", "GET /ws?token=REDACTED HTTP/1.1"),
        ('"WebSocket /ws?room=a&token=s3cret"', '"WebSocket /ws?room=a&token=REDACTED"'),
        ("token=s3cret&room=a", "token=REDACTED&room=a"),
        ("/ws?mytoken=kept", "/ws?mytoken=kept"),
        ("/ws", "/ws"),
    ],
)
def test_redact_hides_token_values(text: str, redacted: str) -> None:
    assert redact(text) == redacted


def test_connection_limit_counts_up_to_its_maximum() -> None:
    limit = ConnectionLimit(2)
    assert [limit.acquire() for _ in range(3)] == [True, True, False]
    limit.release()
    assert limit.acquire()
    assert limit.count == 2


def test_a_place_is_given_back_after_and_none_is_taken_at_the_cap() -> None:
    limit = ConnectionLimit(1)
    with limit.place() as first:
        assert first
        with limit.place() as second:
            assert not second
        assert limit.count == 1
    assert limit.count == 0
    with pytest.raises(ConnectionError, match="gone"), limit.place():
        raise ConnectionError("gone")  # given back however the connection ends
    assert limit.count == 0
