"""Settings come from the environment and bad values are refused with a clear message."""

import pytest

from {{ cookiecutter.package_name }}.config import ConfigError, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings(host="127.0.0.1", port={{ cookiecutter.port }}, log_level="info")


def test_reads_the_environment() -> None:
    settings = Settings.from_env({"HOST": "0.0.0.0", "PORT": "9001", "LOG_LEVEL": "DEBUG"})  # noqa: S104
    assert settings == Settings(host="0.0.0.0", port=9001, log_level="debug")  # noqa: S104


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not a port"),
        ({"PORT": "0"}, "PORT='0' is not a port"),
        ({"PORT": "70000"}, "PORT='70000' is not a port"),
        ({"HOST": " "}, "HOST is empty"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not a level"),
    ],
)
def test_bad_values_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)
