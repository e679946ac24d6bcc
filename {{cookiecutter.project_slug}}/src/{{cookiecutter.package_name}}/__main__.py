"""Run the server: ``python -m {{ cookiecutter.package_name }}``, settings from the environment."""

import sys

import uvicorn

from .config import ConfigError, Settings


def main() -> None:
    """Validate the settings, then serve the ASGI app with uvicorn."""
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        sys.exit(f"ERROR: {error}")
    uvicorn.run(
        "{{ cookiecutter.package_name }}.asgi:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        workers=settings.workers,
    )


if __name__ == "__main__":
    main()
