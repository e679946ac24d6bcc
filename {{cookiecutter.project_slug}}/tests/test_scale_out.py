"""Scale-out through a real Redis: two server processes, clients on each, Redis restarts.

Every server here has a process of its own and shares nothing with the others
but the Redis they are given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_client
from websockets.sync.client import connect

from {{ cookiecutter.package_name }} import protocol
from {{ cookiecutter.package_name }}.protocol import Position
from {{ cookiecutter.package_name }}.redis_layout import Names, encode_envelope
from {{ cookiecutter.package_name }}.rooms import Publish
from tests.support.live_server import Server, get, start_server, stop_server, wait_for_health
from tests.support.redis_server import RedisServer
from tests.support.ws_client import RoomsClient

pytestmark = pytest.mark.slow

RECOVERY_TIMEOUT = 15.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def pair(tmp_path: Path, redis: RedisServer) -> Iterator[tuple[Server, Server]]:
    """Two single-worker servers that share one Redis (and one key prefix)."""
    env = {"REDIS_URL": redis.url, "REDIS_PREFIX": "pair", "WORKERS": "1"}
    first = start_server(tmp_path, env)
    try:
        second = start_server(tmp_path, env)
        try:
            yield first, second
        finally:
            stop_server(second)
    finally:
        stop_server(first)


def test_room_messages_and_presence_cross_processes(pair: tuple[Server, Server]) -> None:
    one, two = pair
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        assert alice.join("hall")["members"] == 1
        assert bob.join("hall")["members"] == 2
        assert alice.expect("presence") == {
            "type": "presence",
            "room": "hall",
            "members": 2,
            "id": bob.id,
            "event": "join",
        }
        alice.send(type="message", room="hall", text="from one")
        bob.send(type="message", room="hall", text="from two")
        for client in (alice, bob):
            texts = {client.expect("message")["text"], client.expect("message")["text"]}
            assert texts == {"from one", "from two"}


def test_member_counts_agree_across_processes(pair: tuple[Server, Server]) -> None:
    one, two = pair
    with (
        RoomsClient(one.ws_url) as alice,
        RoomsClient(two.ws_url) as bob,
        RoomsClient(two.ws_url) as carol,
    ):
        alice.join("count")
        bob.join("count")
        assert carol.join("count")["members"] == 3
        assert alice.expect("presence")["members"] == 2
        assert alice.expect("presence")["members"] == 3
        assert bob.expect("presence")["members"] == 3
        bob.close()  # leaves by disconnecting
        for client in (alice, carol):
            event = client.expect("presence")
            assert (event["event"], event["id"], event["members"]) == ("leave", bob.id, 2)


def test_a_process_that_stops_takes_itself_out_of_every_count(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    one, two = pair
    names = Names("pair")
    client = redis_client.Redis.from_url(redis.url, decode_responses=True)
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        alice.join("exit")
        assert bob.join("exit")["members"] == 2
        assert alice.expect("presence")["event"] == "join"
        assert len(client.hgetall(names.members("exit"))) == 2
        assert client.zcard(names.expiries("exit")) == 2
        stop_server(two)  # SIGTERM: its broker stops once its connections are closed
        # Its share is gone at once, not when it expires.
        assert len(client.hgetall(names.members("exit"))) == 1
        assert client.zcard(names.expiries("exit")) == 1
        event = alice.expect("presence")
        assert (event["event"], event["id"], event["members"]) == ("leave", bob.id, 1)
    client.close()


def test_delivery_resumes_after_a_redis_restart(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    one, two = pair
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        alice.join("phoenix")
        bob.join("phoenix")
        alice.expect("presence")

        kill_and_wait(redis, pair)
        redis.start()
        started = time.monotonic()
        for server in pair:
            wait_for_health(server, 200, RECOVERY_TIMEOUT)
        for client in (alice, bob):
            assert last_count(client, "phoenix") == 2
        alice.send(type="message", room="phoenix", text="back again")
        assert bob.expect("message")["text"] == "back again"
        assert time.monotonic() - started < RECOVERY_TIMEOUT
        # The restarted Redis came back empty; both processes registered their members again.
        with RoomsClient(two.ws_url) as carol:
            assert carol.join("phoenix")["members"] == 3


def test_a_join_before_the_subscription_reaches_the_other_processes(
    tmp_path: Path, redis: RedisServer
) -> None:
    """A process that is up before it is subscribed serves joins alone, then announces them.

    The second process's Redis user may do anything but SUBSCRIBE until the test
    allows it, so that it serves bob's join before it is subscribed: the order
    that a restart with several workers leaves to chance.
    """
    env = {"REDIS_URL": redis.url, "REDIS_PREFIX": "late", "WORKERS": "1"}
    first = start_server(tmp_path, env)
    try:
        with RoomsClient(first.ws_url) as alice, redis_client.Redis.from_url(redis.url) as admin:
            alice.join("late")
            admin.acl_setuser("late", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"])
            admin.execute_command("ACL", "SETUSER", "late", "+@all", "-subscribe")
            late_url = redis.url.replace("redis://", "redis://late:pw@")
            second = start_server(tmp_path, {**env, "REDIS_URL": late_url}, started=(503,))
            try:
                with RoomsClient(second.ws_url) as bob:
                    assert bob.join("late")["members"] == 1  # served alone
                    admin.execute_command("ACL", "SETUSER", "late", "+subscribe")
                    wait_for_health(second, 200, RECOVERY_TIMEOUT)
                    event = alice.expect("presence", timeout=RECOVERY_TIMEOUT)
                    assert (event["event"], event["id"], event["members"]) == ("join", bob.id, 2)
                    assert last_count(bob, "late") == 2
            finally:
                stop_server(second)
    finally:
        stop_server(first)


def test_joins_and_leaves_during_an_outage_reach_the_others_once_redis_is_back(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    one, two = pair
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        alice.join("gap")
        bob.join("gap")
        alice.expect("presence")
        carol = RoomsClient(two.ws_url)
        carol.join("gap")
        for client in (alice, bob):
            assert client.expect("presence")["members"] == 3

        kill_and_wait(redis, pair)
        carol.close()  # leaves while the processes cannot tell each other
        with RoomsClient(two.ws_url) as dave:
            assert dave.join("gap")["members"] == 2  # this process's members alone: bob, dave
            redis.start()
            for server in pair:
                wait_for_health(server, 200, RECOVERY_TIMEOUT)
            # Each process tells its own members the real total once it is subscribed
            # again; the other process hears of carol and dave if it is subscribed by then.
            for client in (alice, bob, dave):
                assert last_count(client, "gap") == 3
            alice.send(type="message", room="gap", text="all here")
            for client in (bob, dave):
                assert client.expect("message")["text"] == "all here"


def kill_and_wait(redis: RedisServer, servers: tuple[Server, ...]) -> None:
    """Kill Redis and wait until every server says it is not ready, and why."""
    redis.kill()
    for server in servers:
        assert "Redis" in str(wait_for_health(server, 503, RECOVERY_TIMEOUT)["reason"])


def last_count(client: RoomsClient, room: str, settle: float = 1.0) -> int:
    """The member count of ``room`` in the last ``joined`` or ``presence`` event that
    arrives before none has come for ``settle`` seconds."""
    count = -1
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            event = client.receive(timeout=settle)
        except TimeoutError:
            return count
        if event["type"] in {"joined", "presence"} and event["room"] == room:
            count = event["members"]
    raise AssertionError(f"the events for {room} never stopped coming")


def test_without_redis_health_is_503_local_clients_are_served_and_messages_refused(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    one, _ = pair
    with RoomsClient(one.ws_url) as alice, RoomsClient(one.ws_url) as carol:
        alice.join("local")
        carol.join("local")
        alice.expect("presence")
        redis.kill()
        health = wait_for_health(one, 503, RECOVERY_TIMEOUT)
        assert health["status"] == "unavailable"
        assert "unreachable" in str(health["reason"])

        with connect(f"{one.ws_url}/ws/echo", open_timeout=5) as echo:
            echo.send("still echoing")
            assert echo.recv(timeout=5) == "still echoing"
        # A message could get no place in the room's history: refused out loud, and
        # delivered to no one, here or elsewhere.
        alice.send(type="message", room="local", text="same process", id="m1")
        refusal = alice.expect("error")
        assert (refusal["code"], refusal["id"], refusal["room"]) == ("unavailable", "m1", "local")
        alice.send(type="ping")
        assert alice.expect("pong") == {"type": "pong"}
        carol.send(type="ping")
        assert carol.receive() == {"type": "pong"}
        assert get(f"{one.http_url}/")[0] == 200


def test_a_burst_from_redis_reaches_a_reader_that_keeps_reading(
    tmp_path: Path, redis: RedisServer
) -> None:
    # 1,000 frames land on the channel at once, far more than an outbox (16) holds.
    env = {"REDIS_URL": redis.url, "REDIS_PREFIX": "burst", "WORKERS": "1", "OUTBOX_SIZE": "16"}
    server = start_server(tmp_path, env)
    try:
        with RoomsClient(server.ws_url) as reader:
            reader.join("burst")
            frames = [
                protocol.fill(
                    protocol.message_parts("burst", "elsewhere", str(n), 0),
                    protocol.position_values(Position("e1", n + 1)),
                )
                for n in range(1000)
            ]
            channel = Names("burst").channel("burst")
            with redis_client.Redis.from_url(redis.url) as publisher:
                pipe = publisher.pipeline()
                for frame in frames:
                    pipe.spublish(channel, encode_envelope(Publish("burst", frame)))
                pipe.execute()
            texts = [reader.expect("message", timeout=10)["text"] for _ in frames]
            assert texts == [str(n) for n in range(1000)]
    finally:
        stop_server(server)


def test_history_crosses_processes_and_a_redis_restarted_empty_starts_a_new_epoch(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """A member comes back on the other process and gets what it missed from Redis;
    after Redis restarts with nothing (no persistence) the old position is refused, and
    the room starts again under a new epoch: never a partial or a wrong replay."""
    one, two = pair
    with RoomsClient(one.ws_url) as sender:
        first = sender.join("kept")
        for number in range(3):
            sender.send(type="message", room="kept", text=f"m{number + 1}", id=f"k{number}")
        acks = [event for event in (sender.receive() for _ in range(6)) if event["type"] == "ack"]
    assert [ack["offset"] for ack in acks] == [1, 2, 3]
    since = {"epoch": first["epoch"], "offset": 1}
    with RoomsClient(two.ws_url) as reader:
        reader.send(type="join", room="kept", since=since)
        joined = reader.expect("joined")
        assert (joined["recovered"], joined["missed"]) == (True, 2)
        assert [reader.expect("message")["text"] for _ in range(2)] == ["m2", "m3"]

    with RoomsClient(one.ws_url) as stayer:  # stays connected through the restart
        stayer.join("kept")
        kill_and_wait(redis, (one, two))
        redis.start()
        for server in (one, two):
            wait_for_health(server, 200, RECOVERY_TIMEOUT)
        # Its process resumes the room from what it saw: the history is gone, and the
        # member is told so, with the room's new epoch.
        told = stayer.expect("joined")
        assert (told["recovered"], told["missed"], told["offset"]) == (False, 0, 0)
        assert told["epoch"] != first["epoch"]
    with RoomsClient(two.ws_url) as reader:
        reader.send(type="join", room="kept", since=since)
        joined = reader.expect("joined")
        assert (joined["recovered"], joined["missed"], joined["offset"]) == (False, 0, 0)
        assert joined["epoch"] == told["epoch"]
        reader.send(type="message", room="kept", text="after", id="k-after")
        # Its ack (the reply) and its copy (through the room's channel): in either order.
        events = {event["type"]: event for event in (reader.receive(), reader.receive())}
        for kind in ("message", "ack"):
            assert (events[kind]["epoch"], events[kind]["offset"]) == (joined["epoch"], 1)


def test_a_process_that_missed_a_message_resumes_the_room_for_its_members(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """A message lost on its way to the processes (numbered and kept in the history, never
    published, as when their subscriber connections were down): the next message shows
    the jump, and each process gets its members the lost one, then that one, once each."""
    one, two = pair
    names = Names("pair")
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        alice.join("gappy")
        bob.join("gappy")
        alice.expect("presence")
        alice.send(type="message", room="gappy", text="m1")
        first = bob.expect("message")
        assert alice.expect("message") == first
        with redis_client.Redis.from_url(redis.url, decode_responses=True) as raw:
            offset = raw.hincrby(names.position("gappy"), "offset", 1)
            lost = json.dumps({**first, "text": "m2 (lost)", "offset": offset})
            raw.xadd(names.history("gappy"), {"f": lost}, id=f"{offset}-0")
        alice.send(type="message", room="gappy", text="m3")
        for client in (alice, bob):
            joined = client.expect("joined")
            assert (joined["recovered"], joined["missed"]) == (True, 2)
            events = [client.expect("message") for _ in range(2)]
            assert [(e["text"], e["offset"]) for e in events] == [("m2 (lost)", 2), ("m3", 3)]
            client.send(type="ping")
            assert client.expect("pong") == {"type": "pong"}  # nothing twice
        for server in (one, two):
            assert broker_gaps(server) == 1


def broker_gaps(server: Server) -> int:
    status, _, body = get(f"{server.http_url}/health")
    assert status == 200
    return int(json.loads(body)["broker"]["gaps"])
