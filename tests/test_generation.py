"""Bake every option combination and check the rendered project.

Every combination is rendered once for the checks of its files (nothing left
unrendered, the other variant pruned, its own dependencies, tidy text), and once
more to run the generated project's own ``make lint test-fast`` (ruff, ruff
format, mypy, the tests not marked slow) with the Python its ``python_version``
names, picked by the project's own Makefile. The ``LIVE`` combinations run
``make lint test`` instead, the slow live suites included, and ``make bench``:
once per server x broker pair and once per Python.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from template import (
    COMBINATIONS,
    LIVE,
    PYTHON_VERSIONS,
    TEMPLATE_DIR,
    bake,
    combination_id,
    installed_python,
    run_make,
)

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
    ("server", "asgi-uvicorn"): {"falcon", "uvicorn", "websockets"},
    ("server", "wsgi-gevent"): {"falcon", "gevent", "gevent-websocket", "gunicorn"},
    ("broker", "memory"): set(),
    ("broker", "redis"): {"redis"},
}
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# The benchmark of each broker on a tiny workload (make variables), and lines its report must have.
TINY_BENCH = {
    "memory": (("BENCH_ARGS=--tiny",), ("| raw websockets |",)),
    "redis": (
        ("BENCH_ARGS=--messages 200 --senders 1", "SCALE_ARGS=--tiny"),
        (
            "| two servers / pipelined reference |",
            "| two servers / floor |",
            "| history on / history off |",
            "process 0 CPU/s: base",
        ),
    ),
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
FAST = [answers for answers in COMBINATIONS if answers not in LIVE] + [
    {**CUSTOM_ANSWERS, **answers}
    for answers in COMBINATIONS
    if answers["python_version"] == PYTHON_VERSIONS[0] and answers["broker"] == "redis"
]
# A target line of a Makefile (not a variable assignment).
MAKE_TARGET = re.compile(r"^[^\s#=]+:(?!=)")


def options(answers: dict[str, str]) -> list[tuple[str, str]]:
    """The structural (option, value) pairs of ``answers``."""
    return [(key, answers[key]) for key in ("server", "broker", "use_docker", "ci", "license")]


def project_files(project: Path) -> list[Path]:
    return sorted(path for path in project.rglob("*") if path.is_file())


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_nothing_is_left_unrendered(rendered: Any, answers: dict[str, str]) -> None:
    project = rendered(answers)
    leftovers = [
        f"{path.relative_to(project)}: {match.group()}"
        for path in [project, *project_files(project)]
        for match in [UNRENDERED.search(path.name), UNRENDERED.search(read(path))]
        if match
    ]
    assert leftovers == []


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_other_variant_is_pruned(rendered: Any, answers: dict[str, str]) -> None:
    project = rendered(answers)
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
def test_dependencies_are_the_variants_own(rendered: Any, answers: dict[str, str]) -> None:
    project = rendered(answers)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    names = {REQUIREMENT_NAME.match(req)[0].lower() for req in pyproject["project"]["dependencies"]}
    assert names == set().union(
        *(RUNTIME_DEPENDENCIES.get(option, set()) for option in options(answers))
    )
    assert pyproject["project"]["requires-python"] == f">={answers['python_version']}"


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_text_files_are_tidy(rendered: Any, answers: dict[str, str]) -> None:
    """No blank lines added or lost by template conditionals: Python files as ``ruff
    format`` leaves them, one blank line before each Makefile target, no blank-line runs
    elsewhere, one final newline."""
    project = rendered(answers)
    untidy = [
        str(path.relative_to(project))
        for path in project_files(project)
        if path.suffix != ".py" and path.stat().st_size and not is_tidy(read(path))
    ]
    assert untidy == []
    assert makefile_separators(project / "Makefile") == []
    done = subprocess.run(
        [Path(sys.executable).with_name("ruff"), "format", "--check", "--diff", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


MAX_MODULE_LINES = 400
"""No module of the generated src/, tests/ or bench/ is longer: each holds one job."""
MAX_SHARED_ADAPTER_LINES = 40
"""The two adapters keep what differs between their stacks; what they share is in the core."""


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_no_module_is_too_long(rendered: Any, answers: dict[str, str]) -> None:
    project = rendered(answers)
    too_long = [
        f"{path.relative_to(project)}: {lines} lines"
        for path in project_files(project)
        if path.suffix == ".py"
        and path.relative_to(project).parts[0] in ("src", "tests", "bench")
        and (lines := len(read(path).splitlines())) > MAX_MODULE_LINES
    ]
    assert too_long == []


def test_the_adapters_share_few_lines() -> None:
    """Counted as the identical lines (stripped, blank ones left out) that both
    adapter modules hold, each as often as the file that holds it fewer times."""
    package = TEMPLATE_DIR / "{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}"
    asgi, wsgi = (
        Counter(line.strip() for line in read(package / name).splitlines() if line.strip())
        for name in ("asgi.py", "wsgi.py")
    )
    shared = asgi & wsgi
    assert sum(shared.values()) < MAX_SHARED_ADAPTER_LINES, sorted(shared)


def is_tidy(text: str) -> bool:
    return "\n\n\n" not in text and text.endswith("\n") and not text.endswith("\n\n")


def makefile_separators(makefile: Path) -> list[str]:
    """Targets not set off from what comes before by a blank line (their comments included)."""
    lines = makefile.read_text().splitlines()
    missing = []
    for number, line in enumerate(lines):
        if not MAKE_TARGET.match(line) or line.startswith("."):
            continue
        above = number - 1
        while above >= 0 and lines[above].startswith("#"):
            above -= 1
        if above >= 0 and lines[above] != "":
            missing.append(f"{makefile.name}:{number + 1}: {line}")
    return missing


def test_no_blank_line_is_eaten_by_whitespace_control() -> None:
    """A ``{%-`` right after a blank line (or ``-%}`` right before one) removes that blank
    line in every rendering: put the blank line inside the block instead."""
    eaten = []
    for path in project_files(TEMPLATE_DIR / "{{cookiecutter.project_slug}}"):
        lines = read(path).splitlines()
        for number in range(1, len(lines)):
            before, line = lines[number - 1], lines[number]
            if before == "" and re.match(r"\s*[{][%{#]-", line):
                eaten.append(f"{path.name}:{number + 1}: {line.strip()}")
            if line == "" and re.search(r"-[%}#][}]\s*$", before):
                eaten.append(f"{path.name}:{number}: {before.strip()}")
    assert eaten == []


def check_with_make(cookies: Any, answers: dict[str, str], *targets: str) -> None:
    """Bake ``answers`` and run ``make TARGETS`` in it with no PYTHON given: the Makefile
    picks the interpreter, which must be the ``python_version`` answered."""
    version = answers["python_version"]
    installed_python(version)
    project = bake(cookies, answers)
    done = run_make(project, *targets)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert re.search(r"\d+ passed", done.stdout), done.stdout
    venv_python = project / ".venv" / "bin" / "python"
    reported = subprocess.run(
        [venv_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert reported == version


@pytest.mark.parametrize("answers", LIVE, ids=combination_id)
def test_generated_project_passes_all_its_tests(cookies: Any, answers: dict[str, str]) -> None:
    """``make lint test``: ruff, ruff format, mypy, and every test, the slow live suites
    (browser, fuzz, conformance, shutdown, hardening, scale-out and Redis faults) included."""
    check_with_make(cookies, answers, "lint", "test")


@pytest.mark.parametrize("answers", LIVE, ids=combination_id)
def test_generated_project_benchmark_runs(cookies: Any, answers: dict[str, str]) -> None:
    """``make bench`` end to end on a tiny workload: no figures checked, only the report."""
    installed_python(answers["python_version"])
    variables, lines = TINY_BENCH[answers["broker"]]
    done = run_make(bake(cookies, answers), "bench", *variables)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert [line for line in lines if line not in done.stdout] == [], done.stdout


@pytest.mark.parametrize("answers", FAST, ids=combination_id)
def test_generated_project_passes_lint_and_its_fast_tests(
    cookies: Any, answers: dict[str, str]
) -> None:
    """``make lint test-fast``: ruff, ruff format, mypy, and the tests not marked slow."""
    check_with_make(cookies, answers, "lint", "test-fast")


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""
