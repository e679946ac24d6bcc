"""``make bench`` of the template: both variants beside raw websockets and four peers.

It renders each server variant (default answers, memory broker) into ``--build-dir``, installs
each with its own ``make install``, and runs the rendered project's own benchmark
(``python -m bench.run``, the same workloads and picows load client as the project's ``make bench``,
no compression anywhere) on all servers in one run: the two variants, each one worker, and the
peers, each one process: the raw ``websockets`` reference (the project's ``bench.reference``),
Starlette on uvicorn, aiohttp, node ``ws`` (when ``node`` and ``npm`` are installed) and a picows
server, the ceiling of Python (``bench/peers/``). With ``redis-server`` installed, it then runs
each ``broker=redis`` variant's ``bench.redis_pubsub`` (two processes through Redis) and
``bench.redis_scale`` (eight processes, 2,000 members in 200 rooms). It
writes ``benchmarks.md``, ``benchmarks.png`` and ``benchmarks.json`` into ``--out``.

Arguments it does not know go to ``bench.run`` (``--tiny``, ``--seconds 5``, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import render
import report

BENCH_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = BENCH_DIR.parent
SERVERS = ("asgi-uvicorn", "wsgi-gevent")
LABELS = {"asgi-uvicorn": "falcon ASGI (uvicorn)", "wsgi-gevent": "falcon WSGI (gunicorn+gevent)"}
NO_NODE = "node ws: not measured, node and npm are not installed (apt-get install nodejs npm)"
# Each redis variant's benchmarks, and their arguments for a smoke run (--tiny).
REDIS_PROGRAMS = (
    ("bench.redis_pubsub", ["--messages", "200", "--senders", "1"]),
    ("bench.redis_scale", ["--tiny"]),
)
RUN_TIMEOUT = 3600  # seconds any one benchmark script may take, whatever it is told


def node_peer(build_dir: Path) -> dict[str, object] | None:
    """The node ``ws`` peer, installed with ``npm ci`` into ``build_dir``; None without node."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    source, target = BENCH_DIR / "peers" / "node", build_dir / "node"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(source / name, target / name)
    subprocess.run(  # npm from PATH: the registry's ws, at the version package-lock.json pins
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=target,
        check=True,
        capture_output=True,
        timeout=render.INSTALL_TIMEOUT,
    )
    return {
        "label": "node ws",
        "command": ["node", str(source / "server.js"), "--port", "{port}"],
        "env": {"NODE_PATH": str(target / "node_modules")},
    }


def node_versions(installed: Path) -> dict[str, str]:
    done = subprocess.run(["node", "--version"], check=True, capture_output=True, text=True)
    package = json.loads((installed / "node_modules" / "ws" / "package.json").read_text())
    return {"node": done.stdout.strip().lstrip("v"), "ws": package["version"]}


def server_specs(
    projects: Sequence[render.Project], node: dict[str, object] | None
) -> list[dict[str, object]]:
    """The servers of the run, as ``bench.run --servers`` reads them."""
    project_dir = projects[0].path
    sys.path.insert(0, str(project_dir))
    from bench.servers import PROJECT_ENV  # the rendered project's own benchmark settings

    env = {**PROJECT_ENV, "HOST": "127.0.0.1", "PORT": "{port}", "WORKERS": "1"}
    commands = {
        "asgi-uvicorn": lambda p: [p.python, "-m", p.package],
        "wsgi-gevent": lambda p: [p.python, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
    }
    specs: list[dict[str, object]] = [
        {
            "label": LABELS[p.server],
            "command": commands[p.server](p),
            "cwd": str(p.path),
            "env": env,
        }
        for p in projects
    ]
    peer = [sys.executable]
    specs += [
        {
            "label": "raw websockets",
            "command": [*peer, "-m", "bench.reference", "--port", "{port}"],
            "cwd": str(project_dir),
            "reference": True,
        },
        {
            "label": "Starlette (uvicorn)",
            "command": [*peer, str(BENCH_DIR / "peers" / "starlette_app.py"), "--port", "{port}"],
        },
        {
            "label": "aiohttp",
            "command": [*peer, str(BENCH_DIR / "peers" / "aiohttp_app.py"), "--port", "{port}"],
        },
        *([node] if node else []),
        {
            "label": "picows (a ceiling)",
            "command": [*peer, str(BENCH_DIR / "peers" / "picows_app.py"), "--port", "{port}"],
            "ceiling": True,
        },
    ]
    return specs


def tee(command: Sequence[str], cwd: Path) -> tuple[int, str]:
    """Run ``command``, echoing its output as it comes; its exit code and its output."""
    process = subprocess.Popen(  # the benchmark scripts of the rendered projects
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Its own session: a timeout stops the script and whatever servers it started.
    timer = threading.Timer(RUN_TIMEOUT, lambda: os.killpg(process.pid, signal.SIGKILL))
    timer.start()
    lines = []
    try:
        assert process.stdout is not None  # made with a pipe above
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        return process.wait(), "".join(lines)
    finally:
        timer.cancel()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def redis_sections(options: argparse.Namespace, cookiecutter: str) -> list[str]:
    """Workload 4: each ``broker=redis`` variant's Redis pub/sub benchmark, as it printed it."""
    if options.no_redis:
        return []
    if shutil.which("redis-server") is None:
        return [
            "## Redis broker\n\nNot measured: `redis-server` is not installed "
            "(apt-get install redis-server)."
        ]
    sections = []
    for server in SERVERS:
        project = render.render(cookiecutter, options.build_dir, server, "redis")
        outputs = []
        for program, tiny in REDIS_PROGRAMS:
            arguments = tiny if options.tiny else []
            code, output = tee([project.python, "-m", program, *arguments], project.path)
            if code != 0:
                raise SystemExit(f"bench: {program} of {server} failed ({code})")
            # One level down: the page's own heading says which variant this is.
            outputs.append(output.replace("## ", "### ", 1))
        sections.append(f"## Redis broker, {LABELS[server]}\n\n" + "\n".join(outputs))
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--cookiecutter", default=str(TEMPLATE_DIR / ".venv" / "bin" / "cookiecutter")
    )
    parser.add_argument("--build-dir", type=Path, default=TEMPLATE_DIR / "build" / "bench")
    parser.add_argument("--out", type=Path, default=TEMPLATE_DIR / "docs")
    parser.add_argument("--no-redis", action="store_true", help="skip workload 4")
    parser.add_argument("--tiny", action="store_true", help="seconds-long workloads: a smoke run")
    options, run_arguments = parser.parse_known_args(argv)
    load_average = os.getloadavg()
    print(
        f"bench: rendering and installing {', '.join(SERVERS)} into {options.build_dir}", flush=True
    )
    projects = [
        render.render(options.cookiecutter, options.build_dir, s, "memory") for s in SERVERS
    ]
    options.out.mkdir(parents=True, exist_ok=True)
    specs_path, results_path = options.build_dir / "servers.json", options.out / "benchmarks.json"
    node = node_peer(options.build_dir)
    specs_path.write_text(json.dumps(server_specs(projects, node), indent=1))
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--servers",
        str(specs_path),
        "--json",
        str(results_path),
    ]
    command += ["--tiny"] * options.tiny + run_arguments
    code, output = tee(command, projects[0].path)
    if code != 0:
        print(f"bench: the websocket benchmark failed ({code})", file=sys.stderr)
        return code
    if node is None:
        output += f"\n- {NO_NODE}\n"
    sections = [output, *redis_sections(options, options.cookiecutter)]
    environments = {LABELS[p.server]: render.versions(p.python) for p in projects}
    environments["peers and load client"] = render.versions(sys.executable)
    if node is not None:
        environments["node ws"] = node_versions(options.build_dir / "node")
    results = json.loads(results_path.read_text())["results"]
    report.chart(results, options.out / report.CHART_NAME)
    invocation = "make bench" + (f" BENCH_ARGS='{' '.join(argv)}'" if argv else "")
    (options.out / "benchmarks.md").write_text(
        report.page(sections, environments, invocation, load_average)
    )
    print(f"bench: wrote {options.out / 'benchmarks.md'} and {options.out / report.CHART_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
