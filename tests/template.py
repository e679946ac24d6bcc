"""What the template tests share: option combinations and the hook modules."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from interpreters import find_python

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
COOKIECUTTER_JSON = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())

SERVERS: list[str] = COOKIECUTTER_JSON["server"]
BROKERS: list[str] = COOKIECUTTER_JSON["broker"]
PYTHON_VERSIONS: list[str] = COOKIECUTTER_JSON["python_version"]
USE_DOCKER: list[str] = COOKIECUTTER_JSON["use_docker"]
CI_SERVICES: list[str] = COOKIECUTTER_JSON["ci"]
LICENSES: list[str] = COOKIECUTTER_JSON["license"]


def extras(index: int, server: int, broker: int) -> dict[str, str]:
    """The add-on options for the ``index``-th Python of one server and broker.

    They vary along the existing combinations instead of multiplying them: over its
    four Pythons each server and broker gets every pairing of ``use_docker`` and
    ``ci``, and the licenses rotate, so every value is baked with both servers and
    both brokers.
    """
    return {
        "use_docker": USE_DOCKER[index % 2],
        "ci": CI_SERVICES[index // 2 % 2],
        "license": LICENSES[(index + server + broker) % len(LICENSES)],
    }


# Every combination of the options that change the project's structure: server x
# broker x python_version, each with a spread of the add-on options.
COMBINATIONS = [
    {
        "server": server,
        "broker": broker,
        "python_version": version,
        **extras(index, SERVERS.index(server), BROKERS.index(broker)),
    }
    for server, broker in itertools.product(SERVERS, BROKERS)
    for index, version in enumerate(PYTHON_VERSIONS)
]


# The combinations whose projects also run their slow live suites (browser, fuzz,
# conformance, shutdown, Redis faults) and their benchmark: every server x broker pair
# once, each with another python_version, so every Python runs them once too.
# FULL_MATRIX=1 (`make test-all`) runs them in every combination.
LIVE = [
    answers
    for pair, (server, broker) in enumerate(itertools.product(SERVERS, BROKERS))
    for answers in COMBINATIONS
    if (answers["server"], answers["broker"]) == (server, broker)
    and (
        os.environ.get("FULL_MATRIX") == "1"
        or answers["python_version"] == PYTHON_VERSIONS[pair % len(PYTHON_VERSIONS)]
    )
]


def supported_from(version: str) -> list[str]:
    """The Pythons a project whose ``python_version`` is ``version`` supports, oldest first."""

    def key(choice: str) -> tuple[int, ...]:
        return tuple(int(part) for part in choice.split("."))

    return sorted((choice for choice in PYTHON_VERSIONS if key(choice) >= key(version)), key=key)


def bake(cookies: Any, answers: dict[str, str]) -> Path:
    """The project pytest-cookies' ``cookies`` (or ``cookies_session``) bakes from ``answers``."""
    result = cookies.bake(extra_context=answers)
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    project: Path = result.project_path
    assert project.is_dir()
    return project


def combination_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values())


def load_hook(name: str) -> ModuleType:
    """Import ``hooks/<name>.py`` as a module; its Jinja lives only under ``__main__``."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_DIR / "hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_make(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``make`` in a baked project, its output captured; it fails only by its status."""
    # The baked Makefile uses uv when it is on PATH: the one installed beside this pytest.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["make", *arguments],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def unavailable(reason: str) -> NoReturn:
    """Skip for ``reason`` (something this machine lacks); under ``CI=true``, where
    ``.ci/run`` installs everything, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def installed_python(version: str) -> str:
    """This machine's ``python<version>`` (on PATH or under pyenv), or :func:`unavailable`."""
    python = find_python(version)
    if python is None:
        unavailable(f"python{version} is not installed here (pyenv install {version} to run this)")
    return python


def run_cookiecutter(
    cwd: Path, *arguments: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``cookiecutter --no-input ARGUMENTS`` command, run in ``cwd`` with no stdin."""
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", *arguments],
        cwd=cwd,
        env=dict(env if env is not None else os.environ),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
