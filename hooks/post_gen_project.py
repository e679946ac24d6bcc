"""Remove from the rendered project what the answers exclude.

Structure is chosen here, by deleting whole files of the variant that was not
picked; Jinja conditionals are kept for the few shared files whose text
differs. After this runs, nothing of the other variant is left.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

# Paths relative to the project root; "{package}" is the package name.
ASGI_FILES = (
    "src/{package}/asgi.py",
    "src/{package}/__main__.py",
)
WSGI_FILES = (
    "src/{package}/wsgi.py",
    "src/{package}/worker.py",
    "gunicorn.conf.py",
)


def remove_paths(project_dir: Path, paths: Iterable[str], package: str) -> None:
    """Delete each file or folder in ``paths``; a missing one is an error."""
    for pattern in paths:
        path = project_dir / pattern.format(package=package)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def remove_asgi_files(project_dir: Path, package: str) -> None:
    remove_paths(project_dir, ASGI_FILES, package)


def remove_wsgi_files(project_dir: Path, package: str) -> None:
    remove_paths(project_dir, WSGI_FILES, package)


def prune(project_dir: Path, answers: Mapping[str, str]) -> None:
    """Remove every file the answers exclude from ``project_dir``."""
    package = answers["package_name"]
    if answers["server"] == "asgi-uvicorn":
        remove_wsgi_files(project_dir, package)
    else:
        remove_asgi_files(project_dir, package)


def main() -> None:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    prune(Path.cwd(), answers)


if __name__ == "__main__":
    main()
