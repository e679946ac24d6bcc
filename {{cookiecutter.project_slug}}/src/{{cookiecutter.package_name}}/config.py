"""Settings read from environment variables and validated at start-up."""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
ORIGIN_SCHEMES = ("http", "https")
{%- if cookiecutter.broker == "redis" %}
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
{%- endif %}


class ConfigError(ValueError):
    """An environment variable holds a value the server cannot run with."""


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment.

    Attributes:
        host: Address to listen on (``HOST``).
        port: TCP port to listen on (``PORT``).
        log_level: One of :data:`LOG_LEVELS` (``LOG_LEVEL``).
        outbox_size: Frames queued for one connection before it counts as too slow
            and is closed with 1008 (``OUTBOX_SIZE``).
        max_rooms: Rooms one connection may be in at once (``MAX_ROOMS``).
        allowed_origins: Origins besides the server's own whose pages may open
            websockets (``ALLOWED_ORIGINS``, comma-separated, or ``*`` for any).
        auth_token: Token a websocket handshake must carry, if set (``AUTH_TOKEN``).
        max_message_bytes: Largest message a peer may send; a bigger one is
            closed with 1009 before it is read (``MAX_MESSAGE_BYTES``).
        rate_limit: Messages per second one ``/ws`` connection may send (``RATE_LIMIT``).
        rate_burst: Messages it may send at once, and refusals it gets before it is
            closed with 1008 (``RATE_BURST``).
        max_connections: Open websockets per server process; the next is closed with
            1013 (``MAX_CONNECTIONS``).
        ping_interval: Seconds between the server's pings (``PING_INTERVAL``).
        ping_timeout: Seconds a peer has to answer a ping before it is dropped
            (``PING_TIMEOUT``).
        drain_timeout: Seconds the server takes at most to stop on SIGTERM
            (``DRAIN_TIMEOUT``).
        history_size: Messages kept per room for members that come back
            (``HISTORY_SIZE``; 0: none).
        history_ttl: Seconds a room's messages are kept after its last one
            (``HISTORY_TTL``; 0: none).
{%- if cookiecutter.broker == "redis" %}
        workers: Server processes (``WORKERS``, default: one per CPU).
        redis_url: The Redis that carries room frames between processes (``REDIS_URL``;
            ``redis+cluster://`` or ``rediss+cluster://`` for a Redis Cluster).
        redis_prefix: Prefix of every Redis key and channel this app uses (``REDIS_PREFIX``,
            without braces: they are the rooms' cluster hash tags).
{%- else %}
        workers: Server processes (``WORKERS``): one, as rooms live in process memory.
{%- endif %}
    """

    host: str = "127.0.0.1"
    port: int = {{ cookiecutter.port }}
    log_level: str = "info"
    outbox_size: int = 256
    max_rooms: int = 16
    allowed_origins: tuple[str, ...] = ()
    auth_token: str | None = field(default=None, repr=False)  # never in logs or tracebacks
    max_message_bytes: int = 64 * 1024
    rate_limit: float = 20.0
    rate_burst: int = 40
    max_connections: int = 10_000
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    drain_timeout: int = 10
    history_size: int = 100
    history_ttl: float = 300.0
{%- if cookiecutter.broker == "redis" %}
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "{{ cookiecutter.project_slug }}"
{%- else %}
    workers: int = 1
{%- endif %}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read settings from ``environ``; raise :class:`ConfigError` if one is invalid."""
        host = environ.get("HOST", cls.host).strip()
        if not host:
            raise ConfigError("HOST is empty: set it to an address such as 127.0.0.1 or 0.0.0.0.")

        port = _integer(environ, "PORT", cls.port, 1, 65535)

        log_level = environ.get("LOG_LEVEL", cls.log_level).strip().lower()
        if log_level not in LOG_LEVELS:
            raise ConfigError(
                f"LOG_LEVEL={log_level!r} is not a level: use one of {', '.join(LOG_LEVELS)}."
            )
{%- if cookiecutter.broker == "redis" %}

        default = cls()
        redis_url = environ.get("REDIS_URL", default.redis_url).strip()
        if urllib.parse.urlsplit(redis_url).scheme not in REDIS_SCHEMES:
            raise ConfigError(
                "REDIS_URL is not a Redis URL: use redis://host:6379/0, rediss://…, unix://…, "
                "or redis+cluster://host:7000 for a Redis Cluster"
            )
        redis_prefix = environ.get("REDIS_PREFIX", default.redis_prefix).strip()
        if not redis_prefix or any(char.isspace() or char in "{}" for char in redis_prefix):
            raise ConfigError("REDIS_PREFIX must be a non-empty word without spaces or braces.")
{%- else %}

        workers = _integer(environ, "WORKERS", cls.workers, 1, 256)
        if workers != 1:
            raise ConfigError(
                f"WORKERS={workers}: rooms live in this process's memory, so the server runs "
                "one worker; more would silently split every room between them."
            )
{%- endif %}

        return cls(
            host=host,
            port=port,
            log_level=log_level,
            outbox_size=_integer(environ, "OUTBOX_SIZE", cls.outbox_size, 1, 1_000_000),
            max_rooms=_integer(environ, "MAX_ROOMS", cls.max_rooms, 1, 10_000),
            allowed_origins=_origins(environ.get("ALLOWED_ORIGINS", "")),
            auth_token=environ.get("AUTH_TOKEN", "").strip() or None,
            max_message_bytes=_integer(
                environ, "MAX_MESSAGE_BYTES", cls.max_message_bytes, 125, 64 * 1024 * 1024
            ),
            rate_limit=_number(environ, "RATE_LIMIT", cls.rate_limit, 0.1, 1_000_000),
            rate_burst=_integer(environ, "RATE_BURST", cls.rate_burst, 1, 1_000_000),
            max_connections=_integer(environ, "MAX_CONNECTIONS", cls.max_connections, 1, 1_000_000),
            ping_interval=_number(environ, "PING_INTERVAL", cls.ping_interval, 0.1, 3600),
            ping_timeout=_number(environ, "PING_TIMEOUT", cls.ping_timeout, 0.1, 3600),
            drain_timeout=_integer(environ, "DRAIN_TIMEOUT", cls.drain_timeout, 1, 3600),
            history_size=_integer(environ, "HISTORY_SIZE", cls.history_size, 0, 100_000),
            history_ttl=_number(environ, "HISTORY_TTL", cls.history_ttl, 0, 30 * 24 * 3600),
{%- if cookiecutter.broker == "redis" %}
            workers=_integer(environ, "WORKERS", default.workers, 1, 256),
            redis_url=redis_url,
            redis_prefix=redis_prefix,
{%- else %}
            workers=workers,
{%- endif %}
        )


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(
        origin.strip().lower().rstrip("/") for origin in raw.split(",") if origin.strip()
    )
    for origin in origins:
        if origin == "*":
            continue
        parts = urllib.parse.urlsplit(origin)
        try:
            parts.port  # noqa: B018 -- raises on a port that is not a number
        except ValueError:
            parts = parts._replace(netloc="")
        if parts.scheme not in ORIGIN_SCHEMES or not parts.hostname or parts.path or parts.query:
            raise ConfigError(
                f"ALLOWED_ORIGINS holds {origin!r}, which is not an origin: use "
                "scheme://host[:port] such as https://app.example.com, comma-separated, or *."
            )
    return origins


def _number(
    environ: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    raw = environ.get(name, str(default)).strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan and inf
        raise ConfigError(f"{name}={raw!r} is not valid: use a number from {low} to {high}.")
    return value


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, str(default)).strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}={raw!r} is not valid: use a whole number from {low} to {high}.")
    return int(raw)
