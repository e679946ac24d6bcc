"""The template renders from every spelling of its location, with the real ``cookiecutter`` CLI.

A relative path, ``.``, an absolute path, a git URL and a zip file: cookiecutter
hands the hooks a different ``_repo_dir`` for each (relative to where it was
started, a clone in ``~/.cookiecutters``, an unpacked zip), and the hooks run
in the new project's folder, not in the template's.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

from template import run_cookiecutter


def cookiecutter(cwd: Path, template: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``cookiecutter --no-input TEMPLATE`` run in ``cwd``, with a ``HOME`` of its own."""
    # A home of its own: git templates are cloned into ~/.cookiecutters, replays kept there.
    return run_cookiecutter(cwd, template, env={**os.environ, "HOME": str(home)})


def assert_rendered(done: subprocess.CompletedProcess[str], where: Path) -> None:
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert (where / "falcon-realtime" / "pyproject.toml").is_file()


def test_relative_path_from_the_parent_folder(checkout: Path, tmp_path: Path) -> None:
    done = cookiecutter(checkout.parent, "falcon-ws-template", tmp_path)
    assert_rendered(done, checkout.parent)


def test_relative_path_from_elsewhere(checkout: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "projects"
    elsewhere.mkdir()
    done = cookiecutter(elsewhere, os.path.join("..", "src", "falcon-ws-template"), tmp_path)
    assert_rendered(done, elsewhere)


def test_dot_inside_the_checkout(checkout: Path, tmp_path: Path) -> None:
    done = cookiecutter(checkout, ".", tmp_path)
    assert_rendered(done, checkout)


def test_absolute_path(checkout: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "projects"
    elsewhere.mkdir()
    assert_rendered(cookiecutter(elsewhere, str(checkout), tmp_path), elsewhere)


def test_git_url(checkout: Path, tmp_path: Path) -> None:
    # Settings of its own, whatever the user's git config says (signing, hooks).
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    git += ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
    subprocess.run([*git, "init", "--quiet"], cwd=checkout, check=True)
    subprocess.run([*git, "add", "--all"], cwd=checkout, check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "template"], cwd=checkout, check=True)
    elsewhere = tmp_path / "projects"
    elsewhere.mkdir()
    done = cookiecutter(elsewhere, f"git+file://{checkout}", tmp_path)
    assert_rendered(done, elsewhere)


def test_zip_file(checkout: Path, tmp_path: Path) -> None:
    archive = tmp_path / "falcon-ws-template.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        # Top folder first, as in GitHub's archives: cookiecutter takes the first entry for it.
        zipped.write(checkout, "falcon-ws-template")
        for path in sorted(checkout.rglob("*")):
            zipped.write(path, Path("falcon-ws-template", path.relative_to(checkout)))
    elsewhere = tmp_path / "projects"
    elsewhere.mkdir()
    assert_rendered(
        cookiecutter(elsewhere, os.path.relpath(archive, elsewhere), tmp_path), elsewhere
    )
