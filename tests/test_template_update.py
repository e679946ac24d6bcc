"""A project made with cruft takes a later template change with ``cruft update``.

The template is copied into a git repository of its own (cruft works from git
history), a project is created from it and committed, the user edits it, the
template gets a new commit, and ``cruft update`` applies the change on top of
the user's edit, leaving it uncommitted for review.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from template import TEMPLATE_DIR

BIN = Path(sys.executable).parent
PROJECT_TEMPLATE = "{{cookiecutter.project_slug}}"
ANSWERS = {"project_name": "Chat Hub", "author_email": "ada@example.com", "license": "MIT"}


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Template Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")


def sh(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def ok(*command: str | Path, cwd: Path) -> str:
    done = sh(*command, cwd=cwd)
    assert done.returncode == 0, f"{command}:\n{done.stdout}{done.stderr}"
    return done.stdout


def commit_all(repo: Path, message: str) -> None:
    ok("git", "add", "--all", cwd=repo)
    ok("git", "commit", "--quiet", "--message", message, cwd=repo)


def template_repo(root: Path) -> Path:
    """This template's current files, as the first commit of a repository of its own."""
    repo = root / "template"
    repo.mkdir()
    shutil.copy2(TEMPLATE_DIR / "cookiecutter.json", repo)
    junk = shutil.ignore_patterns("__pycache__", "*.py[cod]")
    shutil.copytree(TEMPLATE_DIR / "hooks", repo / "hooks", ignore=junk)
    shutil.copytree(TEMPLATE_DIR / "templates", repo / "templates", ignore=junk)
    shutil.copytree(TEMPLATE_DIR / PROJECT_TEMPLATE, repo / PROJECT_TEMPLATE, ignore=junk)
    ok("git", "init", "--quiet", "--initial-branch=main", cwd=repo)
    commit_all(repo, "Template v1")
    return repo


def change_template(repo: Path) -> None:
    """A later template release: an edited shared file, a new file, a WSGI-only edit."""
    inner = repo / PROJECT_TEMPLATE
    pre_commit = inner / ".pre-commit-config.yaml"
    hook = "      - id: check-case-conflict\n"
    assert hook in pre_commit.read_text()
    pre_commit.write_text(
        pre_commit.read_text().replace(hook, hook + "      - id: check-executables-have-shebangs\n")
    )
    (inner / "SECURITY.md").write_text(
        "Report vulnerabilities to {{ cookiecutter.author_email }}.\n"
    )
    worker = inner / "src/{{cookiecutter.package_name}}/gunicorn_worker.py"
    worker.write_text(worker.read_text() + "# A WSGI-only change.\n")
    commit_all(repo, "Template v2")


def test_cruft_update_applies_a_template_change_over_local_edits(tmp_path: Path) -> None:
    template = template_repo(tmp_path)
    ok(
        BIN / "cruft", "create", template, "--no-input", "--output-dir", tmp_path / "out",
        "--extra-context", json.dumps(ANSWERS),
        cwd=tmp_path,
    )  # fmt: skip
    project = tmp_path / "out" / "chat-hub"
    recorded = json.loads((project / ".cruft.json").read_text())
    assert recorded["template"] == str(template)
    assert recorded["context"]["cookiecutter"]["license"] == "MIT"
    ok("git", "init", "--quiet", "--initial-branch=main", cwd=project)
    commit_all(project, "Project from the template")

    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Our notes\n\nKept across updates.\n")
    commit_all(project, "Our own change")

    change_template(template)
    new_commit = ok("git", "rev-parse", "HEAD", cwd=template).strip()
    assert sh(BIN / "cruft", "check", cwd=project).returncode == 1  # out of date

    ok(BIN / "cruft", "update", "--skip-apply-ask", cwd=project)

    assert json.loads((project / ".cruft.json").read_text())["commit"] == new_commit
    assert "check-executables-have-shebangs" in (project / ".pre-commit-config.yaml").read_text()
    assert (project / "SECURITY.md").read_text() == "Report vulnerabilities to ada@example.com.\n"
    assert readme.read_text().endswith("## Our notes\n\nKept across updates.\n")
    # The change to a file this variant pruned stays pruned.
    assert not list(project.rglob("gunicorn_worker.py"))
    assert not list(project.rglob("*.rej"))
    # The update is left for review, not committed.
    changed = ok("git", "status", "--porcelain", cwd=project).splitlines()
    assert sorted(line[3:] for line in changed) == [
        ".cruft.json",
        ".pre-commit-config.yaml",
        "SECURITY.md",
    ]
    ok(BIN / "cruft", "check", cwd=project)
