"""What a Redis broker does with a batch, while Redis cannot serve it, and once it can: no I/O.

:class:`Process` drives the hub and the broker's bookkeeping as the brokers do:
:meth:`Process.alone` as while Redis is away, :meth:`Process.through_redis` as once
it serves, answering each round trip as Redis would: it fills in the room's total
over every process, and hands back the frames of the channels this process is
subscribed to, as its subscriber connections would.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from {{ cookiecutter.package_name }}.broker import drive
from {{ cookiecutter.package_name }}.history import Retention
from {{ cookiecutter.package_name }}.protocol import fill
from {{ cookiecutter.package_name }}.redis_alone import HELD_PRESENCES
from {{ cookiecutter.package_name }}.redis_io import Execute, Io, Subscribe, Unsubscribe
from {{ cookiecutter.package_name }}.redis_layout import SEPARATOR, Names
from {{ cookiecutter.package_name }}.redis_pubsub import Subscriber
from {{ cookiecutter.package_name }}.redis_scripts import POST_SHA, PUBLISH_SHA, RECOUNT_SHA
from {{ cookiecutter.package_name }}.rooms import Effect, Hub, Recount
from tests.test_rooms import RecordingOutbox

EPOCH = "e1"


class AtOnce:
    """A broker's queue that carries out what is submitted at once, in this process."""

    def __init__(self, process: Process) -> None:
        self.process = process

    def put_nowait(self, effects: list[Effect], /) -> None:
        self.process.alone(effects)

    def get_nowait(self) -> list[Effect]:
        raise AssertionError("nothing is ever queued")

    def empty(self) -> bool:
        return True


class Process:
    """One server process's hub and its broker's bookkeeping; ``others`` members of each
    room are in other processes."""

    def __init__(self, others: int = 0) -> None:
        self.others = others
        self.hub = Hub(rate_limit=1_000_000, rate_burst=1_000_000)
        flags = threading.Event(), threading.Event()
        url = "redis://127.0.0.1:6379/0"
        retention = Retention(100, 300.0)
        self.subscriber = Subscriber(self.hub, url, "test", retention, AtOnce(self), *flags)
        self.asked: list[Io] = []  # what the batches asked of Redis, in order
        self.failure: Exception | None = None  # what the next round trip fails with
        self.top: dict[str, int] = {}  # the newest offset of each room (by channel)

    def connect(self) -> tuple[str, RecordingOutbox]:
        outbox = RecordingOutbox()
        connection_id, effects = self.hub.connect(outbox)
        self.alone(effects)
        outbox.take()
        return connection_id, outbox

    def join(self, connection_id: str, room: str) -> list[Effect]:
        return self.hub.receive(connection_id, json.dumps({"type": "join", "room": room}))

    def say(
        self, connection_id: str, room: str, text: str, message_id: str | None = None
    ) -> list[Effect]:
        message = {"type": "message", "room": room, "text": text}
        if message_id is not None:
            message["id"] = message_id
        return self.hub.receive(connection_id, json.dumps(message))

    def alone(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` as a broker does while Redis cannot serve it."""
        drive(self.hub, effects, self.subscriber.alone.carry)

    def through_redis(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` as both brokers do (:meth:`Subscriber.work`), with
        :meth:`redis` in Redis's place."""
        steps = self.subscriber.work(effects)
        with contextlib.suppress(StopIteration):
            io = next(steps)
            while True:
                io = steps.send(self.redis(io))

    def subscribe(self) -> None:
        """The subscriber connections are new and subscribed: the broker's effects run
        through Redis."""
        self.redis(Subscribe(self.subscriber.wanted_channels()))
        self.through_redis(self.subscriber.on_subscribed())

    def redis(self, io: Io) -> object:
        self.asked.append(io)
        if isinstance(io, Subscribe | Unsubscribe):
            kind = "ssubscribe" if isinstance(io, Subscribe) else "sunsubscribe"
            for channel in io.channels:
                self.subscriber.on_pubsub({"type": kind, "channel": channel, "data": 1})
            return None
        if self.failure is not None:
            return self.failure
        replies = []
        for command in io.commands:
            frames, reply = self.run(command)
            replies.append(reply)
            for channel, data in frames:
                if channel in self.subscriber.channels:
                    frame = {"type": "smessage", "channel": channel, "data": data}
                    self.subscriber.on_pubsub(frame)
        return replies

    def run(self, command: tuple[str | int, ...]) -> tuple[list[tuple[str, str]], object]:
        """What ``command`` publishes, as its Lua script would (``redis_scripts.py``), and
        its reply; every room's history is at epoch ``EPOCH``, and keeps nothing."""
        words = [str(word) for word in command]
        if words[0] == "SPUBLISH":
            return [(words[1], words[2])], 1
        if words[1] == PUBLISH_SHA:
            return [(words[3], envelope) for envelope in words[5:]], len(words) - 5
        if words[1] == POST_SHA:
            channel, room, head = words[3], words[3], words[13]
            frames: list[tuple[str, str]] = []
            offsets: list[int] = []
            for _, *message in zip(*[iter(words[14:])] * 4, strict=True):
                self.top[room] = offset = self.top.get(room, 0) + 1
                frames.append((channel, head + fill(tuple(message), (f'"{EPOCH}"', str(offset)))))
                offsets.append(offset)
            return frames, [EPOCH, *offsets]
        channel, members, head = words[5], int(words[9]), words[12]
        total, top = members + self.others, self.top.get(channel, 0)
        frames, at = [], 15
        while at < len(words):
            skip, only, count = words[at], words[at + 1], int(words[at + 4])
            # Nothing is kept: a resume recovers only when nothing was missed.
            recovered = words[at + 2] == EPOCH and words[at + 3] == str(top)
            values = (str(total), f'"{EPOCH}"', str(top), str(recovered).lower(), "0")
            parts = tuple(words[at + 5 : at + 5 + count])
            envelope = f"{head}{skip}{SEPARATOR}{only}{SEPARATOR}"
            frames.append((channel, envelope + fill(parts, values)))
            at += 5 + count
        return frames, total


def joined(room: str, members: int) -> dict[str, Any]:
    return {"type": "joined", "room": room, "members": members}


def presence(room: str, members: int, who: str, event: str) -> dict[str, Any]:
    return {"type": "presence", "room": room, "members": members, "id": who, "event": event}


def test_a_first_join_subscribes_before_it_goes_out_and_a_last_leave_lets_go_after() -> None:
    process = Process()
    alice, alice_box = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "lobby"))
    channel = Names("test").channel("lobby")
    subscribe, execute = process.asked[-2:]
    assert subscribe == Subscribe((channel,))
    assert isinstance(execute, Execute)
    assert execute.commands[0][0] == "EVALSHA"
    assert alice_box.take() == [joined("lobby", 1)]  # came back through the subscription

    process.through_redis(process.hub.receive(alice, '{"type": "leave", "room": "lobby"}'))
    assert isinstance(process.asked[-2], Execute)
    assert process.asked[-1] == Unsubscribe((channel,))
    assert channel not in process.subscriber.channels


def test_a_batch_goes_to_redis_in_one_round_trip_in_its_order() -> None:
    process = Process()
    alice, alice_box = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "lobby"))
    alice_box.take()
    asked = len(process.asked)
    effects = [e for n in range(20) for e in process.say(alice, "lobby", str(n))]
    process.through_redis(effects)
    assert len(process.asked) == asked + 1  # already subscribed: one Execute, nothing else
    execute = process.asked[-1]
    assert isinstance(execute, Execute)
    (command,) = execute.commands  # one room's messages: one command
    assert command[:2] == ("EVALSHA", POST_SHA)
    assert [event["text"] for event in alice_box.take()] == [str(n) for n in range(20)]


def test_a_rooms_publishes_keep_their_place_around_its_recounts() -> None:
    process = Process()
    alice, alice_box = process.connect()
    bob, bob_box = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "a") + process.join(bob, "b"))
    process.through_redis(process.join(alice, "b"))
    alice_box.take()
    bob_box.take()
    effects = [
        *process.say(alice, "a", "a1"),
        *process.say(alice, "b", "b1"),
        *process.say(alice, "a", "a2"),
        *process.hub.receive(bob, '{"type": "leave", "room": "b"}'),
        *process.say(alice, "b", "b2"),
    ]
    process.through_redis(effects)
    execute = next(io for io in reversed(process.asked) if isinstance(io, Execute))
    words = [(c[1], c[3]) for c in execute.commands]
    channel = Names("test").channel
    # a1 and a2 in one command; b1, then b's recount, then b2.
    assert words == [
        (POST_SHA, channel("a")),
        (POST_SHA, channel("b")),
        (RECOUNT_SHA, Names("test").members("b")),
        (POST_SHA, channel("b")),
    ]
    texts = [event.get("text") for event in alice_box.take() if event["type"] == "message"]
    assert texts == ["a1", "a2", "b1", "b2"]


def test_frames_of_a_room_without_members_here_are_not_subscribed_to() -> None:
    process = Process(others=1)
    alice, _ = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "here"))
    assert process.subscriber.channels == {Names("test").channel("here")}
    received = process.subscriber.frames_received
    process.redis(Execute((("SPUBLISH", Names("test").channel("elsewhere"), "x"),)))
    assert process.subscriber.frames_received == received


def test_redis_ending_a_subscription_unasked_is_a_lost_connection() -> None:
    """A cluster moving a room's slot to another node ends the subscription there."""
    process = Process()
    alice, _ = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "moved"))
    channel = Names("test").channel("moved")
    with pytest.raises(RedisConnectionError):
        process.subscriber.on_pubsub({"type": "sunsubscribe", "channel": channel, "data": 0})


def test_a_failed_round_trip_is_carried_out_here_alone() -> None:
    process = Process(others=1)
    alice, alice_box = process.connect()
    bob, bob_box = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "lobby"))
    alice_box.take()
    process.failure = RedisConnectionError("Redis went away")
    process.through_redis(process.join(bob, "lobby") + process.say(alice, "lobby", "hi", "m1"))
    # bob's join completes with this process's count and no position; the message,
    # which could get no place in the room's history, is refused out loud.
    assert bob_box.take_positioned() == [
        {"type": "joined", "room": "lobby", "members": 2, "epoch": None, "offset": None}
    ]
    (refusal,) = alice_box.take()
    assert (refusal["type"], refusal["code"], refusal["id"]) == ("error", "unavailable", "m1")
    held = process.subscriber.alone.oldest()
    assert isinstance(held, Recount)
    assert [a.skip for a in held.announcements] == [bob, None]  # bob's presence, then the total


def test_joins_served_alone_get_a_joined_and_no_presence_with_a_local_count() -> None:
    process = Process()
    alice, alice_box = process.connect()
    bob, bob_box = process.connect()
    process.alone(process.join(alice, "lobby"))
    process.alone(process.join(bob, "lobby"))
    assert alice_box.take() == [joined("lobby", 1)]
    assert bob_box.take() == [joined("lobby", 2)]


def test_once_subscribed_the_held_presences_and_the_real_count_reach_everyone() -> None:
    """The order a restart leaves to chance: members joined before the subscription."""
    process = Process(others=3)
    alice, alice_box = process.connect()
    bob, bob_box = process.connect()
    process.alone(process.join(alice, "lobby"))
    process.alone(process.join(bob, "lobby"))
    alice_box.take()
    bob_box.take()

    process.subscribe()
    assert alice_box.take() == [presence("lobby", 5, bob, "join"), joined("lobby", 5)]
    assert bob_box.take() == [presence("lobby", 5, alice, "join"), joined("lobby", 5)]
    process.subscribe()  # again (Redis restarted): nothing held any more, counts told again
    assert alice_box.take() == [joined("lobby", 5)]


def test_a_departure_served_alone_is_announced_once_redis_serves_again() -> None:
    process = Process(others=1)
    alice, alice_box = process.connect()
    bob, _ = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "lobby"))
    process.through_redis(process.join(bob, "lobby"))
    alice_box.take()

    process.alone(process.hub.disconnect(bob))
    assert alice_box.take() == []  # held: alice's count would be this process's alone
    process.subscribe()
    assert alice_box.take() == [presence("lobby", 2, bob, "leave"), joined("lobby", 2)]


def test_what_was_held_goes_out_before_effects_made_meanwhile() -> None:
    """A failed command while subscribed: the held join, then the leave made after it."""
    process = Process()
    alice, alice_box = process.connect()
    bob, _ = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "lobby"))
    alice_box.take()

    process.alone(process.join(bob, "lobby"))  # a recount that failed: carried out here
    process.through_redis(process.hub.disconnect(bob))  # the next effect, through Redis
    # The held ones carry the count of when they are sent: bob has gone by then.
    assert alice_box.take() == [
        presence("lobby", 1, bob, "join"),
        joined("lobby", 1),
        presence("lobby", 1, bob, "leave"),
    ]


def test_a_room_left_by_every_member_here_still_gets_its_departures_announced() -> None:
    process = Process(others=2)
    alice, _ = process.connect()
    process.subscribe()
    process.through_redis(process.join(alice, "lobby"))
    process.alone(process.hub.disconnect(alice))
    held = process.subscriber.alone.oldest()
    assert isinstance(held, Recount)
    assert (held.room, held.local_members) == ("lobby", 0)  # this process's share goes
    assert [a.skip for a in held.announcements] == [alice, None]  # the leave, then the total


def test_held_presences_are_bounded_and_the_count_still_comes_through() -> None:
    process = Process()
    watcher, watcher_box = process.connect()
    process.subscribe()
    process.through_redis(process.join(watcher, "busy"))
    watcher_box.take()
    for _ in range(HELD_PRESENCES):  # a join and a leave each
        member, _ = process.connect()
        process.alone(process.join(member, "busy"))
        process.alone(process.hub.disconnect(member))

    held = process.subscriber.alone.oldest()
    assert isinstance(held, Recount)
    assert len(held.announcements) == HELD_PRESENCES + 1  # the newest, and the joined
    process.subscribe()
    events = watcher_box.take()
    assert len(events) == HELD_PRESENCES + 1
    assert events[-1] == joined("busy", 1)


def test_a_join_whose_joined_was_lost_gets_it_once_subscribed_again() -> None:
    process = Process()
    alice, alice_box = process.connect()
    process.subscribe()
    process.join(alice, "lobby")  # published, and its joined lost with the connection
    process.subscribe()
    assert alice_box.take() == [joined("lobby", 1)]
