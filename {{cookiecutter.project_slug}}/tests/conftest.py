"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import pytest

from tests.support.live_server import Server, ServerWith, start_server, stop_server
{%- if cookiecutter.broker == "redis" %}
from tests.support.redis_server import RedisServer
{%- endif %}
{%- if cookiecutter.broker == "redis" %}


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment every test server needs: a real Redis, for the whole session."""
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    try:
        yield {"REDIS_URL": redis.url}
    finally:
        redis.kill()
{%- else %}


@pytest.fixture(scope="session")
def server_env() -> dict[str, str]:
    """Environment every test server needs beyond this process's: nothing."""
    return {}
{%- endif %}


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]
) -> Iterator[Server]:
    """One real server shared by the whole test session."""
    running = start_server(tmp_path_factory.mktemp("server"), server_env)
    try:
        yield running
    finally:
        stop_server(running)


@pytest.fixture(scope="module")
def server_with(
    tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]
) -> Iterator[ServerWith]:
    """Starts servers with settings of a test module's own, all stopped after the module.

    One worker each: limits are per process, and every request meets the same one.
    """
    with contextlib.ExitStack() as started:

        def start(settings: Mapping[str, str]) -> Server:
            env = {**server_env, "WORKERS": "1", **settings}
            server = start_server(tmp_path_factory.mktemp("server"), env)
            started.callback(stop_server, server)
            return server

        yield start
