"""Render the template into a folder and serve the result: ``make demo``.

Usage: ``python scripts/demo.py OUTPUT_DIR [key=value ...]``; the answers not
given take their defaults. The project is served by its own ``make run``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter
from interpreters import find_python

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
    choices = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())["python_version"]
    version = answers.get("python_version", choices[0])
    python = find_python(version)
    if python is None:
        print(f"ERROR: python{version} is not installed; install it or pick python_version=…")
        return 1
    print(f"Rendered {project}; serving it with `make run` (Ctrl-C stops).", flush=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    os.execvpe("make", ["make", "-C", str(project), "run", f"PYTHON={python}"], env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
