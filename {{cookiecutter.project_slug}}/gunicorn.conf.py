"""Gunicorn settings: ``gunicorn --config gunicorn.conf.py``.

Values come from the same environment variables as the app (see
``{{ cookiecutter.package_name }}.config``), validated before any worker starts.
"""

import sys

from {{ cookiecutter.package_name }}.config import ConfigError, Settings

try:
    settings = Settings.from_env()
except ConfigError as error:
    sys.exit(f"ERROR: {error}")

wsgi_app = "{{ cookiecutter.package_name }}.wsgi:app"
# gevent-websocket's worker (geventwebsocket.gunicorn.workers.GeventWebSocketWorker)
# with its handshake, limits and shutdown fixed; without it gunicorn answers
# websocket upgrades with 405. The worker monkey-patches before it imports the
# app, so never add --preload.
worker_class = "{{ cookiecutter.package_name }}.gunicorn_worker.Worker"
workers = settings.workers
# Concurrent connections per worker. gunicorn's default of 1,000 is low for
# websockets, and a connection past it hangs in its handshake: leave room above
# MAX_CONNECTIONS for plain HTTP requests, so the app's cap (1013) is what bites.
worker_connections = settings.max_connections + 1_000
# SIGTERM: websockets get 1001 at once; requests still in flight get this long.
graceful_timeout = settings.drain_timeout
_host = f"[{settings.host}]" if ":" in settings.host else settings.host  # IPv6 literal
bind = f"{_host}:{settings.port}"
loglevel = settings.log_level
accesslog = "-"
# The control socket defaults to one path per user, which every gunicorn on
# the host would share; this app does not use it.
control_socket_disable = True
