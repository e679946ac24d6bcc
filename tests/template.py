"""What the template tests share: option combinations and the hook modules."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path
from types import ModuleType

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
COOKIECUTTER_JSON = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())

SERVERS: list[str] = COOKIECUTTER_JSON["server"]
BROKERS: list[str] = COOKIECUTTER_JSON["broker"]
PYTHON_VERSIONS: list[str] = COOKIECUTTER_JSON["python_version"]

# Every combination of the options that change the project's structure.
COMBINATIONS = [
    {"server": server, "broker": broker, "python_version": version}
    for server, broker, version in itertools.product(SERVERS, BROKERS, PYTHON_VERSIONS)
]


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
