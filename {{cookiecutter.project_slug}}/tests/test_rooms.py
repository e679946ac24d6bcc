"""The hub: rooms, members and fan-out, driven directly (no server, no I/O)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.broker import MemoryBroker
from {{ cookiecutter.package_name }}.history import Histories, Retention
from {{ cookiecutter.package_name }}.rooms import Hub

RETENTION = Retention(100, 300.0)


class RecordingOutbox:
    """An outbox that keeps what it is offered, up to ``capacity`` frames."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self.frames: list[str] = []
        self.closed: tuple[int, str] | None = None

    def offer(self, frame: str) -> bool:
        assert self.closed is None, "frame offered after close"
        if len(self.frames) >= self.capacity:
            return False
        self.frames.append(frame)
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(frame) for frame in self.frames]

    def take(self) -> list[dict[str, Any]]:
        """The events offered since the last take, without their positions (epoch and
        offset) and resume outcomes: the tests of history (``test_history.py``,
        ``test_resume.py``) look at those."""
        events = self.take_positioned()
        for event in events:
            for key in ("epoch", "offset", "recovered", "missed"):
                event.pop(key, None)
        return events

    def take_positioned(self) -> list[dict[str, Any]]:
        events = self.events()
        self.frames.clear()
        return events


class Harness:
    """A hub and the in-memory broker that carries out its effects."""

    def __init__(self, hub: Hub, retention: Retention = RETENTION) -> None:
        self.hub = hub
        self.now = 0.0  # the histories' clock
        self.broker = MemoryBroker(hub, Histories(retention, clock=lambda: self.now))

    def connect(self, capacity: int = 1_000_000) -> tuple[str, RecordingOutbox]:
        outbox = RecordingOutbox(capacity)
        connection_id, effects = self.hub.connect(outbox)
        self.broker.submit(effects)
        return connection_id, outbox

    def receive(self, connection_id: str, frame: str) -> None:
        self.broker.submit(self.hub.receive(connection_id, frame))

    def disconnect(self, connection_id: str) -> None:
        self.broker.submit(self.hub.disconnect(connection_id))


def send(harness: Harness, connection_id: str, **message: Any) -> None:
    harness.receive(connection_id, json.dumps(message))


def test_welcome_carries_the_connection_id() -> None:
    harness = Harness(Hub())
    alice, outbox = harness.connect()
    assert outbox.take() == [{"type": "welcome", "id": alice}]


def test_join_replies_and_tells_the_others() -> None:
    harness = Harness(Hub())
    alice, alice_box = harness.connect()
    bob, bob_box = harness.connect()
    send(harness, alice, type="join", room="lobby")
    send(harness, bob, type="join", room="lobby")
    assert alice_box.take()[1:] == [
        {"type": "joined", "room": "lobby", "members": 1},
        {"type": "presence", "room": "lobby", "members": 2, "id": bob, "event": "join"},
    ]
    assert bob_box.take()[1:] == [{"type": "joined", "room": "lobby", "members": 2}]


def test_joining_twice_is_idempotent() -> None:
    harness = Harness(Hub())
    alice, box = harness.connect()
    send(harness, alice, type="join", room="r")
    send(harness, alice, type="join", room="r")
    assert [event["members"] for event in box.take()[1:]] == [1, 1]
    assert harness.hub.members("r") == 1


def test_message_reaches_every_member_and_no_one_else() -> None:
    harness = Harness(Hub(clock=lambda: 1700000000.5))
    alice, alice_box = harness.connect()
    bob, bob_box = harness.connect()
    carol, carol_box = harness.connect()
    send(harness, alice, type="join", room="lobby")
    send(harness, bob, type="join", room="lobby")
    send(harness, carol, type="join", room="elsewhere")
    for box in (alice_box, bob_box, carol_box):
        box.take()
    send(harness, bob, type="message", room="lobby", text="hello")
    expected = {"type": "message", "room": "lobby", "from": bob, "text": "hello"}
    assert alice_box.take() == [{**expected, "ts": 1700000000500}]
    assert bob_box.take() == [{**expected, "ts": 1700000000500}]
    assert carol_box.take() == []


def test_a_broadcast_is_encoded_once() -> None:
    harness = Harness(Hub())
    members = [harness.connect() for _ in range(5)]
    for connection_id, _ in members:
        send(harness, connection_id, type="join", room="r")
    for _, box in members:
        box.take()
    send(harness, members[0][0], type="message", room="r", text="x")
    frames = [box.frames[0] for _, box in members]
    assert all(frame is frames[0] for frame in frames)


def test_leave_replies_and_tells_the_others() -> None:
    harness = Harness(Hub())
    alice, alice_box = harness.connect()
    bob, bob_box = harness.connect()
    send(harness, alice, type="join", room="r")
    send(harness, bob, type="join", room="r")
    alice_box.take()
    bob_box.take()
    send(harness, bob, type="leave", room="r")
    assert bob_box.take() == [{"type": "left", "room": "r"}]
    assert alice_box.take() == [
        {"type": "presence", "room": "r", "members": 1, "id": bob, "event": "leave"}
    ]


def test_disconnect_cleans_up_every_room() -> None:
    harness = Harness(Hub())
    alice, alice_box = harness.connect()
    bob, _ = harness.connect()
    for room in ("a", "b", "c"):
        send(harness, bob, type="join", room=room)
    send(harness, alice, type="join", room="a")
    alice_box.take()
    harness.disconnect(bob)
    harness.disconnect(bob)  # twice is harmless
    assert harness.hub.rooms_of(bob) == frozenset()
    assert harness.hub.members("a") == 1
    assert harness.hub.rooms == 1
    assert harness.hub.connections == 1
    assert alice_box.take() == [
        {"type": "presence", "room": "a", "members": 1, "id": bob, "event": "leave"}
    ]


def test_errors_leave_the_connection_usable() -> None:
    harness = Harness(Hub(max_rooms=1))
    alice, box = harness.connect()
    box.take()
    harness.receive(alice, "{nope")
    send(harness, alice, type="message", room="r", text="hi")
    send(harness, alice, type="leave", room="r")
    send(harness, alice, type="join", room="one")
    send(harness, alice, type="join", room="two")
    send(harness, alice, type="ping")
    events = box.take()
    assert [event.get("room") for event in events if event["type"] == "error"] == [
        None,
        "r",
        "r",
        "two",
    ]
    assert [event.get("code", event["type"]) for event in events] == [
        "invalid_json",
        "not_joined",
        "not_joined",
        "joined",
        "too_many_rooms",
        "pong",
    ]


def test_a_full_outbox_is_closed_with_1008_and_leaves_its_rooms() -> None:
    harness = Harness(Hub())
    fast, fast_box = harness.connect()
    slow, slow_box = harness.connect(capacity=3)
    send(harness, fast, type="join", room="r")
    send(harness, slow, type="join", room="r")  # slow: welcome, joined
    fast_box.take()
    for n in range(3):
        send(harness, fast, type="message", room="r", text=str(n))
    assert slow_box.closed is not None
    assert slow_box.closed[0] == 1008
    assert harness.hub.rooms_of(slow) == frozenset()
    assert harness.hub.members("r") == 1
    events = fast_box.take()
    assert [event["text"] for event in events if event["type"] == "message"] == ["0", "1", "2"]
    assert {"type": "presence", "room": "r", "members": 1, "id": slow, "event": "leave"} in events


class Clock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_messages_over_the_rate_limit_get_an_error_and_are_dropped() -> None:
    clock = Clock()
    harness = Harness(Hub(rate_limit=1, rate_burst=2, monotonic=clock))
    alice, box = harness.connect()
    box.take()
    for _ in range(3):
        send(harness, alice, type="ping")
    events = box.take()
    assert [event["type"] for event in events] == ["pong", "pong", "error"]
    assert events[2]["code"] == "rate_limited"
    clock.now += 1.0  # one token back
    send(harness, alice, type="ping")
    assert box.take() == [{"type": "pong"}]
    assert box.closed is None


def test_a_connection_that_keeps_going_is_closed_with_1008_and_leaves_its_rooms() -> None:
    clock = Clock()
    harness = Harness(Hub(rate_limit=1, rate_burst=2, monotonic=clock))
    flooder, flooder_box = harness.connect()
    other, other_box = harness.connect()
    send(harness, other, type="join", room="r")
    send(harness, flooder, type="join", room="r")
    for _ in range(1 + 2):  # the last token, then as many refusals as the burst
        send(harness, flooder, type="ping")
    assert flooder_box.closed is None
    clock.now += 0.5  # half a token: not enough, and not a pause
    send(harness, flooder, type="ping")
    assert flooder_box.closed == (1008, "rate limit exceeded")
    assert harness.hub.rooms_of(flooder) == frozenset()
    leave = {"type": "presence", "room": "r", "members": 1, "id": flooder, "event": "leave"}
    assert leave in other_box.take()
    assert other_box.closed is None


def test_a_pause_that_refills_the_bucket_forgives_the_refusals() -> None:
    clock = Clock()
    harness = Harness(Hub(rate_limit=10, rate_burst=3, monotonic=clock))
    alice, box = harness.connect()
    for _ in range(5):
        for _ in range(3 + 3):  # the burst, then as many refusals as allowed
            send(harness, alice, type="ping")
        clock.now += 0.5  # refills the bucket: the slate is clean again
    assert box.closed is None
    assert sum(event.get("code") == "rate_limited" for event in box.events()) == 5 * 3


ROOMS = st.sampled_from(["a", "b", "c"])
FRAMES = st.one_of(
    st.builds(lambda room: {"type": "join", "room": room}, ROOMS),
    st.builds(lambda room: {"type": "leave", "room": room}, ROOMS),
    st.builds(lambda room, text: {"type": "message", "room": room, "text": text}, ROOMS, st.text()),
    st.just({"type": "ping"}),
    st.dictionaries(st.sampled_from(["type", "room", "text"]), st.text(max_size=5), max_size=3),
).map(json.dumps) | st.text(max_size=20)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("connect"), st.integers(min_value=1, max_value=12)),
        st.tuples(st.just("wait"), st.floats(min_value=0, max_value=2)),
        st.tuples(st.just("disconnect"), st.integers(min_value=0, max_value=7)),
        st.tuples(st.just("receive"), st.integers(min_value=0, max_value=7), FRAMES),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
# A member dropped (full outbox) by its own join: its departure must be announced
# after the join, or the others' last count is the stale one (a bug once).
@example(
    [
        ("connect", 4),
        ("connect", 1),
        ("receive", 0, '{"type": "join", "room": "a"}'),
        ("receive", 1, '{"type": "join", "room": "a"}'),
    ]
)
def test_random_sequences_keep_the_hub_consistent(operations: list[tuple[Any, ...]]) -> None:
    """Whatever clients send, in whatever order, and however slow they read:
    memberships stay symmetric, no room is empty, the room limit holds, closed
    connections get nothing more, and the member counts each client was told
    last are the true ones. A tight rate limit closes some connections too."""
    clock = Clock()
    harness = Harness(Hub(max_rooms=2, rate_limit=2, rate_burst=3, monotonic=clock))
    open_connections: dict[str, RecordingOutbox] = {}
    every: list[tuple[str, RecordingOutbox]] = []
    for operation in operations:
        if operation[0] == "connect":
            connection_id, box = harness.connect(capacity=operation[1])
            open_connections[connection_id] = box
            every.append((connection_id, box))
        elif operation[0] == "wait":
            clock.now += operation[1]
        elif open_connections:
            connection_id = list(open_connections)[operation[1] % len(open_connections)]
            if operation[0] == "disconnect":
                harness.disconnect(connection_id)
                open_connections.pop(connection_id)
            else:
                harness.receive(connection_id, operation[2])
        for connection_id, box in every:
            if box.closed is not None:
                open_connections.pop(connection_id, None)
        assert_consistent(harness.hub, open_connections, every)


def assert_consistent(
    hub: Hub, open_connections: dict[str, RecordingOutbox], every: list[tuple[str, RecordingOutbox]]
) -> None:
    members: dict[str, set[str]] = {}
    for connection_id in open_connections:
        rooms = hub.rooms_of(connection_id)
        assert len(rooms) <= hub.max_rooms
        for room in rooms:
            members.setdefault(room, set()).add(connection_id)
    assert hub.connections == len(open_connections)
    assert hub.rooms == len(members)
    for room, ids in members.items():
        assert hub.members(room) == len(ids)
    for connection_id, box in every:
        if connection_id not in open_connections:
            assert hub.rooms_of(connection_id) == frozenset()
            continue
        last_count: dict[str, int] = {}
        for event in box.events():
            if event["type"] in ("joined", "presence"):
                last_count[event["room"]] = event["members"]
        for room in hub.rooms_of(connection_id):
            assert last_count[room] == hub.members(room)


def test_an_app_event_fans_out_unchanged_with_the_senders_id() -> None:
    harness = Harness(Hub(clock=lambda: 1700000000.0))
    alice, alice_box = harness.connect()
    bob, bob_box = harness.connect()
    for member in (alice, bob):
        send(harness, member, type="join", room="board")
    alice_box.take()
    bob_box.take()
    data = {"x": [1, 2.5, None], "label": "ünï ✓", "deep": {"a": {"b": {}}}}
    forged = {"from": "someone else"}
    send(harness, alice, type="message", room="board", event="shape.add", data=data, **forged)
    expected = {
        "type": "message",
        "room": "board",
        "from": alice,  # never what the client claims
        "event": "shape.add",
        "data": data,
        "ts": 1700000000000,
    }
    assert alice_box.take() == [expected]
    assert bob_box.take() == [expected]
