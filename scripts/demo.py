"""Render the template into a folder and serve the result: ``make demo``.

Usage: ``python scripts/demo.py OUTPUT_DIR [key=value ...]``; the answers not
given take their defaults. The project is served by its own ``make run``, which
picks the Python it builds ``.venv`` with, as it does for any user.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    output_dir = Path(argv[0])
    answers = dict(arg.split("=", 1) for arg in argv[1:])
    shutil.rmtree(output_dir, ignore_errors=True)
    project = Path(
        cookiecutter(
            str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=str(output_dir)
        )
    )
    print(f"Rendered {project}; serving it with `make run` (Ctrl-C stops).", flush=True)
    # uv from this virtualenv, which makes the project's .venv in seconds.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    os.execvpe("make", ["make", "-C", str(project), "run"], env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
