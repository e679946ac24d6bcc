"""How a process notices what it missed of a room, and resumes it (no I/O, no Redis).

``test_scale_out.py`` checks the same against real servers and a real Redis.
"""

from __future__ import annotations

import json

import pytest

from {{ cookiecutter.package_name }}.protocol import (
    Position,
    fill,
    joined_parts,
    joined_values,
    message_parts,
    position_values,
)
from {{ cookiecutter.package_name }}.redis_positions import Positions, position_of
from {{ cookiecutter.package_name }}.rooms import Publish, Recount
from tests.test_redis_pubsub import Process


def message(offset: int, epoch: str = "e1", text: str = "t") -> str:
    return fill(message_parts("r", "someone", text, 0), position_values(Position(epoch, offset)))


def joined(offset: int, resuming: bool = False) -> str:
    return fill(joined_parts("r", resuming), joined_values(1, Position("e1", offset), True, 0))


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (message(7), Position("e1", 7)),
        (message(7, text='"epoch":"zz","offset":9'), Position("e1", 7)),  # in a text: escaped
        (joined(12), Position("e1", 12)),
        (joined(12, resuming=True), Position("e1", 12)),
        (fill(joined_parts("r", False), joined_values(1, None)), None),
        ('{"type":"presence","room":"r","id":"x","event":"join","members":2}', None),
    ],
)
def test_the_position_of_a_frame(frame: str, expected: Position | None) -> None:
    assert position_of(frame) == expected


def test_messages_in_order_go_through_and_a_jump_resumes_the_room_once() -> None:
    positions = Positions("p1")
    assert positions.arrived(Publish("r", joined(0), only="member")) == (
        Publish("r", joined(0), only="member"),
        None,
    )
    assert positions.arrived(Publish("r", message(1)))[0] is not None
    dropped, resume = positions.arrived(Publish("r", message(3)))
    assert dropped is None  # the replay brings it, after the ones missed
    assert resume is not None
    assert (resume.only, resume.since) == ("@p1", Position("e1", 1))
    assert positions.arrived(Publish("r", message(4))) == (None, None)  # resuming
    answer = fill(joined_parts("r", True), joined_values(2, Position("e1", 4), True, 3))
    assert positions.arrived(Publish("r", answer, only="@p1")) == (Publish("r", answer), None)
    assert positions.arrived(Publish("r", message(2), only="@p1")) == (
        Publish("r", message(2)),
        None,
    )  # the replay, to every member here
    assert positions.arrived(Publish("r", message(5)))[1] is None  # in order again
    assert positions.gaps == 1


def test_what_names_another_process_is_not_for_this_one() -> None:
    positions = Positions("p1")
    assert positions.arrived(Publish("r", joined(0), only="@p2")) == (None, None)
    assert positions.arrived(Publish("r", joined(0), skip="@p1")) == (None, None)
    assert positions.arrived(Publish("r", joined(0), skip="@p2")) == (Publish("r", joined(0)), None)


def test_a_joined_ahead_of_what_this_process_saw_is_delivered_and_resumes() -> None:
    positions = Positions("p1")
    positions.arrived(Publish("r", message(1)))
    delivered, resume = positions.arrived(Publish("r", joined(3), only="newcomer"))
    assert delivered == Publish("r", joined(3), only="newcomer")
    assert resume is not None


def test_a_new_epoch_is_not_a_gap() -> None:
    positions = Positions("p1")
    positions.arrived(Publish("r", message(5)))
    assert positions.arrived(Publish("r", message(1, epoch="e2"))) == (
        Publish("r", message(1, epoch="e2")),
        None,
    )


def test_subscribing_again_resumes_every_room_from_what_this_process_saw() -> None:
    process = Process(others=1)
    alice, alice_box = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "lobby"))
    process.through_redis(process.say(alice, "lobby", "hi"))
    alice_box.take()
    (recount,) = process.subscriber.on_subscribed()
    assert isinstance(recount, Recount)
    here = process.subscriber.positions.here
    assert [(a.skip, a.only, a.since) for a in recount.announcements] == [
        (here, None, None),  # the count, to the members of every other process
        (None, here, Position("e1", 1)),  # the resume, to those here
    ]
    assert "lobby" in process.subscriber.positions.resuming
    resume = json.loads(fill(recount.announcements[1].parts, joined_values(2, None)))
    assert (resume["type"], resume["recovered"]) == ("joined", False)
