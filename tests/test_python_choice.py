"""Which Python a generated project's ``make`` builds ``.venv`` with (``scripts/find-python.sh``).

The answered ``python_version`` is the oldest one the project supports; ``make``
takes it when there is one, else the newest other supported version, looked for
on PATH, among pyenv's installed versions, then by ``uv python find``. Each test
gives the script a PATH and a HOME of its own, holding real interpreters of this
machine (linked into a folder), real pyenv shims, or a real uv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from template import PYTHON_VERSIONS, bake, installed_python, run_make, supported_from, unavailable

ANSWERS = {"python_version": "3.12", "use_docker": "n", "ci": "none"}
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def linked(folder: Path, programs: dict[str, str]) -> Path:
    """``folder`` holding a link ``name`` to each program: a PATH entry of only those."""
    folder.mkdir()
    for name, target in programs.items():
        (folder / name).symlink_to(target)
    return folder


def find(project: Path, path: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the project's finder with nothing but ``path`` on PATH and ``home`` as HOME."""
    return subprocess.run(
        ["/bin/sh", "scripts/find-python.sh"],
        cwd=project,
        env={"PATH": path, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def version_of(interpreter: str) -> str:
    done = subprocess.run(
        [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def project(rendered: Any) -> Path:
    path: Path = rendered(ANSWERS)
    return path


@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_the_finder_knows_the_versions_pyproject_and_ci_support(
    rendered: Any, version: str
) -> None:
    project = rendered({**ANSWERS, "python_version": version})
    script = (project / "scripts/find-python.sh").read_text()
    assert f'supported="{" ".join(supported_from(version))}"\n' in script
    assert f'preferred="{version}"\n' in script


def test_the_answered_version_comes_first(project: Path, tmp_path: Path) -> None:
    path = linked(
        tmp_path / "bin",
        {"python3.13": installed_python("3.13"), "python3.12": installed_python("3.12")},
    )
    done = find(project, str(path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{path / 'python3.12'}\n"


def test_another_supported_version_on_path_is_taken(project: Path, tmp_path: Path) -> None:
    path = linked(tmp_path / "bin", {"python3.13": installed_python("3.13")})
    done = find(project, str(path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{path / 'python3.13'}\n"


def test_behind_pyenv_shims_of_another_version_the_installed_one_is_found(
    project: Path, tmp_path: Path
) -> None:
    """pyenv selects 3.11: its ``python3.12`` shim exits 127, yet 3.12 is installed."""
    shims = PYENV_ROOT / "shims"
    if not (shims / "python3.12").exists() or not list(PYENV_ROOT.glob("versions/3.11.*")):
        unavailable(f"no pyenv with Python 3.11 and 3.12 under {PYENV_ROOT}")
    selected = sorted(PYENV_ROOT.glob("versions/3.11.*"))[-1].name
    environment = {"PYENV_ROOT": str(PYENV_ROOT), "PYENV_VERSION": selected}
    shim = subprocess.run(
        [shims / "python3.12", "-c", ""],
        env={**os.environ, **environment},
        capture_output=True,
        check=False,
    )
    assert shim.returncode != 0  # the trap a plain `python3.12 -m venv` falls into
    # The shims need bash and coreutils: the system's folders, which must hold no 3.12.
    system = "/usr/bin:/bin"
    system_pythons = [shutil.which(name, path=system) for name in ("python3.12", "python3")]
    if any(python and version_of(python) == "3.12" for python in system_pythons):
        pytest.skip(f"{system} has a Python 3.12 of its own: the shims are not all it offers")
    done = find(project, f"{shims}:{system}", tmp_path, **environment)
    assert done.returncode == 0, done.stderr
    found = done.stdout.strip()
    assert found.startswith(str(PYENV_ROOT / "versions" / "3.12."))
    assert version_of(found) == "3.12"


def test_uv_is_asked_when_path_and_pyenv_have_none(project: Path, tmp_path: Path) -> None:
    """uv finds the interpreter of the active virtualenv, which is on no PATH here."""
    venv = tmp_path / "venv"
    subprocess.run([installed_python("3.13"), "-m", "venv", "--without-pip", venv], check=True)
    path = linked(tmp_path / "bin", {"uv": str(Path(sys.executable).with_name("uv"))})
    done = find(project, str(path), tmp_path, VIRTUAL_ENV=str(venv))
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == venv / "bin"
    assert version_of(done.stdout.strip()) == "3.13"


def test_no_supported_python_stops_with_one_line(project: Path, tmp_path: Path) -> None:
    path = linked(
        tmp_path / "bin",
        {"python3.10": installed_python("3.10"), "python3": installed_python("3.10")},
    )
    done = find(project, str(path), tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("ERROR: no Python 3.12, 3.13 found")
    assert "pyenv install 3.12" in line
    assert "PYTHON=" in line


def test_make_stops_with_that_line_and_python_overrides_it(cookies: Any, tmp_path: Path) -> None:
    project = bake(cookies, ANSWERS)
    only_make = linked(tmp_path / "bin", {"make": "/usr/bin/make", "sh": "/bin/sh"})
    done = subprocess.run(
        ["make", "install"],
        cwd=project,
        env={"PATH": str(only_make), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "ERROR: no Python 3.12, 3.13 found" in done.stderr
    assert not (project / ".venv").exists()

    done = run_make(project, "install", f"PYTHON={installed_python('3.13')}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert version_of(str(project / ".venv/bin/python")) == "3.13"
