"""Settings read from environment variables and validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class ConfigError(ValueError):
    """An environment variable holds a value the server cannot run with."""


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment.

    Attributes:
        host: Address to listen on (``HOST``).
        port: TCP port to listen on (``PORT``).
        log_level: One of :data:`LOG_LEVELS` (``LOG_LEVEL``).
    """

    host: str = "127.0.0.1"
    port: int = {{ cookiecutter.port }}
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read settings from ``environ``; raise :class:`ConfigError` if one is invalid."""
        host = environ.get("HOST", cls.host).strip()
        if not host:
            raise ConfigError("HOST is empty: set it to an address such as 127.0.0.1 or 0.0.0.0.")

        raw_port = environ.get("PORT", str(cls.port)).strip()
        if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
            raise ConfigError(f"PORT={raw_port!r} is not a port: use a number from 1 to 65535.")

        log_level = environ.get("LOG_LEVEL", cls.log_level).strip().lower()
        if log_level not in LOG_LEVELS:
            raise ConfigError(
                f"LOG_LEVEL={log_level!r} is not a level: use one of {', '.join(LOG_LEVELS)}."
            )

        return cls(host=host, port=int(raw_port), log_level=log_level)
