"""Positions, resume and acks against a real server, with the project's broker ({{ cookiecutter.broker }}).

The recovery cases as a table: each joins a room again with the position a client
kept, and gets every message it missed, in order, before anything live, or
``recovered: false`` and nothing. ``test_history.py`` checks the same rules
without a server.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from tests.support.live_server import Server, ServerWith
from tests.support.ws_client import RoomsClient


def fresh_room() -> str:
    return f"resume-{secrets.token_hex(4)}"


def send_all(client: RoomsClient, room: str, texts: list[str]) -> list[dict[str, Any]]:
    """Send ``texts`` with ids and return their acks, once each has come back."""
    for number, text in enumerate(texts):
        client.send(type="message", room=room, text=text, id=f"{room}-{number}")
    acks: list[dict[str, Any]] = []
    while len(acks) < len(texts):
        event = client.receive()
        if event["type"] == "ack":
            acks.append(event)
    return acks


def resume(server: Server, room: str, since: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Join ``room`` from ``since`` on a new connection: its ``joined`` and the texts
    that follow it, up to a message sent afterwards (which must come after them)."""
    live = f"live {secrets.token_hex(4)}"
    with RoomsClient(server.ws_url) as reader:
        reader.send(type="join", room=room, since=since)
        joined = reader.expect("joined")
        reader.send(type="message", room=room, text=live, id=secrets.token_hex(4))
        texts: list[str] = []
        while True:
            event = reader.receive()
            if event["type"] == "message":
                if event["text"] == live:
                    return joined, texts
                texts.append(event["text"])
            else:
                assert event["type"] == "ack", event


@pytest.mark.parametrize(
    ("case", "since_offset", "epoch", "recovered", "texts"),
    [
        ("resume from a position", 2, "same", True, ["m3", "m4"]),
        ("resume from the newest position", 4, "same", True, []),
        ("resume from the room's start", 0, "same", True, ["m1", "m2", "m3", "m4"]),
        ("epoch changed", 2, "other", False, []),
        ("position ahead of the room", 9, "same", False, []),
    ],
)
def test_a_resume_gets_all_it_missed_before_anything_live_or_nothing(
    server: Server, case: str, since_offset: int, epoch: str, recovered: bool, texts: list[str]
) -> None:
    room = fresh_room()
    with RoomsClient(server.ws_url) as sender:
        first = sender.join(room)
        acks = send_all(sender, room, ["m1", "m2", "m3", "m4"])
    assert [ack["offset"] for ack in acks] == [1, 2, 3, 4]
    assert {ack["epoch"] for ack in acks} == {first["epoch"]}
    since = {"epoch": first["epoch"] if epoch == "same" else "other9", "offset": since_offset}
    joined, replayed = resume(server, room, since)
    assert (joined["recovered"], joined["missed"], replayed) == (recovered, len(texts), texts), case
    assert (joined["epoch"], joined["offset"]) == (first["epoch"], 4)


def test_an_empty_history_resumed_from_its_start_misses_nothing(server: Server) -> None:
    room = fresh_room()
    with RoomsClient(server.ws_url) as sender:
        first = sender.join(room)
    joined, replayed = resume(server, room, {"epoch": first["epoch"], "offset": 0})
    assert (joined["recovered"], joined["missed"], replayed) == (True, 0, [])


def test_a_room_that_never_existed_recovers_nothing(server: Server) -> None:
    joined, replayed = resume(server, fresh_room(), {"epoch": "abc1", "offset": 3})
    assert (joined["recovered"], joined["missed"], joined["offset"], replayed) == (False, 0, 0, [])


def test_a_message_sent_again_with_its_id_is_acked_again_and_delivered_once(
    server: Server,
) -> None:
    room = fresh_room()
    with RoomsClient(server.ws_url) as sender, RoomsClient(server.ws_url) as reader:
        sender.join(room)
        reader.join(room)
        sender.expect("presence")
        for _ in range(3):
            sender.send(type="message", room=room, text="once", id="same-id")
        events = [sender.receive() for _ in range(4)]
        assert sorted(event["type"] for event in events) == ["ack", "ack", "ack", "message"]
        assert len({(e["epoch"], e["offset"]) for e in events}) == 1
        sender.send(type="message", room=room, text="next", id="other-id")
        assert [reader.expect("message")["text"] for _ in range(2)] == ["once", "next"]


@pytest.mark.slow
def test_a_position_trimmed_from_the_history_is_not_recovered_in_part(
    server_with: ServerWith,
) -> None:
    server = server_with({"HISTORY_SIZE": "3"})
    room = fresh_room()
    with RoomsClient(server.ws_url) as sender:
        first = sender.join(room)
        send_all(sender, room, ["m1", "m2", "m3", "m4", "m5"])
    epoch = first["epoch"]
    joined, replayed = resume(server, room, {"epoch": epoch, "offset": 1})
    assert (joined["recovered"], joined["missed"], replayed) == (False, 0, [])
    joined, replayed = resume(server, room, {"epoch": epoch, "offset": 3})
    assert joined["recovered"] is True
    assert replayed[:2] == ["m4", "m5"]
    assert [text.split()[0] for text in replayed[2:]] == ["live"]  # the first resume's


@pytest.mark.slow
def test_an_expired_history_is_not_recovered(server_with: ServerWith) -> None:
    server = server_with({"HISTORY_TTL": "1"})
    room = fresh_room()
    with RoomsClient(server.ws_url) as sender:
        first = sender.join(room)
        send_all(sender, room, ["m1", "m2"])
    time.sleep(1.5)
    joined, replayed = resume(server, room, {"epoch": first["epoch"], "offset": 1})
    assert (joined["recovered"], replayed) == (False, [])
    assert (joined["epoch"], joined["offset"]) == (first["epoch"], 2)  # the position goes on
