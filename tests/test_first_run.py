"""The first five minutes, as a newcomer types them.

``cookiecutter --no-input falcon-ws-template`` from the folder the checkout is in,
then ``make run`` in the new project with this machine's own PATH (without this
test run's virtualenv, so without its uv: ``venv`` and ``pip`` from PyPI), no
PYTHON given; then what the project serves: the page, ``/health``, and an echo.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from template import SERVERS, run_cookiecutter
from websockets.sync.client import connect

# make run creates .venv and installs the project and its dev tools first.
FIRST_RUN_TIMEOUT = 300.0


def newcomers_environment() -> dict[str, str]:
    """This machine's environment without the virtualenv these tests run in."""
    ours = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != ours)
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    return {**environment, "PATH": path}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + FIRST_RUN_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"make run exited:\n{log.read_text(errors='replace')}"
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            if get(url)[0] == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"/health never answered 200:\n{log.read_text(errors='replace')}")


@pytest.mark.parametrize("server", SERVERS)
def test_render_with_a_relative_path_then_make_run_serves(
    checkout: Path, tmp_path: Path, server: str
) -> None:
    env = newcomers_environment()
    rendered = run_cookiecutter(checkout.parent, checkout.name, f"server={server}", env=env)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    project = checkout.parent / "falcon-realtime"

    port = free_port()
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=project,
            env={**env, "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{base}/health", process, log)
        status, page = get(f"{base}/")
        assert status == 200
        assert "<title>Falcon Realtime</title>" in page
        assert json.loads(get(f"{base}/health")[1])["status"] == "ok"
        with connect(f"ws://127.0.0.1:{port}/ws/echo", open_timeout=5) as echo:
            echo.send("hello")
            assert echo.recv(timeout=5) == "hello"
            echo.send(b"\x00\xff")
            assert echo.recv(timeout=5) == b"\x00\xff"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Installing into .venv with" in log.read_text(errors="replace")
