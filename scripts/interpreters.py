"""Find the Python interpreter a baked project asks for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def find_python(version: str) -> str | None:
    """Path of a working ``python<version>``: on PATH, else one that pyenv installed."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(
        str(path) for path in Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")
    )
    for candidate in candidates:
        if candidate and _runs(candidate):
            return candidate
    return None


def _runs(python: str) -> bool:
    # pyenv puts a shim on PATH for every installed version, and the shims of
    # versions not selected fail when run.
    done = subprocess.run([python, "-c", ""], capture_output=True, check=False)
    return done.returncode == 0


if __name__ == "__main__":
    import sys

    for wanted in sys.argv[1:]:
        print(f"python{wanted}: {find_python(wanted) or 'not found (its combinations will skip)'}")
