"""What a Redis broker does while it is not subscribed, and once it is: no Redis, no I/O.

The effects are driven by hand in the order a broker would carry them out; what
Redis would do with a recount (fill in the room's total over every process and
publish each announcement) is done by :func:`publish_as_redis_would`, and the
frames come back through :meth:`Subscriber.on_message`, as from the channel.
"""

from __future__ import annotations

import json
from typing import Any

from test_rooms import RecordingOutbox

from {{ cookiecutter.package_name }}.broker import run
from {{ cookiecutter.package_name }}.pubsub import HELD_PRESENCES, Subscriber, encode_envelope
from {{ cookiecutter.package_name }}.rooms import Effect, Hub, Recount


class Process:
    """One server process's hub and its broker's bookkeeping, with Redis out of reach."""

    def __init__(self) -> None:
        self.hub = Hub(rate_limit=1_000_000, rate_burst=1_000_000)
        self.subscriber = Subscriber(self.hub, "redis://127.0.0.1:6379/0", "test")

    def connect(self) -> tuple[str, RecordingOutbox]:
        outbox = RecordingOutbox()
        connection_id, effects = self.hub.connect(outbox)
        self.alone(effects)
        outbox.take()
        return connection_id, outbox

    def send(self, connection_id: str, **message: Any) -> None:
        self.alone(self.hub.receive(connection_id, json.dumps(message)))

    def cut_off(self) -> None:
        """Subscribe (what the joins so far held is sent: a clean start), then lose Redis."""
        self.subscriber.on_subscribed()
        self.subscriber.on_lost(ConnectionError("gone"), 0)

    def alone(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` as a broker that is not subscribed does."""
        run(self.hub, effects, self.subscriber.carry_locally)


def publish_as_redis_would(process: Process, effects: list[Effect], others: int) -> None:
    """Carry out recounts as the Redis script does, with ``others`` members elsewhere."""
    for effect in effects:
        assert isinstance(effect, Recount), effect
        total = effect.local_members + others
        for announcement in effect.announcements:
            envelope = encode_envelope(announcement.publish(effect.room, total))
            process.alone(process.subscriber.on_message(envelope))


def test_joins_served_alone_get_a_joined_and_no_presence_with_a_local_count() -> None:
    process = Process()
    alice, alice_box = process.connect()
    bob, bob_box = process.connect()
    process.send(alice, type="join", room="lobby")
    process.send(bob, type="join", room="lobby")
    assert alice_box.take() == [{"type": "joined", "room": "lobby", "members": 1}]
    assert bob_box.take() == [{"type": "joined", "room": "lobby", "members": 2}]


def test_once_subscribed_the_held_presences_and_the_real_count_reach_everyone() -> None:
    """The order a restart leaves to chance: members joined before the subscription."""
    process = Process()
    alice, alice_box = process.connect()
    bob, bob_box = process.connect()
    process.send(alice, type="join", room="lobby")
    process.send(bob, type="join", room="lobby")
    alice_box.take()
    bob_box.take()

    effects = process.subscriber.on_subscribed()
    assert [(e.room, e.local_members) for e in effects if isinstance(e, Recount)] == [("lobby", 2)]
    publish_as_redis_would(process, effects, others=3)
    assert alice_box.take() == [
        {"type": "presence", "room": "lobby", "members": 5, "id": bob, "event": "join"},
        {"type": "joined", "room": "lobby", "members": 5},
    ]
    assert bob_box.take() == [
        {"type": "presence", "room": "lobby", "members": 5, "id": alice, "event": "join"},
        {"type": "joined", "room": "lobby", "members": 5},
    ]


def test_a_departure_served_alone_is_announced_once_subscribed() -> None:
    process = Process()
    alice, alice_box = process.connect()
    bob, _ = process.connect()
    for member in (alice, bob):
        process.send(member, type="join", room="lobby")
    process.cut_off()
    alice_box.take()

    process.alone(process.hub.disconnect(bob))
    assert alice_box.take() == []  # held: alice's count would be this process's alone
    effects = process.subscriber.on_subscribed()
    publish_as_redis_would(process, effects, others=1)
    assert alice_box.take() == [
        {"type": "presence", "room": "lobby", "members": 2, "id": bob, "event": "leave"},
        {"type": "joined", "room": "lobby", "members": 2},
    ]


def test_a_room_left_by_every_member_here_still_gets_its_departures_announced() -> None:
    process = Process()
    alice, _ = process.connect()
    process.send(alice, type="join", room="lobby")
    process.cut_off()
    process.alone(process.hub.disconnect(alice))
    (recount,) = process.subscriber.on_subscribed()
    assert isinstance(recount, Recount)
    assert (recount.room, recount.local_members) == ("lobby", 0)
    assert recount.announcements[0].skip == alice


def test_held_presences_are_bounded_and_the_count_still_comes_through() -> None:
    process = Process()
    watcher, watcher_box = process.connect()
    process.send(watcher, type="join", room="busy")
    process.cut_off()
    watcher_box.take()
    for _ in range(HELD_PRESENCES):  # a join and a leave each
        member, _ = process.connect()
        process.send(member, type="join", room="busy")
        process.alone(process.hub.disconnect(member))

    (recount,) = process.subscriber.on_subscribed()
    assert isinstance(recount, Recount)
    assert len(recount.announcements) == HELD_PRESENCES + 1  # the newest, and the joined
    publish_as_redis_would(process, [recount], others=0)
    events = watcher_box.take()
    assert len(events) == HELD_PRESENCES + 1
    assert events[-1] == {"type": "joined", "room": "busy", "members": 1}


def test_a_join_whose_joined_was_lost_gets_it_once_subscribed_again() -> None:
    process = Process()
    alice, alice_box = process.connect()
    process.subscriber.on_subscribed()
    # Subscribed: the join is published, and its joined lost with the connection.
    process.hub.receive(alice, json.dumps({"type": "join", "room": "lobby"}))
    process.subscriber.on_lost(ConnectionError("gone"), 0)
    effects = process.subscriber.on_subscribed()
    publish_as_redis_would(process, effects, others=0)
    assert alice_box.take() == [{"type": "joined", "room": "lobby", "members": 1}]
