"""What a Redis broker does while Redis cannot serve it, and once it can: no Redis, no I/O.

:class:`Process` drives the hub and the broker's bookkeeping as the brokers do:
:meth:`Process.alone` as while Redis is away, :meth:`Process.through_redis` as
once it serves again, doing what Redis would (fill in the room's total over every
process, publish every announcement) and taking the frames back through
:meth:`Subscriber.on_message`, as from the channel.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from {{ cookiecutter.package_name }}.broker import drive
from {{ cookiecutter.package_name }}.redis_pubsub import HELD_PRESENCES, Subscriber, encode_envelope
from {{ cookiecutter.package_name }}.rooms import Effect, Hub, Publish, Recount
from tests.test_rooms import RecordingOutbox


class Process:
    """One server process's hub and its broker's bookkeeping; ``others`` members of each
    room are in other processes."""

    def __init__(self, others: int = 0) -> None:
        self.others = others
        self.hub = Hub(rate_limit=1_000_000, rate_burst=1_000_000)
        self.subscriber = Subscriber(self.hub, "redis://127.0.0.1:6379/0", "test")

    def connect(self) -> tuple[str, RecordingOutbox]:
        outbox = RecordingOutbox()
        connection_id, effects = self.hub.connect(outbox)
        self.alone(effects)
        outbox.take()
        return connection_id, outbox

    def join(self, connection_id: str, room: str) -> list[Effect]:
        return self.hub.receive(connection_id, json.dumps({"type": "join", "room": room}))

    def alone(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` as a broker does while Redis cannot serve it."""
        drive(self.hub, effects, self.subscriber.carry_locally)

    def through_redis(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` as both brokers do once Redis serves them
        (:meth:`Subscriber.steps`), with :meth:`publish` in Redis's place."""
        steps = self.subscriber.steps(effects)
        with contextlib.suppress(StopIteration):
            command = next(steps)
            while True:
                self.publish(command)
                command = steps.send(None)

    def subscribe(self) -> None:
        """The listener is subscribed again; its effects run through Redis."""
        self.through_redis(self.subscriber.on_subscribed())

    def publish(self, effect: Publish | Recount) -> None:
        if isinstance(effect, Publish):
            frames = [effect]
        else:
            total = effect.local_members + self.others
            frames = [a.publish(effect.room, total) for a in effect.announcements]
        for frame in frames:
            self.alone(self.subscriber.on_message(encode_envelope(frame)))


def joined(room: str, members: int) -> dict[str, Any]:
    return {"type": "joined", "room": room, "members": members}


def presence(room: str, members: int, who: str, event: str) -> dict[str, Any]:
    return {"type": "presence", "room": room, "members": members, "id": who, "event": event}


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
    held = process.subscriber.next_held()
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

    held = process.subscriber.next_held()
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
