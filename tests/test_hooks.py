"""Unit tests of the hooks' functions, without rendering anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from template import (
    BROKERS,
    COOKIECUTTER_JSON,
    PYTHON_VERSIONS,
    SERVERS,
    TEMPLATE_DIR,
    load_hook,
)

pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

VALID = {
    "project_name": "Chat Server",
    "project_slug": "chat-server",
    "package_name": "chat_server",
    "author_email": "ada@example.com",
    "version": "0.1.0",
    "python_version": "3.12",
    "server": "asgi-uvicorn",
    "broker": "memory",
    "port": "8000",
}


def test_valid_answers_pass() -> None:
    pre_gen.validate(VALID)


def test_hook_choices_match_cookiecutter_json() -> None:
    assert set(pre_gen.SERVERS) == set(SERVERS)
    assert set(pre_gen.BROKERS) == set(BROKERS)
    assert set(pre_gen.PYTHON_VERSIONS) == set(PYTHON_VERSIONS)


def test_every_prompt_is_validated_or_free_text() -> None:
    free_text = {"description", "author_name"}
    prompts = {key for key in COOKIECUTTER_JSON if not key.startswith("_")}
    assert prompts - free_text == set(pre_gen.CHECKS)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("project_slug", "a"),
        ("project_slug", "chat-server-2"),
        ("package_name", "_private"),
        ("package_name", "app2"),
        ("port", "1"),
        ("port", "65535"),
        ("author_email", "first.last+tag@sub.example.org"),
        ("version", "1.0rc1"),
        ("version", "2024.1.post2.dev3"),
    ],
)
def test_edge_values_pass(key: str, value: str) -> None:
    pre_gen.validate({**VALID, key: value})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("project_name", "  ", "project_name is empty"),
        ("project_slug", "Chat Server", "project_slug 'Chat Server' is not valid"),
        ("project_slug", "chat--server", "is not valid"),
        ("project_slug", "-chat", "is not valid"),
        ("project_slug", "2chat", "is not valid"),
        ("project_slug", "../chat", "is not valid"),
        ("package_name", "chat-server", "is not a Python identifier"),
        ("package_name", "Chat", "is not a Python identifier"),
        ("package_name", "9lives", "is not a Python identifier"),
        ("package_name", "class", "is a Python keyword"),
        ("package_name", "match", "is a Python keyword"),
        ("package_name", "json", "would shadow the module"),
        ("package_name", "falcon", "would shadow the module"),
        ("package_name", "gevent", "would shadow the module"),
        ("port", "0", "port '0' is not valid"),
        ("port", "65536", "is not valid"),
        ("port", "-1", "is not valid"),
        ("port", "80a", "is not valid"),
        ("author_email", "ada", "is not an email address"),
        ("author_email", "ada@example", "is not an email address"),
        ("author_email", "ada lovelace@example.com", "is not an email address"),
        ("version", "v1", "is not a PEP 440 version"),
        ("version", "1.0-final", "is not a PEP 440 version"),
        ("python_version", "3.9", "python_version '3.9' is not one of the choices"),
        ("server", "asgi", "server 'asgi' is not one of the choices"),
        ("broker", "kafka", "broker 'kafka' is not one of the choices"),
    ],
)
def test_bad_values_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswer, match=message):
        pre_gen.validate({**VALID, key: value})


def make_tree(root: Path, package: str) -> None:
    every = {*post_gen.ASGI_FILES, *post_gen.WSGI_FILES, *post_gen.REDIS_FILES}
    for relative in [*every, "src/{package}/config.py"]:
        path = root / relative.format(package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def pruned(tmp_path: Path, server: str, broker: str) -> set[str]:
    make_tree(tmp_path, "chat")
    post_gen.prune(tmp_path, {"server": server, "broker": broker, "package_name": "chat"})
    return files(tmp_path)


def test_prune_asgi_memory(tmp_path: Path) -> None:
    assert pruned(tmp_path, "asgi-uvicorn", "memory") == {
        "src/chat/asgi.py",
        "src/chat/__main__.py",
        "src/chat/config.py",
    }


def test_prune_wsgi_memory(tmp_path: Path) -> None:
    assert pruned(tmp_path, "wsgi-gevent", "memory") == {
        "src/chat/wsgi.py",
        "src/chat/worker.py",
        "gunicorn.conf.py",
        "src/chat/config.py",
    }


def test_prune_asgi_redis(tmp_path: Path) -> None:
    assert pruned(tmp_path, "asgi-uvicorn", "redis") == {
        "src/chat/asgi.py",
        "src/chat/__main__.py",
        "src/chat/redis_asyncio.py",
        "src/chat/pubsub.py",
        "tests/redis_server.py",
        "tests/test_scale_out.py",
        "bench/redis_pubsub.py",
        "src/chat/config.py",
    }


def test_prune_wsgi_redis(tmp_path: Path) -> None:
    assert pruned(tmp_path, "wsgi-gevent", "redis") == {
        "src/chat/wsgi.py",
        "src/chat/worker.py",
        "src/chat/redis_gevent.py",
        "gunicorn.conf.py",
        "src/chat/pubsub.py",
        "tests/redis_server.py",
        "tests/test_scale_out.py",
        "bench/redis_pubsub.py",
        "src/chat/config.py",
    }


def test_every_pruned_path_exists_in_the_template() -> None:
    template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    for relative in {*post_gen.ASGI_FILES, *post_gen.WSGI_FILES, *post_gen.REDIS_FILES}:
        assert (template / relative.format(package="{{cookiecutter.package_name}}")).exists()


def test_prune_fails_loudly_on_a_missing_file(tmp_path: Path) -> None:
    # A renamed template file must not be silently left unpruned.
    with pytest.raises(FileNotFoundError):
        post_gen.prune(
            tmp_path, {"server": "wsgi-gevent", "broker": "memory", "package_name": "chat"}
        )
