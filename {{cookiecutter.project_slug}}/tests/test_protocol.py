"""The message envelope: parsing, validation and encoding (pure, no server)."""

import json

import pytest

from {{ cookiecutter.package_name }} import protocol
from {{ cookiecutter.package_name }}.protocol import Join, Leave, Ping, ProtocolError, Say


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"join","room":"lobby"}', Join("lobby")),
        ('{"type":"leave","room":"lobby"}', Leave("lobby")),
        ('{"type":"message","room":"a.b:c-d_e","text":"hi"}', Say("a.b:c-d_e", "hi")),
        ('{"type":"message","room":"cafe","text":"ünï ✓"}', Say("cafe", "ünï ✓")),
        ('{"type":"ping"}', Ping()),
        ('{"type":"ping","extra":[1,2]}', Ping()),
        (json.dumps({"type": "join", "room": "r" * protocol.MAX_ROOM_LENGTH}), Join("r" * 64)),
        (
            json.dumps({"type": "message", "room": "r", "text": "t" * protocol.MAX_TEXT_LENGTH}),
            Say("r", "t" * protocol.MAX_TEXT_LENGTH),
        ),
    ],
)
def test_parses_valid_messages(frame: str, expected: protocol.ClientMessage) -> None:
    assert protocol.parse(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("", "invalid_json"),
        ("[" * 100_000, "invalid_json"),  # nested past the recursion limit
        ('{"type":"ping","n":' + "9" * 10_000 + "}", "invalid_json"),  # past int's digit limit
        ('{"type":"message","room":"r","text":"\\ud800"}', "invalid_text"),  # a lone surrogate
        ('{"type":"message","room":"r","text":"a\\udfffb"}', "invalid_text"),
        ("{", "invalid_json"),
        ("not json", "invalid_json"),
        ("[]", "invalid_message"),
        ('"join"', "invalid_message"),
        ("{}", "invalid_message"),
        ('{"type":7}', "invalid_message"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"join"}', "invalid_room"),
        ('{"type":"join","room":""}', "invalid_room"),
        ('{"type":"join","room":5}', "invalid_room"),
        ('{"type":"join","room":"two words"}', "invalid_room"),
        ('{"type":"join","room":"a/b"}', "invalid_room"),
        ('{"type":"join","room":"café"}', "invalid_room"),
        (json.dumps({"type": "join", "room": "r" * 65}), "invalid_room"),
        ('{"type":"leave","room":null}', "invalid_room"),
        ('{"type":"message","room":"r"}', "invalid_text"),
        ('{"type":"message","room":"r","text":""}', "invalid_text"),
        ('{"type":"message","room":"r","text":["x"]}', "invalid_text"),
        (json.dumps({"type": "message", "room": "r", "text": "t" * 4097}), "invalid_text"),
    ],
)
def test_refuses_invalid_messages(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.parse(frame)
    assert caught.value.code == code
    assert caught.value.code in protocol.ERROR_CODES
    assert caught.value.detail


def test_unknown_type_detail_is_bounded() -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.parse(json.dumps({"type": "x" * 10_000}))
    assert len(caught.value.detail) < 100


def test_events_encode_as_compact_json() -> None:
    assert protocol.welcome("abc") == '{"type":"welcome","id":"abc"}'
    assert json.loads(protocol.message("r", "abc", "ünï", 1700000000000)) == {
        "type": "message",
        "room": "r",
        "from": "abc",
        "text": "ünï",
        "ts": 1700000000000,
    }
    assert json.loads(protocol.PONG) == {"type": "pong"}
    assert json.loads(protocol.error("not_joined", "nope")) == {
        "type": "error",
        "code": "not_joined",
        "detail": "nope",
    }
