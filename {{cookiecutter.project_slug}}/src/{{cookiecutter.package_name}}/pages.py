"""The browser client: the page served at ``/`` and the files it loads."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""Served under ``/static/``: the client's script and stylesheet."""

INDEX_HTML = (STATIC_DIR / "index.html").read_bytes()
"""The client page served at ``/``."""
