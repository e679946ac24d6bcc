"""Validate the answers before cookiecutter writes any file.

A bad answer prints one ``ERROR: ...`` line saying what is wrong and what
would be right, and exits with status 1; cookiecutter then removes the
directory it created, so nothing half-made is left behind.

The answers are read as JSON data, never pasted into code, so no answer can
change what this script does.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping

SERVERS = ("asgi-uvicorn", "wsgi-gevent")
BROKERS = ("memory", "redis")
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")

# Modules a generated project imports (or tests with); a package named like
# one of them would shadow it.
DEPENDENCY_MODULES = frozenset(
    {
        "falcon",
        "gevent",
        "geventwebsocket",
        "gunicorn",
        "uvicorn",
        "websockets",
        "pytest",
        "mypy",
        "ruff",
        "redis",
        "hypothesis",
        "playwright",
    }
)

SLUG_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE_RE = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# PEP 440 public version identifiers, canonical form.
VERSION_RE = re.compile(r"(?:\d+!)?\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?")


class InvalidAnswer(ValueError):
    """An answer that cannot produce a working project."""


def check_project_name(value: str) -> None:
    if not value.strip():
        raise InvalidAnswer("project_name is empty: give the project a name, e.g. 'Chat Server'.")


def check_project_slug(value: str) -> None:
    if not SLUG_RE.fullmatch(value):
        raise InvalidAnswer(
            f"project_slug {value!r} is not valid: use lower-case letters, digits and single "
            "hyphens, starting with a letter, e.g. 'chat-server'."
        )


def check_package_name(value: str) -> None:
    if not PACKAGE_RE.fullmatch(value):
        raise InvalidAnswer(
            f"package_name {value!r} is not a Python identifier: use lower-case letters, digits "
            "and underscores, not starting with a digit, e.g. 'chat_server'."
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        raise InvalidAnswer(
            f"package_name {value!r} is a Python keyword: pick another name, e.g. '{value}_app'."
        )
    if value in sys.stdlib_module_names or value in DEPENDENCY_MODULES:
        raise InvalidAnswer(
            f"package_name {value!r} would shadow the module of the same name: pick another "
            f"name, e.g. '{value}_app'."
        )


def check_port(value: str) -> None:
    if not (value.isdigit() and 1 <= int(value) <= 65535):
        raise InvalidAnswer(f"port {value!r} is not valid: use a whole number from 1 to 65535.")


def check_author_email(value: str) -> None:
    if not EMAIL_RE.fullmatch(value):
        raise InvalidAnswer(
            f"author_email {value!r} is not an email address: use the form 'name@example.com'."
        )


def check_version(value: str) -> None:
    if not VERSION_RE.fullmatch(value):
        raise InvalidAnswer(
            f"version {value!r} is not a PEP 440 version: use the form '0.1.0' (or '1.0rc1')."
        )


def check_choice(name: str, choices: tuple[str, ...]) -> Callable[[str], None]:
    """A check that the answer to ``name`` is one of ``choices``."""

    def check(value: str) -> None:
        if value not in choices:
            raise InvalidAnswer(
                f"{name} {value!r} is not one of the choices: use {', '.join(choices)}."
            )

    return check


CHECKS: dict[str, Callable[[str], None]] = {
    "project_name": check_project_name,
    "project_slug": check_project_slug,
    "package_name": check_package_name,
    "author_email": check_author_email,
    "version": check_version,
    "python_version": check_choice("python_version", PYTHON_VERSIONS),
    "server": check_choice("server", SERVERS),
    "broker": check_choice("broker", BROKERS),
    "port": check_port,
}


def validate(answers: Mapping[str, object]) -> None:
    """Raise :class:`InvalidAnswer` for the first answer that is not usable."""
    for key, check in CHECKS.items():
        check(str(answers[key]))


def main() -> int:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    try:
        validate(answers)
    except InvalidAnswer as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
