"""Render template variants into a build folder and install each with its own ``make install``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE_DIR / "scripts"))
from interpreters import find_python  # noqa: E402 - scripts/ is not a package

INSTALL_TIMEOUT = 600
# What the benchmark reports of each environment.
PACKAGES = (
    "falcon",
    "uvicorn",
    "gunicorn",
    "gevent",
    "websockets",
    "starlette",
    "aiohttp",
    "picows",
    "uvloop",
)


@dataclass(frozen=True)
class Project:
    """A rendered, installed variant."""

    server: str
    broker: str
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / ".venv" / "bin" / "python")

    @property
    def package(self) -> str:
        return self.path.name.replace("-", "_")


def default_python_version() -> str:
    choices: list[str] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())[
        "python_version"
    ]
    return choices[0]


def render(cookiecutter: str, build_dir: Path, server: str, broker: str) -> Project:
    """Render with default answers but ``server`` and ``broker``, then ``make install``."""
    output = build_dir / f"{server}-{broker}"
    shutil.rmtree(output, ignore_errors=True)
    version = default_python_version()
    python = find_python(version)
    if python is None:
        raise RuntimeError(f"python{version} is not installed: the projects are rendered for it")
    answers = [f"server={server}", f"broker={broker}"]
    subprocess.run(  # the cookiecutter of this repo's venv
        [cookiecutter, "--no-input", str(TEMPLATE_DIR), "-o", str(output), *answers],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
    )
    (path,) = output.iterdir()
    # The project's Makefile uses uv when it is on PATH: the one beside cookiecutter.
    env = {
        **os.environ,
        "PATH": f"{Path(cookiecutter).absolute().parent}{os.pathsep}{os.environ['PATH']}",
    }
    subprocess.run(  # make from PATH, as a user runs it
        ["make", "-C", str(path), "install", f"PYTHON={python}"],
        check=True,
        capture_output=True,
        env=env,
        timeout=INSTALL_TIMEOUT,
    )
    return Project(server, broker, path)


def versions(python: str) -> dict[str, str]:
    """Python's and :data:`PACKAGES`' versions in the environment of ``python``."""
    script = (
        "import importlib.metadata as m, json, platform\n"
        "found = {'python': platform.python_version()}\n"
        f"for name in {PACKAGES!r}:\n"
        "    try: found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run(  # an interpreter this benchmark installed
        [python, "-c", script], check=True, capture_output=True, text=True, timeout=60
    )
    found: dict[str, str] = json.loads(done.stdout)
    return found


if __name__ == "__main__":
    # The interpreter of the projects' default python_version: the bench venv's too.
    print(find_python(default_python_version()) or sys.exit("python not found"))
