"""Settings come from the environment and bad values are refused with a clear message."""
{%- if cookiecutter.broker == "redis" %}

import os
{%- endif %}

import pytest

from {{ cookiecutter.package_name }}.config import ConfigError, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings(
        host="127.0.0.1", port={{ cookiecutter.port }}, log_level="info", outbox_size=256, max_rooms=16
    )


def test_reads_the_environment() -> None:
    environ = {
        "HOST": "0.0.0.0",  # noqa: S104
        "PORT": "9001",
        "LOG_LEVEL": "DEBUG",
        "OUTBOX_SIZE": "32",
        "MAX_ROOMS": "3",
    }
    settings = Settings.from_env(environ)
    assert settings == Settings(
        host="0.0.0.0",  # noqa: S104
        port=9001,
        log_level="debug",
        outbox_size=32,
        max_rooms=3,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not valid: use a whole number from 1 to 65535"),
        ({"PORT": "0"}, "PORT='0' is not valid"),
        ({"PORT": "70000"}, "PORT='70000' is not valid"),
        ({"OUTBOX_SIZE": "0"}, "OUTBOX_SIZE='0' is not valid"),
        ({"MAX_ROOMS": "-2"}, "MAX_ROOMS='-2' is not valid"),
        ({"WORKERS": "0"}, "WORKERS='0' is not valid"),
{%- if cookiecutter.broker == "redis" %}
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL is not a Redis URL"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL is not a Redis URL"),
        ({"REDIS_PREFIX": "two words"}, "REDIS_PREFIX must be a non-empty word"),
        ({"REDIS_PREFIX": "chat{1}"}, "REDIS_PREFIX must be a non-empty word"),
        ({"REDIS_URL": "cluster://localhost:7000"}, "REDIS_URL is not a Redis URL"),
{%- else %}
        ({"WORKERS": "2"}, "WORKERS=2: rooms live in this process's memory"),
{%- endif %}
        ({"HOST": " "}, "HOST is empty"),
        ({"ALLOWED_ORIGINS": "chat.example"}, "ALLOWED_ORIGINS holds 'chat.example'"),
        ({"ALLOWED_ORIGINS": "https://chat.example/app"}, "which is not an origin"),
        ({"ALLOWED_ORIGINS": "ftp://chat.example"}, "which is not an origin"),
        ({"ALLOWED_ORIGINS": "http://chat.example:http"}, "which is not an origin"),
        ({"MAX_MESSAGE_BYTES": "100"}, "MAX_MESSAGE_BYTES='100' is not valid"),
        ({"MAX_MESSAGE_BYTES": "lots"}, "MAX_MESSAGE_BYTES='lots' is not valid"),
        ({"RATE_LIMIT": "-1"}, "RATE_LIMIT='-1' is not valid"),
        ({"PING_TIMEOUT": "soon"}, "PING_TIMEOUT='soon' is not valid"),
        ({"DRAIN_TIMEOUT": "-5"}, "DRAIN_TIMEOUT='-5' is not valid"),
        ({"RATE_LIMIT": "fast"}, "RATE_LIMIT='fast' is not valid: use a number"),
        ({"RATE_LIMIT": "nan"}, "RATE_LIMIT='nan' is not valid"),
        ({"RATE_BURST": "0"}, "RATE_BURST='0' is not valid"),
        ({"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS='0' is not valid"),
        ({"PING_INTERVAL": "0"}, "PING_INTERVAL='0' is not valid"),
        ({"PING_TIMEOUT": "inf"}, "PING_TIMEOUT='inf' is not valid"),
        ({"DRAIN_TIMEOUT": "1.5"}, "DRAIN_TIMEOUT='1.5' is not valid"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not a level"),
    ],
)
def test_bad_values_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)
{%- if cookiecutter.broker == "redis" %}


def test_redis_settings() -> None:
    url = "rediss://:secret@redis.example:6380/2"
    settings = Settings.from_env({"REDIS_URL": url, "REDIS_PREFIX": "chat", "WORKERS": "3"})
    assert settings.redis_url == url
    assert (settings.redis_prefix, settings.workers) == ("chat", 3)
    assert Settings.from_env({}).workers == (os.cpu_count() or 1)
    cluster = "redis+cluster://10.0.0.5:7000"
    assert Settings.from_env({"REDIS_URL": cluster}).redis_url == cluster
{%- endif %}


def test_security_settings() -> None:
    environ = {
        "ALLOWED_ORIGINS": " https://App.example/ , http://localhost:5173",
        "AUTH_TOKEN": "s3cret",
        "MAX_MESSAGE_BYTES": "1024",
        "RATE_LIMIT": "2.5",
        "RATE_BURST": "5",
        "MAX_CONNECTIONS": "100",
        "PING_INTERVAL": "5",
        "PING_TIMEOUT": "2.5",
        "DRAIN_TIMEOUT": "3",
    }
    settings = Settings.from_env(environ)
    assert settings.allowed_origins == ("https://app.example", "http://localhost:5173")
    assert settings.auth_token == "s3cret"
    assert (settings.max_message_bytes, settings.max_connections) == (1024, 100)
    assert (settings.rate_limit, settings.rate_burst) == (2.5, 5)
    assert (settings.ping_interval, settings.ping_timeout, settings.drain_timeout) == (5, 2.5, 3)
    assert "s3cret" not in repr(settings)


def test_safe_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.allowed_origins == ()  # the server's own origin only
    assert settings.auth_token is None
    assert settings.max_message_bytes == 64 * 1024
    assert (settings.rate_limit, settings.rate_burst) == (20, 40)
    assert settings.max_connections == 10_000
    assert (settings.ping_interval, settings.ping_timeout, settings.drain_timeout) == (20, 20, 10)
