"""Validate the answers before cookiecutter writes any file.

A bad answer prints one ``ERROR: ...`` line saying what is wrong and what
would be right, and exits with status 1; cookiecutter then removes the
directory it created, so nothing half-made is left behind.

The answers are read as JSON data, never pasted into code, so no answer can
change what this script does. Free text must be one line without control
characters: it is pasted into TOML strings, a Markdown heading and paragraph,
and HTML, where a line break would end the string or split the block.

Cookiecutter renders answers given with ``--no-input``/``extra_context`` (and
a user config's ``default_context``) as Jinja templates before this hook runs:
the expression 7*7 in double braces arrives here as ``49``, and any code in it
has already run. This hook cannot undo that, but it refuses such an answer
rather than build a project from what cookiecutter made of it.

This file is itself rendered by Jinja, so it never spells Jinja's delimiters
literally outside ``main()``.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from email.errors import HeaderParseError
from email.headerregistry import Address

SERVERS = ("asgi-uvicorn", "wsgi-gevent")
BROKERS = ("memory", "redis")
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")
YES_NO = ("y", "n")
CI_SERVICES = ("github", "none")
LICENSES = ("MIT", "BSD-3-Clause", "Apache-2.0", "Proprietary")

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
# Control characters (Cc: C0, DEL, C1, so also \n \r \t) and the Unicode line and
# paragraph separators: Python, TOML and Markdown each treat some of them as line ends.
LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
# Jinja's raw block (the way to pass its delimiters literally) and the markup
# left once raw blocks are removed. "[{]" and "+" keep delimiters out of this text.
RAW_BLOCK = "{" + "% raw %}...{" + "% endraw %}"
RAW_BLOCK_RE = re.compile(r"[{]%-?\s*raw\s*-?%[}].*?[{]%-?\s*endraw\s*-?%[}]", re.DOTALL)
JINJA_MARKUP_RE = re.compile(r"[{](?:[{]|%|#)")


def jinja(expression: str) -> str:
    """``expression`` in Jinja's print delimiters, spelled so that rendering keeps it."""
    return "{" + "{ " + expression + " }" + "}"


# The defaults in cookiecutter.json that are Jinja on purpose, derived from earlier
# answers (a test keeps them equal). The hook cannot read cookiecutter.json itself:
# `_repo_dir` is relative to where cookiecutter was started (`cookiecutter .`), and
# hooks run in the new project's folder; a zip or git template is not kept at all.
DERIVED_DEFAULTS = {
    "project_slug": jinja("cookiecutter.project_name | slugify"),
    "package_name": jinja("cookiecutter.project_slug | replace('-', '_')"),
}


class InvalidAnswer(ValueError):
    """An answer that cannot produce a working project."""


def check_one_line(name: str) -> Callable[[str], None]:
    """A check that the answer to ``name`` is one line of text with no surrounding spaces."""

    def check(value: str) -> None:
        for char in value:
            if unicodedata.category(char) in LINE_BREAKING:
                raise InvalidAnswer(
                    f"{name} {value!r} contains a line break or control character "
                    f"(U+{ord(char):04X}): write it as one line of plain text."
                )
        if value != value.strip():
            raise InvalidAnswer(f"{name} {value!r} starts or ends with whitespace: remove it.")

    return check


def check_project_name(value: str) -> None:
    if not value.strip():
        raise InvalidAnswer("project_name is empty: give the project a name, e.g. 'Chat Server'.")
    check_one_line("project_name")(value)


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
    check_one_line("author_email")(value)
    if not EMAIL_RE.fullmatch(value) or not is_metadata_address(value):
        raise InvalidAnswer(
            f"author_email {value!r} is not an email address: use the form 'name@example.com' "
            "(plain ASCII before the @)."
        )


def is_metadata_address(value: str) -> bool:
    """Whether the generated project's build backend accepts ``value``.

    Hatchling parses ``authors`` emails with the standard library's RFC 5322
    parser, which refuses non-ASCII local parts and stray quotes, and drops
    comments: an address it changes is not the one given.
    """
    try:
        return Address(addr_spec=value).addr_spec == value
    except (ValueError, HeaderParseError):
        return False


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
    "description": check_one_line("description"),
    "author_name": check_one_line("author_name"),
    "author_email": check_author_email,
    "version": check_version,
    "python_version": check_choice("python_version", PYTHON_VERSIONS),
    "server": check_choice("server", SERVERS),
    "broker": check_choice("broker", BROKERS),
    "port": check_port,
    "use_docker": check_choice("use_docker", YES_NO),
    "ci": check_choice("ci", CI_SERVICES),
    "license": check_choice("license", LICENSES),
}


def validate(answers: Mapping[str, object]) -> None:
    """Raise :class:`InvalidAnswer` for the first answer that is not usable."""
    for key, check in CHECKS.items():
        check(str(answers[key]))


def check_not_evaluated(
    answers: Mapping[str, object], given: Mapping[str, object], defaults: Mapping[str, object]
) -> None:
    """Refuse an answer that cookiecutter has rendered as a Jinja template.

    ``given`` holds the answers as given, before cookiecutter rendered them (its
    ``_cookiecutter``: cookiecutter.json with the user's answers over it);
    ``defaults`` are the Jinja defaults that are meant to be rendered.
    """
    for key, value in given.items():
        if not isinstance(value, str) or value == defaults.get(key):
            continue
        if JINJA_MARKUP_RE.search(RAW_BLOCK_RE.sub("", value)):
            raise InvalidAnswer(
                f"{key} {value!r} is Jinja markup, which cookiecutter has already rendered "
                f"(to {answers[key]!r}) before this check: type the text at the prompt, or "
                f"wrap it in {RAW_BLOCK} to pass it literally."
            )


def main() -> int:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    # cruft renders with its own context, which lacks the answers as given: it
    # passes on answers recorded in .cruft.json, checked when the project was made.
    given = json.loads(r"""{{ _cookiecutter | default({}) | tojson }}""")
    try:
        check_not_evaluated(answers, given, DERIVED_DEFAULTS)
        validate(answers)
    except InvalidAnswer as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
