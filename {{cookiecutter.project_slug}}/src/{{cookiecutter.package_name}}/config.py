"""Settings read from environment variables and validated at start-up."""

from __future__ import annotations

import os
{%- if cookiecutter.broker == "redis" %}
import urllib.parse
{%- endif %}
from collections.abc import Mapping
from dataclasses import dataclass{% if cookiecutter.broker == "redis" %}, field{% endif %}

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
{%- if cookiecutter.broker == "redis" %}
REDIS_SCHEMES = ("redis", "rediss", "unix")
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
{%- if cookiecutter.broker == "redis" %}
        workers: Server processes (``WORKERS``, default: one per CPU).
        redis_url: The Redis that carries room frames between processes (``REDIS_URL``).
        redis_prefix: Prefix of every Redis key and channel this app uses (``REDIS_PREFIX``).
{%- else %}
        workers: Server processes (``WORKERS``): one, as rooms live in process memory.
{%- endif %}
    """

    host: str = "127.0.0.1"
    port: int = {{ cookiecutter.port }}
    log_level: str = "info"
    outbox_size: int = 256
    max_rooms: int = 16
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
                "REDIS_URL is not a Redis URL: use redis://host:6379/0, rediss://… or unix://…"
            )
        redis_prefix = environ.get("REDIS_PREFIX", default.redis_prefix).strip()
        if not redis_prefix or any(char.isspace() for char in redis_prefix):
            raise ConfigError("REDIS_PREFIX must be a non-empty word without spaces.")
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
{%- if cookiecutter.broker == "redis" %}
            workers=_integer(environ, "WORKERS", default.workers, 1, 256),
            redis_url=redis_url,
            redis_prefix=redis_prefix,
{%- else %}
            workers=workers,
{%- endif %}
        )


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, str(default)).strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}={raw!r} is not valid: use a whole number from {low} to {high}.")
    return int(raw)
