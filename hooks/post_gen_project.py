"""Remove from the rendered project what the answers exclude.

Structure is chosen here, by deleting whole files of the variant that was not
picked, and the container and CI files when they are not wanted; Jinja
conditionals are kept for the few shared files whose text differs. The chosen
license's text becomes LICENSE. After this runs, nothing of the other variant
is left.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

# Paths relative to the project root; "{package}" is the package name.
ASGI_FILES = (
    "src/{package}/asgi.py",
    "src/{package}/__main__.py",
    "src/{package}/redis_asyncio.py",
    "src/{package}/uvicorn_server.py",
    "src/{package}/uvicorn_websocket.py",
)
WSGI_FILES = (
    "src/{package}/gevent_websocket.py",
    "src/{package}/wsgi.py",
    "src/{package}/gunicorn_worker.py",
    "src/{package}/redis_gevent.py",
    "gunicorn.conf.py",
    "tests/test_gevent_websocket.py",
)
REDIS_FILES = (
    "src/{package}/redis_alone.py",
    "src/{package}/redis_io.py",
    "src/{package}/redis_layout.py",
    "src/{package}/redis_positions.py",
    "src/{package}/redis_scripts.py",
    "src/{package}/redis_pubsub.py",
    "src/{package}/redis_asyncio.py",
    "src/{package}/redis_gevent.py",
    "tests/support/redis_cluster.py",
    "tests/support/redis_server.py",
    "tests/support/resilient_client.py",
    "tests/test_no_message_lost.py",
    "tests/test_redis_cluster.py",
    "tests/test_redis_positions.py",
    "tests/test_redis_pubsub.py",
    "tests/test_scale_out.py",
    "bench/redis_measure.py",
    "bench/redis_messages.py",
    "bench/redis_pubsub.py",
    "bench/redis_receiver.py",
    "bench/redis_reference.py",
    "bench/redis_relay.py",
    "bench/redis_report.py",
    "bench/redis_scale.py",
    "bench/redis_scale_load.py",
    "bench/redis_scale_stats.py",
    "bench/redis_senders.py",
)
DOCKER_FILES = ("Dockerfile", ".dockerignore", "compose.yaml")
GITHUB_FILES = (".github",)
# One text per license choice; the chosen one becomes LICENSE.
LICENSES_DIR = "licenses"


def excluded_files(answers: Mapping[str, str]) -> set[str]:
    """The template paths (with ``{package}``) that the answers leave out."""
    excluded = set(WSGI_FILES if answers["server"] == "asgi-uvicorn" else ASGI_FILES)
    if answers["broker"] == "memory":
        excluded.update(REDIS_FILES)
    if answers["use_docker"] == "n":
        excluded.update(DOCKER_FILES)
    if answers["ci"] == "none":
        excluded.update(GITHUB_FILES)
    return excluded


def remove_paths(project_dir: Path, paths: Iterable[str], package: str) -> None:
    """Delete each file or folder in ``paths``; a missing one is an error."""
    for pattern in sorted(paths):
        path = project_dir / pattern.format(package=package)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def prune(project_dir: Path, answers: Mapping[str, str]) -> None:
    """Remove every file the answers exclude from ``project_dir``."""
    remove_paths(project_dir, excluded_files(answers), answers["package_name"])


def install_license(project_dir: Path, license_id: str) -> None:
    """Keep the chosen license's text as LICENSE (none if proprietary), drop the rest."""
    texts = project_dir / LICENSES_DIR
    if license_id != "Proprietary":
        (texts / license_id).rename(project_dir / "LICENSE")
    shutil.rmtree(texts)


def main() -> None:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    prune(Path.cwd(), answers)
    install_license(Path.cwd(), answers["license"])


if __name__ == "__main__":
    main()
