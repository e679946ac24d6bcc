"""The message envelope: parsing, validation and encoding (pure, no server)."""

import json

import pytest

from {{ cookiecutter.package_name }} import protocol
from {{ cookiecutter.package_name }}.protocol import (
    AppEvent,
    Join,
    Leave,
    Ping,
    Position,
    ProtocolError,
    Say,
)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"join","room":"lobby"}', Join("lobby")),
        ('{"type":"leave","room":"lobby"}', Leave("lobby")),
        ('{"type":"message","room":"a.b:c-d_e","text":"hi"}', Say("a.b:c-d_e", "hi")),
        ('{"type":"message","room":"cafe","text":"ünï ✓"}', Say("cafe", "ünï ✓")),
        ('{"type":"message","room":"r","text":"hi","id":"a-1_B"}', Say("r", "hi", "a-1_B")),
        (
            '{"type":"message","room":"r","event":"cursor.move","data":{"x":[1,2.5,null]}}',
            Say("r", None, None, AppEvent("cursor.move", {"x": [1, 2.5, None]})),
        ),
        ('{"type":"message","room":"r","event":"p-1"}', Say("r", None, None, AppEvent("p-1"))),
        (
            '{"type":"message","room":"r","text":"t","event":"e:f","data":"ünï","from":"forged"}',
            Say("r", "t", None, AppEvent("e:f", "ünï")),
        ),
        (
            '{"type":"join","room":"r","since":{"epoch":"ab12","offset":0}}',
            Join("r", Position("ab12", 0)),
        ),
        (
            '{"type":"join","room":"r","since":{"epoch":"ab12","offset":9007199254740991}}',
            Join("r", Position("ab12", 2**53 - 1)),
        ),
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
        ('{"type":"message","room":"r","text":"t","id":""}', "invalid_id"),
        ('{"type":"message","room":"r","text":"t","id":7}', "invalid_id"),
        ('{"type":"message","room":"r","text":"t","id":"a b"}', "invalid_id"),
        (json.dumps({"type": "message", "room": "r", "text": "t", "id": "i" * 65}), "invalid_id"),
        ('{"type":"message","room":"r","data":1}', "invalid_event"),  # data needs an event
        ('{"type":"message","room":"r","event":""}', "invalid_event"),
        ('{"type":"message","room":"r","event":"1st"}', "invalid_event"),
        ('{"type":"message","room":"r","event":"a b"}', "invalid_event"),
        ('{"type":"message","room":"r","event":7}', "invalid_event"),
        (json.dumps({"type": "message", "room": "r", "event": "e" * 65}), "invalid_event"),
        ('{"type":"message","room":"r","event":"e","data":NaN}', "invalid_event"),
        ('{"type":"message","room":"r","event":"e","data":[-Infinity]}', "invalid_event"),
        ('{"type":"message","room":"r","event":"e","data":"\\ud800"}', "invalid_event"),
        ('{"type":"message","room":"r","event":"e","data":{"\\udfff":1}}', "invalid_event"),
        (
            '{"type":"message","room":"r","event":"e","data":' + "[" * 33 + "]" * 33 + "}",
            "invalid_event",
        ),
        ('{"type":"join","room":"r","since":null}', "invalid_since"),
        ('{"type":"join","room":"r","since":{"epoch":"ab12"}}', "invalid_since"),
        ('{"type":"join","room":"r","since":{"epoch":"","offset":1}}', "invalid_since"),
        ('{"type":"join","room":"r","since":{"epoch":"a-b","offset":1}}', "invalid_since"),
        ('{"type":"join","room":"r","since":{"epoch":"ab","offset":-1}}', "invalid_since"),
        ('{"type":"join","room":"r","since":{"epoch":"ab","offset":1.5}}', "invalid_since"),
        ('{"type":"join","room":"r","since":{"epoch":"ab","offset":true}}', "invalid_since"),
        (
            '{"type":"join","room":"r","since":{"epoch":"ab","offset":9007199254740992}}',
            "invalid_since",
        ),
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
    parts = protocol.message_parts("r", "abc", "ünï", 1700000000000)
    message = protocol.fill(parts, protocol.position_values(Position("e1", 7)))
    assert json.loads(message) == {
        "type": "message",
        "room": "r",
        "from": "abc",
        "text": "ünï",
        "ts": 1700000000000,
        "epoch": "e1",
        "offset": 7,
    }
    assert message.startswith('{"type":"message","room":"r","from":"abc","text":"ünï",')
    assert json.loads(protocol.PONG) == {"type": "pong"}
    assert json.loads(protocol.error("not_joined", "nope")) == {
        "type": "error",
        "code": "not_joined",
        "detail": "nope",
    }


def test_a_joined_is_filled_with_count_and_position_and_for_a_resume_the_outcome() -> None:
    plain = protocol.joined_parts("r", resuming=False)
    values = protocol.joined_values(3, Position("e1", 12), recovered=True, missed=2)
    assert json.loads(protocol.fill(plain, values)) == {
        "type": "joined",
        "room": "r",
        "members": 3,
        "epoch": "e1",
        "offset": 12,
    }
    resuming = protocol.joined_parts("r", resuming=True)
    assert json.loads(protocol.fill(resuming, values)) == {
        "type": "joined",
        "room": "r",
        "members": 3,
        "epoch": "e1",
        "offset": 12,
        "recovered": True,
        "missed": 2,
    }
    unknown = protocol.joined_values(1, None)
    assert json.loads(protocol.fill(resuming, unknown)) == {
        "type": "joined",
        "room": "r",
        "members": 1,
        "epoch": None,
        "offset": None,
        "recovered": False,
        "missed": 0,
    }


def test_a_presence_takes_the_count_alone() -> None:
    parts = protocol.presence_parts("r", "who", "join")
    values = protocol.joined_values(4, Position("e1", 1))
    assert json.loads(protocol.fill(parts, values)) == {
        "type": "presence",
        "room": "r",
        "id": "who",
        "event": "join",
        "members": 4,
    }


def test_acks_and_refusals_name_the_message() -> None:
    assert json.loads(protocol.ack("r", "m1", Position("e1", 5))) == {
        "type": "ack",
        "room": "r",
        "id": "m1",
        "epoch": "e1",
        "offset": 5,
    }
    refusal = json.loads(protocol.error("unavailable", protocol.UNAVAILABLE, "r", "m1"))
    assert refusal["id"] == "m1"
    assert refusal["code"] in protocol.ERROR_CODES
