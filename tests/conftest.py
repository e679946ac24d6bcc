"""Fixtures the template tests share, and the order they run in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from template import TEMPLATE_DIR, bake, combination_id

# What a user's checkout holds: not this checkout's virtualenvs, builds and caches.
NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git", ".venv", ".venv-bench", "build", "__pycache__", ".*_cache", ".hypothesis"
)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the template, as ``git clone`` would leave it, in ``src/falcon-ws-template``."""
    target = tmp_path / "src" / "falcon-ws-template"
    shutil.copytree(TEMPLATE_DIR, target, ignore=NOT_IN_A_CHECKOUT)
    return target


@pytest.fixture(scope="session")
def rendered(cookies_session: Any) -> Any:
    """``rendered(answers)``: the project baked from ``answers``, once per session (and
    xdist worker), for tests that only read it; a test that runs anything in it bakes
    its own."""
    projects: dict[str, Path] = {}

    def render(answers: dict[str, str]) -> Path:
        key = combination_id(answers)
        if key not in projects:
            projects[key] = bake(cookies_session, answers)
        return projects[key]

    return render


# Tests that run a baked project's own make, longest first: pytest-xdist hands out
# tests in this order, so that no long one is left to start last.
LONG_RUNNING = (
    "test_generated_project_passes_all_its_tests",
    "test_generated_project_passes_lint_and_its_fast_tests",
    "test_generated_project_benchmark_runs",
    "test_render_with_a_relative_path_then_make_run_serves",
    "test_make_bench_writes_the_page_and_chart",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = getattr(item, "originalname", item.name)
        return LONG_RUNNING.index(name) if name in LONG_RUNNING else len(LONG_RUNNING)

    items.sort(key=rank)
