"""Run the server: ``python -m {{ cookiecutter.package_name }}``, settings from the environment."""

import sys

from . import uvicorn_server
from .config import ConfigError, Settings


def main() -> None:
    """Validate the settings, then serve the ASGI app with uvicorn."""
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        sys.exit(f"ERROR: {error}")
    uvicorn_server.run(settings)


if __name__ == "__main__":
    main()
