"""Positions, history, resume and acks in process memory (``history.py``, ``broker=memory``'s).

Driven through the hub and the in-memory broker, no server, no I/O; the live tests
(``test_resume.py``) ask the same of a real server, with the project's broker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.history import (
    POSITION_TTL,
    RECENT_IDS,
    Histories,
    Retention,
    recover,
)
from {{ cookiecutter.package_name }}.protocol import Position
from {{ cookiecutter.package_name }}.rooms import Hub
from tests.test_rooms import Harness, RecordingOutbox, send


class Room:
    """A sender and a reader in one room of a hub with the in-memory broker."""

    def __init__(self, size: int = 5, ttl: float = 60.0) -> None:
        self.harness = Harness(Hub(rate_limit=1e6, rate_burst=1_000_000), Retention(size, ttl))
        self.sender, self.sender_box = self.harness.connect()
        send(self.harness, self.sender, type="join", room="r")
        self.joined = self.sender_box.take_positioned()[-1]

    def say(self, *texts: str) -> None:
        for text in texts:
            send(self.harness, self.sender, type="message", room="r", text=text)

    def rejoin(self, since: dict[str, Any] | None) -> list[dict[str, Any]]:
        """A new connection joins ``r`` from ``since``: every event it gets."""
        reader, box = self.harness.connect()
        box.take()
        join: dict[str, Any] = {"type": "join", "room": "r"}
        if since is not None:
            join["since"] = since
        send(self.harness, reader, **join)
        return box.take_positioned()


def position(event: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": event["epoch"], "offset": event["offset"]}


def test_messages_get_offsets_one_by_one_under_the_rooms_epoch() -> None:
    room = Room()
    assert room.joined["offset"] == 0
    room.say("a", "b", "c")
    events = room.sender_box.take_positioned()
    assert [e["offset"] for e in events] == [1, 2, 3]
    assert {e["epoch"] for e in events} == {room.joined["epoch"]}


@pytest.mark.parametrize(
    ("case", "since", "recovered", "texts"),
    [
        ("resume from a position", "after 2", True, ["m3", "m4"]),
        ("resume from the newest position", "after 4", True, []),
        ("resume from before the first message", "after 0", True, ["m1", "m2", "m3", "m4"]),
        ("epoch changed", "other epoch", False, []),
        ("position ahead of the room", "after 9", False, []),
    ],
)
def test_a_resume_gets_all_it_missed_or_is_told_it_cannot(
    case: str, since: str, recovered: bool, texts: list[str]
) -> None:
    room = Room()
    room.say("m1", "m2", "m3", "m4")
    epoch = room.joined["epoch"]
    offset = int(since.split()[-1]) if since.startswith("after") else 2
    events = room.rejoin({"epoch": epoch if since != "other epoch" else "zz9", "offset": offset})
    joined, *replay = events
    assert joined["type"] == "joined", case
    assert (joined["recovered"], joined["missed"]) == (recovered, len(texts))
    assert position(joined) == {"epoch": epoch, "offset": 4}  # where the room is now
    assert [e["text"] for e in replay] == texts
    assert [e["offset"] for e in replay] == list(range(5 - len(texts), 5))


def test_a_position_trimmed_from_the_history_is_not_recovered_in_part() -> None:
    room = Room(size=3)
    room.say("m1", "m2", "m3", "m4", "m5")  # the history keeps m3, m4, m5
    epoch = room.joined["epoch"]
    joined, *replay = room.rejoin({"epoch": epoch, "offset": 1})  # m2 is gone
    assert (joined["recovered"], joined["missed"], replay) == (False, 0, [])
    joined, *replay = room.rejoin({"epoch": epoch, "offset": 2})  # m3 on: all there
    assert (joined["recovered"], [e["text"] for e in replay]) == (True, ["m3", "m4", "m5"])


def test_an_expired_history_is_not_recovered_and_the_position_goes_on() -> None:
    room = Room(ttl=60.0)
    room.say("m1", "m2")
    epoch = room.joined["epoch"]
    room.harness.now += 61
    joined, *replay = room.rejoin({"epoch": epoch, "offset": 1})
    assert (joined["recovered"], replay) == (False, [])
    assert position(joined) == {"epoch": epoch, "offset": 2}
    room.say("m3")
    assert room.sender_box.take_positioned()[-1]["offset"] == 3


def test_a_room_forgotten_altogether_starts_a_new_epoch() -> None:
    room = Room()
    room.say("m1")
    epoch = room.joined["epoch"]
    room.harness.now += POSITION_TTL + 1
    joined, *_ = room.rejoin({"epoch": epoch, "offset": 1})
    assert joined["recovered"] is False
    assert joined["epoch"] != epoch
    assert joined["offset"] == 0


def test_a_room_that_never_existed_recovers_nothing() -> None:
    harness = Harness(Hub())
    reader, box = harness.connect()
    send(harness, reader, type="join", room="new", since={"epoch": "abc1", "offset": 3})
    (joined,) = box.take_positioned()[1:]
    assert (joined["recovered"], joined["missed"], joined["offset"]) == (False, 0, 0)


def test_an_empty_history_resumed_from_its_start_recovers_nothing_missed() -> None:
    room = Room()
    joined, *replay = room.rejoin(position(room.joined))
    assert (joined["recovered"], joined["missed"], replay) == (True, 0, [])


def test_with_history_off_positions_are_given_and_only_nothing_missed_recovers() -> None:
    room = Room(size=0)
    room.say("m1", "m2")
    epoch = room.joined["epoch"]
    joined, *replay = room.rejoin({"epoch": epoch, "offset": 1})
    assert (joined["recovered"], replay) == (False, [])
    joined, *replay = room.rejoin({"epoch": epoch, "offset": 2})
    assert (joined["recovered"], replay) == (True, [])


def test_a_message_with_an_id_is_acked_and_a_resend_is_not_delivered_again() -> None:
    room = Room()
    reader, reader_box = room.harness.connect()
    send(room.harness, reader, type="join", room="r")
    room.sender_box.take()
    reader_box.take()
    for _ in range(2):
        send(room.harness, room.sender, type="message", room="r", text="once", id="m-1")
    events = room.sender_box.take_positioned()
    assert [e["type"] for e in events] == ["message", "ack", "ack"]
    message, first, second = events
    expected = {"type": "ack", "room": "r", "id": "m-1", **position(message)}
    assert first == second == expected
    assert [e["text"] for e in reader_box.take()] == ["once"]


def test_ids_are_remembered_per_room_for_a_bounded_number_of_messages() -> None:
    histories = Histories(Retention(10, 60.0), clock=lambda: 0.0)

    def post(room: str, message_id: str) -> tuple[Position, str | None]:
        return histories.post(room, lambda p: f"{p.offset}", message_id)

    assert post("a", "x")[1] == "1"
    assert post("b", "x")[1] == "1"  # another room: another message
    for number in range(RECENT_IDS):
        post("a", f"n{number}")
    assert post("a", "x")[1] is not None  # forgotten: delivered as a new message


@pytest.mark.parametrize(
    ("since", "top", "oldest", "expected"),
    [
        (Position("e", 3), 3, 1, (True, 1, 0)),  # nothing missed
        (Position("e", 1), 3, 2, (True, 2, 3)),  # the history starts right after
        (Position("e", 0), 3, 2, (False, 1, 0)),  # the first missed is gone
        (Position("e", 1), 3, None, (False, 1, 0)),  # nothing kept
        (Position("x", 1), 3, 1, (False, 1, 0)),  # another epoch
        (Position("e", 4), 3, 1, (False, 1, 0)),  # ahead of the room
    ],
)
def test_the_recovery_rule(
    since: Position, top: int, oldest: int | None, expected: tuple[bool, int, int]
) -> None:
    assert recover(since, "e", top, oldest) == expected


def test_a_replay_larger_than_an_outbox_closes_it_as_any_burst_does() -> None:
    """A replay larger than a reader's outbox closes it like any burst would (1008)."""
    room = Room(size=50)
    room.say(*(f"m{n}" for n in range(20)))
    harness = room.harness
    outbox = RecordingOutbox(capacity=5)
    reader, _ = harness.hub.connect(outbox)
    since = {"epoch": room.joined["epoch"], "offset": 0}
    harness.receive(reader, json.dumps({"type": "join", "room": "r", "since": since}))
    assert outbox.closed is not None
    assert outbox.closed[0] == 1008
