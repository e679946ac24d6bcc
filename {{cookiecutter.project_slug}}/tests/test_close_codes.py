"""The close codes, checked against the ``websockets`` library's own table."""

from __future__ import annotations

import pytest
from websockets.frames import EXTERNAL_CLOSE_CODES
from websockets.frames import CloseCode as WebsocketsCloseCode

from {{ cookiecutter.package_name }}.close_codes import CloseCode, may_be_sent_by_peer


@pytest.mark.parametrize("code", list(CloseCode))
def test_each_code_has_the_value_and_name_websockets_gives_it(code: CloseCode) -> None:
    assert WebsocketsCloseCode(code.value).name == code.name


def test_a_peer_may_send_what_websockets_accepts_from_one() -> None:
    accepted = {code for code in range(6000) if code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000}
    assert {code for code in range(6000) if may_be_sent_by_peer(code)} == accepted
