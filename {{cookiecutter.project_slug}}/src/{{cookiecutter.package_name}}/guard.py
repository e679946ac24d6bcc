"""Who may open a websocket: the Origin allowlist and the optional token, checked before
the upgrade, and the redaction that keeps tokens out of logs.

Browsers attach cookies to a websocket handshake whatever page starts it, so
without an Origin check any site a user visits could talk to this server as
that user (cross-site websocket hijacking). Browsers always send ``Origin``;
a handshake without one comes from a program, which no page can drive.
"""

from __future__ import annotations

import hmac
import re
import urllib.parse
from collections.abc import Callable, Iterable

import falcon

from .config import Settings

Authenticate = Callable[[falcon.Request], bool]
"""Decides, from its falcon request, whether a websocket handshake may proceed."""

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
TOKEN_PARAMETER = "token"  # noqa: S105 -- the name of a query parameter, not a secret
REDACTED = "REDACTED"
_TOKEN_IN_QUERY = re.compile(rf"(?<![^?&;\s]){TOKEN_PARAMETER}=[^&;\s\"']*")


class HandshakeGuard:
    """Refuses websocket handshakes from foreign origins, or without the right credentials.

    Args:
        allowed_origins: Origins (``scheme://host[:port]``) allowed besides the
            server's own; ``*`` allows any.
        authenticate: An extra check every handshake must pass, such as
            :func:`token_check`.
    """

    def __init__(
        self, allowed_origins: Iterable[str] = (), authenticate: Authenticate | None = None
    ) -> None:
        self.allowed_origins = frozenset(_normal_origin(origin) for origin in allowed_origins)
        self.authenticate = authenticate

    @classmethod
    def from_settings(
        cls, settings: Settings, authenticate: Authenticate | None = None
    ) -> HandshakeGuard:
        """The guard ``settings`` ask for; ``authenticate`` defaults to the ``AUTH_TOKEN`` check."""
        if authenticate is None and settings.auth_token:
            authenticate = token_check(settings.auth_token)
        return cls(settings.allowed_origins, authenticate)

    def refusal(self, req: falcon.Request) -> str | None:
        """Why the handshake ``req`` must be refused, or None if it may proceed."""
        origin = req.get_header("Origin")
        if origin is not None and not self.origin_allowed(origin, req.get_header("Host")):
            return "origin not allowed"
        if self.authenticate is not None and not self.authenticate(req):
            return "missing or wrong credentials"
        return None

    def check(self, req: falcon.Request) -> None:
        """Raise 403 if the handshake ``req`` must be refused (see :meth:`refusal`).

        Raises:
            falcon.HTTPForbidden: With the reason, before the handshake is answered.
        """
        reason = self.refusal(req)
        if reason is not None:
            raise falcon.HTTPForbidden(description=reason)

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """True if a page from ``origin`` may connect to a server reached as ``host``."""
        if "*" in self.allowed_origins:
            return True
        normal = _normal_origin(origin)
        if normal in self.allowed_origins:
            return True
        # Same origin: the page came from this very host. The scheme is left out
        # on purpose: behind a TLS-terminating proxy the server sees plain HTTP.
        scheme, _, netloc = normal.partition("://")
        return host is not None and netloc == _normal_netloc(host.lower(), scheme)


def token_check(token: str) -> Authenticate:
    """A check that passes handshakes carrying ``token``.

    Programs send ``Authorization: Bearer <token>``; browsers, which cannot set
    headers on a websocket, add ``?token=<token>`` to its URL.
    """
    expected = token.encode()

    def authenticate(req: falcon.Request) -> bool:
        scheme, _, offered = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            offered = req.get_param(TOKEN_PARAMETER) or ""
        # Constant time: the comparison must not tell how much of a guess was right.
        return hmac.compare_digest(offered.strip().encode(), expected)

    return authenticate


def redact(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter replaced."""
    return _TOKEN_IN_QUERY.sub(f"{TOKEN_PARAMETER}={REDACTED}", text)


def _normal_origin(origin: str) -> str:
    if origin == "*":
        return origin
    parts = urllib.parse.urlsplit(origin.strip().lower())
    return f"{parts.scheme}://{_normal_netloc(parts.netloc, parts.scheme)}"


def _normal_netloc(netloc: str, scheme: str) -> str:
    default = DEFAULT_PORTS.get(scheme)
    if default is not None and netloc.endswith(f":{default}"):
        return netloc[: -len(f":{default}")]
    return netloc
