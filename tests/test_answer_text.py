"""Hostile free-text answers render valid files, and no answer is ever executed.

Each answer set is baked with both servers and the files are read the way
their own tools read them (tomllib, ``compile()``, a CommonMark parser, an HTML
parser, json, ruff), not grepped. The generated project's own test suite is not
run here: test_generation.py does that.

Answers reach pytest-cookies as ``extra_context``, which cookiecutter renders as
Jinja before any hook runs; so each one is wrapped in a raw block, the way the
hook's refusal of live Jinja there tells users to pass text literally (see
test_bad_answers.py). Typed at the prompt, answers are taken as they are:
``test_prompted_answers_are_taken_literally`` checks that with the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt  # installed with cookiecutter (through rich)
from template import SERVERS, TEMPLATE_DIR, installed_python, run_make

FREE_TEXT = ("project_name", "description", "author_name")
BIN = Path(sys.executable).parent


def answer_sets(marker: Path) -> dict[str, dict[str, str]]:
    """Hostile answers by name; a payload that runs would create ``marker``."""
    run = f"touch {marker}"
    return {
        "quotes": {
            "project_name": 'Bob\'s "Chat" \\ Server \'\'\' """',
            "description": 'Say "hi" \\n is no newline, \\" no quote: C:\\temp\\ """ \\',
            "author_name": 'O\'Brien "Hammer" \\',
            # Valid RFC 5322: a quoted local part holding a quote and a backslash.
            "author_email": '"a\\"b\\\\c"@example.com',
        },
        "code": {
            "project_name": "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} {# hidden #}",
            "description": (
                f"{{{{ cycler.__init__.__globals__.os.system('{run}') }}}} $({run}) `{run}`; "
                f"__import__('os').system('{run}') $(rm -rf /)"
            ),
            "author_name": "<script>alert(1)</script> & ' \" --> ]]> ${HOME}",
            "author_email": "{{7*7}}@example.com",
        },
        "unicode": {
            "project_name": "Café 🚀 שלום عربي 👩\u200d💻 日本語",
            "description": (
                "Ünïcödé ✓ \u202eRTL override\u202c, \u200fmark, zero\u200bwidth, 🏳️\u200d🌈"
            ),
            "author_name": "Zoë Ågren 😀",
            "author_email": "zoe@exämple.org",
        },
        "markup": {
            "project_name": "# Not *a* [link](javascript:alert(1)) <h2>x</h2> ``` | a | b |",
            "description": '```toml [project] name = "x" # ]] [[ \\u0000 = |a|b| <!-- ~~~',
            "author_name": '[tool.x] = "y" # comment',
        },
    }


# Description openings that start a Markdown block other than a paragraph.
MARKDOWN_OPENINGS = [
    "# heading",
    "## heading",
    "> quote",
    "- item",
    "+ item",
    "* item",
    "1. item",
    "12) item",
    "---",
    "***",
    "___",
    "```python",
    "~~~",
    "<!-- the rest of the file",
    "<script>alert(1)",
    "<div>",
    "[ref]: https://example.com",
    "| a | b |",
    "=== underline",
]


def literally(text: str) -> str:
    """``text`` in a Jinja raw block, so cookiecutter passes it on as it is."""
    return "{% raw %}" + text + "{% endraw %}"


def bake(cookies: Any, answers: dict[str, str], **options: str) -> Path:
    """Bake with the text ``answers`` passed literally, and choices as ``options``."""
    text = {key: literally(value) for key, value in answers.items()}
    result = cookies.bake(extra_context={"project_slug": "chat", **text, **options})
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    project: Path = result.project_path
    return project


def readme_blocks(project: Path) -> list[tuple[str, str]]:
    """The README's blocks, as a CommonMark parser sees them."""
    tokens = MarkdownIt("commonmark").parse((project / "README.md").read_text("utf-8"))
    return [(token.type, token.tag) for token in tokens]


class PageReader(HTMLParser):
    """The start tags of a page, and the text of its <title> and <h1>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: dict[str, str] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._open = tag if tag in {"title", "h1"} else None

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.text[self._open] = self.text.get(self._open, "") + data


def read_page(project: Path) -> PageReader:
    reader = PageReader()
    (page,) = project.glob("src/*/static/index.html")
    reader.feed(page.read_text("utf-8"))
    reader.close()
    return reader


@pytest.fixture(scope="module")
def plain(cookies_session: Any) -> dict[str, Path]:
    """A default bake of each server, whose structure hostile bakes must keep."""
    projects = {}
    for server in SERVERS:
        result = cookies_session.bake(extra_context={"server": server})
        assert result.exit_code == 0, result.exception
        projects[server] = Path(result.project_path)
    return projects


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("kind", list(answer_sets(Path())))
def test_hostile_answers_render_valid_files(
    cookies: Any, plain: dict[str, Path], tmp_path: Path, kind: str, server: str
) -> None:
    marker = tmp_path / "executed"
    answers = answer_sets(marker)[kind]
    project = bake(cookies, answers, server=server)

    # pyproject.toml parses and holds every answer exactly.
    metadata = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))["project"]
    assert metadata["description"] == answers["description"]
    assert metadata["authors"] == [
        {
            "name": answers["author_name"],
            "email": answers.get("author_email", "you@example.com"),
        }
    ]

    # Every Python file compiles, and free text is never pasted into Python.
    for path in project.rglob("*.py"):
        source = path.read_text("utf-8")
        compile(source, str(path), "exec")
        for key in FREE_TEXT:
            assert answers[key] not in source, f"{key} pasted into {path}"

    # The README has the same blocks as a plain one: a one-line heading that is
    # the name, then the description as one paragraph (a leading marker escaped).
    lines = (project / "README.md").read_text("utf-8").splitlines()
    assert lines[0] == f"# {answers['project_name']}"
    assert lines[1] == ""
    assert lines[2].replace("\\", "") == answers["description"].replace("\\", "")
    assert readme_blocks(project) == readme_blocks(plain[server])

    # The page shows the name as text: same tags as a plain page, nothing injected.
    page = read_page(project)
    assert page.tags == read_page(plain[server]).tags
    assert page.text == {"title": answers["project_name"], "h1": answers["project_name"]}

    for path in project.rglob("*.json"):
        json.loads(path.read_text("utf-8"))

    assert not marker.exists(), "an answer was executed"
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [BIN / "ruff", *command, "--no-cache", "--quiet", "."],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("opening", MARKDOWN_OPENINGS)
def test_description_stays_one_paragraph(
    cookies: Any, plain: dict[str, Path], opening: str
) -> None:
    project = bake(cookies, {"description": f"{opening} and more"}, server=SERVERS[0])
    assert readme_blocks(project) == readme_blocks(plain[SERVERS[0]])
    metadata = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))["project"]
    assert metadata["description"] == f"{opening} and more"


def test_prompted_answers_are_taken_literally(tmp_path: Path) -> None:
    """Answers typed at the real CLI's prompts are text: nothing in them runs."""
    marker = tmp_path / "executed"
    name = f"{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}} {{{{ 7*7 }}}}"
    description = "{% for x in range(3) %}x{% endfor %} $(touch " + str(marker) + ")"
    # The prompts in cookiecutter.json's order; an empty line takes the default.
    prompts = [
        key
        for key in json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
        if not key.startswith("_")
    ]
    typed = [name, "chat", "", description, "{{ 7*7 }}"]
    typed += [""] * (len(prompts) - len(typed))
    done = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "-o", str(tmp_path / "out"), str(TEMPLATE_DIR)],
        input="\n".join(typed) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    project = tmp_path / "out" / "chat"
    assert not marker.exists()
    assert (project / "README.md").read_text("utf-8").startswith(f"# {name}\n\n{description}\n")
    metadata = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))["project"]
    assert metadata["description"] == description
    assert metadata["authors"][0]["name"] == "{{ 7*7 }}"


def test_jinja_in_extra_context_is_refused(
    cookies: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Through pytest-cookies too, a live Jinja answer makes no project."""
    result = cookies.bake(extra_context={"project_name": "{{ 7*7 }}", "project_slug": "chat"})
    assert result.exit_code != 0
    # cookies bakes into tmp_path/cookies/bakeNN: cookiecutter removed the project.
    assert [path.name for path in tmp_path.glob("cookies/*/*")] == []
    assert "ERROR: project_name '{{ 7*7 }}' is Jinja markup" in capfd.readouterr().err


def test_make_lint_passes_on_a_hostile_project(cookies: Any, tmp_path: Path) -> None:
    """The real tools (hatchling metadata, ruff, mypy) accept a hostile bake."""
    python = installed_python("3.12")
    answers = answer_sets(tmp_path / "executed")
    project = bake(
        cookies,
        {**answers["quotes"], "project_name": answers["unicode"]["project_name"]},
        python_version="3.12",
    )
    done = run_make(project, "lint", f"PYTHON={python}")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
