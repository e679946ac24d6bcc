"""Settings come from the environment and bad values are refused with a clear message."""

import pytest

from {{ cookiecutter.package_name }}.config import ConfigError, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings(
        host="127.0.0.1", port={{ cookiecutter.port }}, log_level="info", outbox_size=256, max_rooms=16
    )


def test_reads_the_environment() -> None:
    environ = {
        "HOST": "0.0.0.0",  # noqa: S104
        "PORT": "9001",
        "LOG_LEVEL": "DEBUG",
        "OUTBOX_SIZE": "32",
        "MAX_ROOMS": "3",
    }
    settings = Settings.from_env(environ)
    assert settings == Settings(
        host="0.0.0.0",  # noqa: S104
        port=9001,
        log_level="debug",
        outbox_size=32,
        max_rooms=3,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not valid: use a whole number from 1 to 65535"),
        ({"PORT": "0"}, "PORT='0' is not valid"),
        ({"PORT": "70000"}, "PORT='70000' is not valid"),
        ({"OUTBOX_SIZE": "0"}, "OUTBOX_SIZE='0' is not valid"),
        ({"MAX_ROOMS": "-2"}, "MAX_ROOMS='-2' is not valid"),
        ({"HOST": " "}, "HOST is empty"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not a level"),
    ],
)
def test_bad_values_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)
