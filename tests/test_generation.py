"""Bake every option combination and check the rendered project.

Cheap checks (rendering, pruning, dependencies) run for every combination;
the generated project's own ``make lint test`` runs for every combination too,
each with the interpreter its ``python_version`` names.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from interpreters import find_python
from template import COMBINATIONS, PYTHON_VERSIONS, combination_id, run_make

# Words that must not appear anywhere in a project without the option's value.
EXCLUDED_WORDS = {
    ("server", "asgi-uvicorn"): ("gevent", "gunicorn", "wsgi"),
    ("server", "wsgi-gevent"): ("uvicorn", "asgi"),
    ("broker", "memory"): ("redis",),
    ("broker", "redis"): (),
    ("use_docker", "y"): (),
    ("use_docker", "n"): ("docker", "compose.yaml"),
    ("ci", "github"): (),
    ("ci", "none"): (".github/", "github actions"),
    ("license", "MIT"): (
        "apache license",
        "apache-2.0",
        "bsd-3-clause",
        "bsd 3-clause",
        "proprietary",
    ),
    ("license", "BSD-3-Clause"): ("mit license", "apache license", "apache-2.0", "proprietary"),
    ("license", "Apache-2.0"): ("mit license", "bsd-3-clause", "bsd 3-clause", "proprietary"),
    ("license", "Proprietary"): (
        "mit license",
        "apache license",
        "apache-2.0",
        "bsd-3-clause",
        "bsd 3-clause",
    ),
}
RUNTIME_DEPENDENCIES = {
    ("server", "asgi-uvicorn"): {"falcon", "uvicorn"},
    ("server", "wsgi-gevent"): {"falcon", "gevent", "gevent-websocket", "gunicorn"},
    ("broker", "memory"): set(),
    ("broker", "redis"): {"redis"},
}
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# The benchmark of each broker on a tiny workload, and a line its report must have.
TINY_BENCH = {
    "memory": ("--tiny", "| raw websockets |"),
    "redis": ("--messages 200 --senders 1", "| two servers / pipelined reference |"),
}
# "${{" opens a GitHub Actions expression, which the workflow keeps.
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#|cookiecutter")

# Answers unlike the defaults, so that no name is hard-coded by accident.
CUSTOM_ANSWERS = {
    "project_name": "Chat Hub",
    "project_slug": "chat-hub",
    "package_name": "hub_core",
    "port": "9123",
}
CHECKED = [*COMBINATIONS] + [
    {**CUSTOM_ANSWERS, **answers}
    for answers in COMBINATIONS
    if answers["python_version"] == PYTHON_VERSIONS[0] and answers["broker"] == "redis"
]


def options(answers: dict[str, str]) -> list[tuple[str, str]]:
    """The structural (option, value) pairs of ``answers``."""
    return [(key, answers[key]) for key in ("server", "broker", "use_docker", "ci", "license")]


def bake(cookies: Any, answers: dict[str, str]) -> Path:
    result = cookies.bake(extra_context=answers)
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    project: Path = result.project_path
    assert project.is_dir()
    return project


def project_files(project: Path) -> list[Path]:
    return sorted(path for path in project.rglob("*") if path.is_file())


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_nothing_is_left_unrendered(cookies: Any, answers: dict[str, str]) -> None:
    project = bake(cookies, answers)
    leftovers = [
        f"{path.relative_to(project)}: {match.group()}"
        for path in [project, *project_files(project)]
        for match in [UNRENDERED.search(path.name), UNRENDERED.search(read(path))]
        if match
    ]
    assert leftovers == []


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_other_variant_is_pruned(cookies: Any, answers: dict[str, str]) -> None:
    project = bake(cookies, answers)
    words = [(option, word) for option in options(answers) for word in EXCLUDED_WORDS[option]]
    mentions = [
        f"{path.relative_to(project)}: {word}"
        for path in project_files(project)
        for (key, _), word in words
        # A license text is legal boilerplate ("Redistribution" is no Redis): only the
        # license words apply to it.
        if path.name != "LICENSE" or key == "license"
        if word in str(path.relative_to(project)).lower() or word in read(path).lower()
    ]
    assert mentions == []


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_dependencies_are_the_variants_own(cookies: Any, answers: dict[str, str]) -> None:
    project = bake(cookies, answers)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    names = {REQUIREMENT_NAME.match(req)[0].lower() for req in pyproject["project"]["dependencies"]}
    assert names == set().union(
        *(RUNTIME_DEPENDENCIES.get(option, set()) for option in options(answers))
    )
    assert pyproject["project"]["requires-python"] == f">={answers['python_version']}"


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_text_files_are_tidy(cookies: Any, answers: dict[str, str]) -> None:
    """No blank-line runs left by template conditionals, one final newline.

    Python files are held to ``ruff format --check`` instead, in the full check.
    """
    project = bake(cookies, answers)
    untidy = [
        str(path.relative_to(project))
        for path in project_files(project)
        if path.suffix != ".py" and path.stat().st_size and not is_tidy(read(path))
    ]
    assert untidy == []


def is_tidy(text: str) -> bool:
    return "\n\n\n" not in text and text.endswith("\n") and not text.endswith("\n\n")


@pytest.mark.parametrize("answers", CHECKED, ids=combination_id)
def test_generated_project_passes_its_own_checks(cookies: Any, answers: dict[str, str]) -> None:
    """``make lint test bench`` in the baked project: ruff, ruff format, mypy, its
    real-server tests (with real Redis servers for ``broker=redis``), and its benchmark
    end to end on a tiny workload."""
    version = answers["python_version"]
    python = find_python(version)
    if python is None:
        reason = f"python{version} is not installed here (pyenv install {version} to check it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    project = bake(cookies, answers)
    bench_args, bench_line = TINY_BENCH[answers["broker"]]
    done = run_make(
        project, "lint", "test", "bench", f"PYTHON={python}", f"BENCH_ARGS={bench_args}"
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert re.search(r"\d+ passed", done.stdout), done.stdout
    assert bench_line in done.stdout, done.stdout


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""
