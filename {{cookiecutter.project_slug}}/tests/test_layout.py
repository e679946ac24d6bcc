"""README.md's "How the code is laid out": its tree names every module, and only real files."""

from __future__ import annotations

import re

from tests.support.live_server import PROJECT_DIR

HEADING = "## How the code is laid out"
# An entry: a name at an even indent of at most six spaces, then its description.
ENTRY = re.compile(r"^(?P<indent>(?:  ){0,3})(?P<name>[\w.*/-]+)(?:\s{2,}\S.*)?$")
# The folders whose every module (and subfolder) the tree must list.
LISTED_IN_FULL = ("src/{{ cookiecutter.package_name }}", "tests/support", "bench")


def tree_paths() -> list[str]:
    """The paths the README's tree names, relative to the project (folders end with /)."""
    section = (PROJECT_DIR / "README.md").read_text().split(HEADING, 1)[1]
    block = section.split("```\n", 2)[1]
    paths: list[str] = []
    folders: list[str] = []  # the folder each indent level is in
    for line in block.splitlines():
        match = ENTRY.match(line)
        if match is None:
            continue  # a description's second line
        level = len(match["indent"]) // 2
        del folders[level:]
        path = "".join(folders) + match["name"]
        paths.append(path)
        if path.endswith("/"):
            folders.append(match["name"])
    return paths


def test_the_readme_has_the_tree() -> None:
    paths = tree_paths()
    assert "src/{{ cookiecutter.package_name }}/" in paths
    assert "src/{{ cookiecutter.package_name }}/rooms.py" in paths


def test_every_path_in_the_tree_exists() -> None:
    missing = [path for path in tree_paths() if not list(PROJECT_DIR.glob(path.rstrip("/")))]
    assert missing == []


def test_the_tree_lists_every_module() -> None:
    listed = set(tree_paths())
    unlisted = []
    for folder in LISTED_IN_FULL:
        for path in sorted((PROJECT_DIR / folder).iterdir()):
            relative = path.relative_to(PROJECT_DIR).as_posix()
            if path.is_dir() and path.name != "__pycache__":
                relative += "/"
            elif path.suffix != ".py" or path.name == "__init__.py":
                continue
            if relative not in listed:
                unlisted.append(relative)
    assert unlisted == []
