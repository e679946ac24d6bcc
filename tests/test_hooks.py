"""Unit tests of the hooks' functions, without rendering anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from template import (
    BROKERS,
    CI_SERVICES,
    COOKIECUTTER_JSON,
    LICENSES,
    PYTHON_VERSIONS,
    SERVERS,
    TEMPLATE_DIR,
    USE_DOCKER,
    load_hook,
)

pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

VALID = {
    "project_name": "Chat Server",
    "project_slug": "chat-server",
    "package_name": "chat_server",
    "description": "A chat server.",
    "author_name": "Ada Lovelace",
    "author_email": "ada@example.com",
    "version": "0.1.0",
    "python_version": "3.12",
    "server": "asgi-uvicorn",
    "broker": "memory",
    "port": "8000",
    "use_docker": "y",
    "ci": "github",
    "license": "MIT",
}


def test_valid_answers_pass() -> None:
    pre_gen.validate(VALID)


def test_hook_choices_match_cookiecutter_json() -> None:
    assert set(pre_gen.SERVERS) == set(SERVERS)
    assert set(pre_gen.BROKERS) == set(BROKERS)
    assert set(pre_gen.PYTHON_VERSIONS) == set(PYTHON_VERSIONS)
    assert set(pre_gen.YES_NO) == set(USE_DOCKER)
    assert set(pre_gen.CI_SERVICES) == set(CI_SERVICES)
    assert set(pre_gen.LICENSES) == set(LICENSES)


def test_hook_knows_the_jinja_defaults_of_cookiecutter_json() -> None:
    jinja_defaults = {
        key: value
        for key, value in COOKIECUTTER_JSON.items()
        if isinstance(value, str) and "{{" in value
    }
    assert jinja_defaults == pre_gen.DERIVED_DEFAULTS


def test_every_prompt_is_validated() -> None:
    # Free text too: it must be one line, whatever else it holds.
    prompts = {key for key in COOKIECUTTER_JSON if not key.startswith("_")}
    assert prompts == set(pre_gen.CHECKS)


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
        # Free text is text: quotes, backslashes, markup, code and any script pass.
        ("project_name", 'Bob\'s "Chat" \\ {{ 7*7 }} <script> $(rm -rf /) """'),
        ("project_name", "Café 🚀 שלום 👩\u200d💻"),
        ("description", ""),
        ("description", "# Title ``` <!-- {% for x in y %} \u202eRTL"),
        ("author_name", "O'Brien \\ 😀"),
        ("author_email", "o'brien@example.com"),
        ("author_email", '"a\\"b"@example.com'),
        ("author_email", "zoe@exämple.org"),
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
        # What hatchling's RFC 5322 parser refuses, or silently changes (a comment).
        ("author_email", "zoë@example.com", "is not an email address"),
        ("author_email", 'a"b@example.com', "is not an email address"),
        ("author_email", "a(comment)@example.com", "is not an email address"),
        ("author_email", "ada@example.com\x00", r"control character \(U\+0000\)"),
        ("project_name", "Chat\nServer", r"contains a line break or control character \(U\+000A\)"),
        ("project_name", "Chat\tServer", r"\(U\+0009\)"),
        ("project_name", "Chat\x7f", r"\(U\+007F\)"),
        ("project_name", " Chat", "starts or ends with whitespace"),
        ("description", "one\r\ntwo", r"\(U\+000D\)"),
        ("description", "one\u2028two", r"\(U\+2028\)"),
        ("description", "one\x85two", r"\(U\+0085\)"),
        ("description", "A chat server. ", "starts or ends with whitespace"),
        ("author_name", "Ada\u2029Lovelace", r"\(U\+2029\)"),
        ("version", "v1", "is not a PEP 440 version"),
        ("version", "1.0-final", "is not a PEP 440 version"),
        ("python_version", "3.9", "python_version '3.9' is not one of the choices"),
        ("server", "asgi", "server 'asgi' is not one of the choices"),
        ("broker", "kafka", "broker 'kafka' is not one of the choices"),
        ("use_docker", "yes", "use_docker 'yes' is not one of the choices: use y, n"),
        ("ci", "gitlab", "ci 'gitlab' is not one of the choices"),
        ("license", "GPL-3.0", "license 'GPL-3.0' is not one of the choices"),
    ],
)
def test_bad_values_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswer, match=message):
        pre_gen.validate({**VALID, key: value})


def make_tree(root: Path, package: str) -> None:
    every = {*post_gen.ASGI_FILES, *post_gen.WSGI_FILES, *post_gen.REDIS_FILES}
    for relative in [*every, "src/{package}/config.py", *OPTIONAL_FILES]:
        path = root / relative.format(package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


# The files of the add-on options, as they are after pruning when wanted.
OPTIONAL_FILES = ("Dockerfile", ".dockerignore", "compose.yaml", ".github/workflows/ci.yml")
ADD_ONS = {"use_docker": "y", "ci": "github"}


def pruned(tmp_path: Path, server: str, broker: str, **add_ons: str) -> set[str]:
    make_tree(tmp_path, "chat")
    answers = {"server": server, "broker": broker, "package_name": "chat", **ADD_ONS, **add_ons}
    post_gen.prune(tmp_path, answers)
    return files(tmp_path) - set(OPTIONAL_FILES)


def test_prune_asgi_memory(tmp_path: Path) -> None:
    assert pruned(tmp_path, "asgi-uvicorn", "memory") == {
        "src/chat/asgi.py",
        "src/chat/__main__.py",
        "src/chat/uvicorn_server.py",
        "src/chat/uvicorn_websocket.py",
        "src/chat/config.py",
    }


def test_prune_wsgi_memory(tmp_path: Path) -> None:
    assert pruned(tmp_path, "wsgi-gevent", "memory") == {
        "src/chat/gevent_websocket.py",
        "src/chat/wsgi.py",
        "src/chat/gunicorn_worker.py",
        "tests/test_gevent_websocket.py",
        "gunicorn.conf.py",
        "src/chat/config.py",
    }


def test_prune_asgi_redis(tmp_path: Path) -> None:
    assert pruned(tmp_path, "asgi-uvicorn", "redis") == {
        "src/chat/asgi.py",
        "src/chat/__main__.py",
        "src/chat/uvicorn_server.py",
        "src/chat/uvicorn_websocket.py",
        "src/chat/redis_asyncio.py",
        "src/chat/redis_alone.py",
        "src/chat/redis_io.py",
        "src/chat/redis_layout.py",
        "src/chat/redis_positions.py",
        "src/chat/redis_scripts.py",
        "src/chat/redis_pubsub.py",
        "tests/support/redis_cluster.py",
        "tests/support/redis_server.py",
        "tests/support/resilient_client.py",
        "tests/test_no_message_lost.py",
        "tests/test_redis_cluster.py",
        "tests/test_redis_positions.py",
        "tests/test_redis_pubsub.py",
        "tests/test_scale_out.py",
        "bench/redis_measure.py",
        "bench/redis_messages.py",
        "bench/redis_pubsub.py",
        "bench/redis_receiver.py",
        "bench/redis_reference.py",
        "bench/redis_relay.py",
        "bench/redis_report.py",
        "bench/redis_scale.py",
        "bench/redis_scale_load.py",
        "bench/redis_scale_stats.py",
        "bench/redis_senders.py",
        "src/chat/config.py",
    }


def test_prune_wsgi_redis(tmp_path: Path) -> None:
    assert pruned(tmp_path, "wsgi-gevent", "redis") == {
        "src/chat/gevent_websocket.py",
        "src/chat/wsgi.py",
        "src/chat/gunicorn_worker.py",
        "tests/test_gevent_websocket.py",
        "src/chat/redis_gevent.py",
        "gunicorn.conf.py",
        "src/chat/redis_alone.py",
        "src/chat/redis_io.py",
        "src/chat/redis_layout.py",
        "src/chat/redis_positions.py",
        "src/chat/redis_scripts.py",
        "src/chat/redis_pubsub.py",
        "tests/support/redis_cluster.py",
        "tests/support/redis_server.py",
        "tests/support/resilient_client.py",
        "tests/test_no_message_lost.py",
        "tests/test_redis_cluster.py",
        "tests/test_redis_positions.py",
        "tests/test_redis_pubsub.py",
        "tests/test_scale_out.py",
        "bench/redis_measure.py",
        "bench/redis_messages.py",
        "bench/redis_pubsub.py",
        "bench/redis_receiver.py",
        "bench/redis_reference.py",
        "bench/redis_relay.py",
        "bench/redis_report.py",
        "bench/redis_scale.py",
        "bench/redis_scale_load.py",
        "bench/redis_scale_stats.py",
        "bench/redis_senders.py",
        "src/chat/config.py",
    }


def test_docker_and_ci_files_are_pruned_when_not_wanted(tmp_path: Path) -> None:
    make_tree(tmp_path, "chat")
    answers = {"server": "asgi-uvicorn", "broker": "memory", "package_name": "chat"}
    post_gen.prune(tmp_path, {**answers, "use_docker": "n", "ci": "none"})
    assert files(tmp_path) & set(OPTIONAL_FILES) == set()
    assert not (tmp_path / ".github").exists()


def test_docker_and_ci_files_are_kept_when_wanted(tmp_path: Path) -> None:
    make_tree(tmp_path, "chat")
    answers = {"server": "asgi-uvicorn", "broker": "memory", "package_name": "chat"}
    post_gen.prune(tmp_path, {**answers, **ADD_ONS})
    assert files(tmp_path) >= set(OPTIONAL_FILES)


def make_licenses(root: Path) -> None:
    (root / post_gen.LICENSES_DIR).mkdir(parents=True)
    for license_id in LICENSES:
        if license_id != "Proprietary":
            (root / post_gen.LICENSES_DIR / license_id).write_text(f"{license_id} text")


@pytest.mark.parametrize("license_id", [lid for lid in LICENSES if lid != "Proprietary"])
def test_the_chosen_license_becomes_license(tmp_path: Path, license_id: str) -> None:
    make_licenses(tmp_path)
    post_gen.install_license(tmp_path, license_id)
    assert files(tmp_path) == {"LICENSE"}
    assert (tmp_path / "LICENSE").read_text() == f"{license_id} text"


def test_proprietary_gets_no_license_file(tmp_path: Path) -> None:
    make_licenses(tmp_path)
    post_gen.install_license(tmp_path, "Proprietary")
    assert files(tmp_path) == set()


def test_every_license_choice_has_a_text() -> None:
    texts = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / post_gen.LICENSES_DIR
    assert {path.name for path in texts.iterdir()} == set(LICENSES) - {"Proprietary"}


def test_every_pruned_path_exists_in_the_template() -> None:
    template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    every = {*post_gen.ASGI_FILES, *post_gen.WSGI_FILES, *post_gen.REDIS_FILES}
    for relative in every | {*post_gen.DOCKER_FILES, *post_gen.GITHUB_FILES}:
        assert (template / relative.format(package="{{cookiecutter.package_name}}")).exists()


def test_every_redis_file_of_the_template_is_pruned_from_memory_projects() -> None:
    template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    named = {
        str(path.relative_to(template)).replace("{{cookiecutter.package_name}}", "{package}")
        for path in template.rglob("*redis*")
        if path.is_file()
    }
    assert named <= set(post_gen.REDIS_FILES)


def test_prune_fails_loudly_on_a_missing_file(tmp_path: Path) -> None:
    # A renamed template file must not be silently left unpruned.
    with pytest.raises(FileNotFoundError):
        post_gen.prune(
            tmp_path,
            {"server": "wsgi-gevent", "broker": "memory", "package_name": "chat", **ADD_ONS},
        )


# The project_slug default in cookiecutter.json, which cookiecutter renders on purpose.
SLUG_DEFAULT = COOKIECUTTER_JSON["project_slug"]


@pytest.mark.parametrize(
    ("given", "rendered"),
    [
        ({"project_name": "Chat Server"}, "Chat Server"),
        ({"project_slug": SLUG_DEFAULT}, "chat-server"),
        ({"project_name": "{% raw %}{{ 7*7 }}{% endraw %}"}, "{{ 7*7 }}"),
        ({"project_name": "{%- raw -%} {# x #} {%- endraw -%}"}, "{# x #}"),
        ({"server": ["wsgi-gevent", "asgi-uvicorn"]}, "wsgi-gevent"),
    ],
)
def test_literal_and_default_answers_pass(given: dict[str, object], rendered: str) -> None:
    (key,) = given
    pre_gen.check_not_evaluated({key: rendered}, given, pre_gen.DERIVED_DEFAULTS)


@pytest.mark.parametrize(
    ("key", "given", "rendered"),
    [
        ("project_name", "{{ 7*7 }}", "49"),
        ("description", "{% for x in range(3) %}x{% endfor %}", "xxx"),
        ("author_name", "{# gone #}Ada", "Ada"),
        ("project_slug", SLUG_DEFAULT + "-svc", "chat-server-svc"),
        ("project_name", "{% raw %}{{ 1 }}{% endraw %}{{ 2 }}", "{{ 1 }}2"),
    ],
)
def test_rendered_jinja_answers_are_refused(key: str, given: str, rendered: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswer, match=rf"^{key} .* is Jinja markup.*\(to '"):
        pre_gen.check_not_evaluated({key: rendered}, {key: given}, pre_gen.DERIVED_DEFAULTS)
