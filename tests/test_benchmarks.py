"""The template's ``make bench`` runs end to end: a tiny workload, no figures checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from template import TEMPLATE_DIR, unavailable

# Lines the page must have: every server's row, the equal terms and the client's calibration.
EXPECTED = (
    "| raw websockets |",
    "| aiohttp |",
    "| Starlette (uvicorn) |",
    "| picows (a ceiling) |",
    "- compression: none for every server",
    "client ceiling:",
)


def test_make_bench_writes_the_page_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    arguments = f"--tiny --out {out} --build-dir {tmp_path / 'build'}"
    done = subprocess.run(
        ["make", "bench", f"BENCH_ARGS={arguments}"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    page = (out / "benchmarks.md").read_text()
    for line in EXPECTED:
        assert line in page, page
    assert "falcon ASGI (uvicorn)" in page
    assert "falcon WSGI (gunicorn+gevent)" in page
    assert "would compress with a browser" not in page  # every server declined deflate
    if shutil.which("node") and shutil.which("npm"):
        assert "| node ws |" in page, page
    else:
        assert "node ws: not measured" in page, page
        unavailable("node ws was not measured: node and npm are not installed")
    assert (out / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    if shutil.which("redis-server"):
        assert page.count("| two servers / pipelined reference |") == 2, page
        assert page.count("| one at a time: project / floor |") == 2, page
        assert page.count("process 0 CPU/s: base") == 2, page
