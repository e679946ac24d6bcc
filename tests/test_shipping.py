"""The files around the code: container, compose, CI workflow, pre-commit, .env.example, LICENSE.

Each combination of server x broker x python_version is baked with Docker and CI
files on (the licenses rotate as in COMBINATIONS) and every such file is run
through its own validator: hadolint, actionlint, the compose-spec and GitHub
workflow JSON schemas (check-jsonschema's vendored copies), ``docker compose
config`` (the real compose loader; it needs no daemon), ``pre-commit
validate-config``, and shellcheck on the Makefile's Python finder. All of them
come from requirements-dev.txt; nothing is downloaded at run time. No image is
built: that needs a Docker daemon.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from template import COMBINATIONS, combination_id, supported_from

BIN = Path(sys.executable).parent
SHIPPED = [{**answers, "use_docker": "y", "ci": "github"} for answers in COMBINATIONS]
ENV_LINE = re.compile(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)")
LICENSE_TITLES = {
    "MIT": "MIT License",
    "BSD-3-Clause": "BSD 3-Clause License",
    "Apache-2.0": "Apache License",
}


def run(*command: str | Path, cwd: Path) -> str:
    """Run a validator; on failure, return its complaint (else an empty string)."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return "" if done.returncode == 0 else f"{command}:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("answers", SHIPPED, ids=combination_id)
def test_shipped_files_pass_their_validators(rendered: Any, answers: dict[str, str]) -> None:
    project = rendered(answers)
    workflow = ".github/workflows/ci.yml"
    complaints = [
        run(BIN / "hadolint", "Dockerfile", cwd=project),
        run(BIN / "shellcheck", "scripts/find-python.sh", cwd=project),
        run(BIN / "actionlint", "-no-color", workflow, cwd=project),
        run(
            BIN / "check-jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            workflow,
            cwd=project,
        ),
        run(
            BIN / "check-jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            "compose.yaml",
            cwd=project,
        ),
        run(BIN / "docker-compose", "--file", "compose.yaml", "config", "--quiet", cwd=project),
        run(BIN / "pre-commit", "validate-config", ".pre-commit-config.yaml", cwd=project),
    ]
    assert [complaint for complaint in complaints if complaint] == []


@pytest.mark.parametrize("answers", SHIPPED, ids=combination_id)
def test_dockerfile_runs_the_variants_server_as_a_user(
    rendered: Any, answers: dict[str, str]
) -> None:
    dockerfile = (rendered(answers) / "Dockerfile").read_text()
    assert f"ARG PYTHON_VERSION={answers['python_version']}\n" in dockerfile
    assert dockerfile.count("FROM python:${PYTHON_VERSION}-slim") == 2  # multi-stage
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    assert "HOST=0.0.0.0" in dockerfile
    (healthcheck,) = re.findall(r"^\s+CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert "/health" in healthcheck
    assert json.loads(healthcheck)[:2] == ["python", "-c"]  # the slim image has no curl
    (command,) = re.findall(r"^CMD (.*)$", dockerfile, re.MULTILINE)
    package = "falcon_realtime"
    assert json.loads(command) == (  # exec form, so SIGTERM reaches the server itself
        ["python", "-m", package]
        if answers["server"] == "asgi-uvicorn"
        else ["gunicorn", "--config", "gunicorn.conf.py"]
    )


def compose_model(project: Path) -> dict[str, Any]:
    """compose.yaml as docker compose itself resolves it (anchors, merges, defaults)."""
    done = subprocess.run(
        [BIN / "docker-compose", "--file", "compose.yaml", "config", "--format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    model: dict[str, Any] = json.loads(done.stdout)
    return model


@pytest.mark.parametrize("answers", SHIPPED, ids=combination_id)
def test_compose_scales_out_through_redis(rendered: Any, answers: dict[str, str]) -> None:
    services = compose_model(rendered(answers))["services"]
    apps = {name: service for name, service in services.items() if name != "redis"}
    host_ports = {
        name: [port["published"] for port in service["ports"]] for name, service in apps.items()
    }
    if answers["broker"] == "memory":
        assert set(services) == {"app"}
        assert host_ports == {"app": ["8000"]}
        return
    assert "healthcheck" in services["redis"]
    assert host_ports == {"app-1": ["8000"], "app-2": ["8001"]}
    for app in apps.values():
        assert app["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert app["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("answers", SHIPPED, ids=combination_id)
def test_workflow_tests_every_supported_python(rendered: Any, answers: dict[str, str]) -> None:
    workflow = (rendered(answers) / ".github/workflows/ci.yml").read_text()
    (matrix,) = re.findall(r"^\s+python: (\[.*\])$", workflow, re.MULTILINE)
    assert json.loads(matrix) == supported_from(answers["python_version"])
    assert "make lint" in workflow
    assert "make test" in workflow
    assert 'CI: "true"' in workflow
    assert ("redis-server" in workflow) == (answers["broker"] == "redis")


def load_config(project: Path) -> ModuleType:
    """The baked project's config.py, which needs only the standard library."""
    path = next(project.glob("src/*/config.py"))
    name = f"baked_config_{abs(hash(project))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses looks its module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_env_example_lists_every_setting_with_its_default(
    rendered: Any, answers: dict[str, str]
) -> None:
    project = rendered(answers)
    settings = load_config(project).Settings
    listed: dict[str, str] = {}
    commented: set[str] = set()
    for line in (project / ".env.example").read_text().splitlines():
        if match := ENV_LINE.fullmatch(line):
            if match[1]:
                commented.add(match[2])
            else:
                listed[match[2]] = match[3]
    names = {field.name.upper() for field in dataclasses.fields(settings)}
    assert set(listed) | commented == names
    # Only a default that depends on the machine (WORKERS, one per CPU) is left commented.
    assert commented == ({"WORKERS"} if answers["broker"] == "redis" else set())
    assert settings.from_env(listed) == settings()


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_license_is_the_chosen_one(rendered: Any, answers: dict[str, str]) -> None:
    project = rendered(answers)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    license_id = answers["license"]
    if license_id == "Proprietary":
        assert not (project / "LICENSE").exists()
        assert pyproject["license"] == "LicenseRef-Proprietary"
        assert "Private :: Do Not Upload" in pyproject["classifiers"]
        return
    text = (project / "LICENSE").read_text()
    assert LICENSE_TITLES[license_id] in text
    assert re.search(r"^Copyright (\(c\) )?20\d\d Your Name$", text, re.MULTILINE)
    assert pyproject["license"] == license_id
    assert not (project / "licenses").exists()
