"""Scale-out through a real three-master Redis Cluster, and each process's Redis traffic
following its own rooms (on one Redis as on a cluster).

Every server here is a single-worker process of its own, and shares nothing with the
others but the Redis it is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_client

from {{ cookiecutter.package_name }}.redis_layout import HEARTBEAT_TTL, Names
from tests.support.live_server import Server, get, start_server, stop_server, wait_for_health
from tests.support.redis_cluster import MASTERS, RedisCluster
from tests.support.redis_server import RedisServer
from tests.support.ws_client import RoomsClient

pytestmark = pytest.mark.slow

RECOVERY_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    running = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        running.start()
        yield running
    finally:
        running.kill()


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer(tmp_path_factory.mktemp("redis"))
    running.start()
    try:
        yield running
    finally:
        running.kill()


@dataclass(frozen=True)
class Deployment:
    """Two single-worker servers on one Redis or a cluster, under a key prefix of their own."""

    one: Server
    two: Server
    redis: RedisServer | RedisCluster
    names: Names


@contextlib.contextmanager
def deployed(
    tmp_path: Path, redis: RedisServer | RedisCluster, url: str | None = None
) -> Iterator[Deployment]:
    """Two servers on ``redis``, reached at ``url`` (its own by default)."""
    names = Names(f"test-{time.monotonic_ns()}")
    env = {"REDIS_URL": url or redis.url, "REDIS_PREFIX": names.prefix, "WORKERS": "1"}
    env |= {"RATE_LIMIT": "1000", "RATE_BURST": "1000"}  # traffic is what these tests count
    with contextlib.ExitStack() as started:
        servers = []
        for _ in range(2):
            servers.append(start_server(tmp_path, env))
            started.callback(stop_server, servers[-1])
        yield Deployment(servers[0], servers[1], redis, names)


@pytest.fixture
def on_cluster(tmp_path: Path, cluster: RedisCluster) -> Iterator[Deployment]:
    with deployed(tmp_path, cluster) as deployment:
        yield deployment


@pytest.fixture(params=["one Redis", "cluster"])
def any_redis(
    request: pytest.FixtureRequest, single: RedisServer, cluster: RedisCluster
) -> RedisServer | RedisCluster:
    return single if request.param == "one Redis" else cluster


@pytest.fixture
def anywhere(tmp_path: Path, any_redis: RedisServer | RedisCluster) -> Iterator[Deployment]:
    with deployed(tmp_path, any_redis) as deployment:
        yield deployment


def broker_report(server: Server) -> dict[str, object]:
    report: dict[str, object] = json.loads(get(f"{server.http_url}/health")[2])["broker"]
    return report


def frames_received(server: Server) -> int:
    return int(str(broker_report(server)["frames_received"]))


def subscribers(redis: RedisServer | RedisCluster, channel: str) -> int:
    """How many connections subscribe to ``channel`` (sharded), on the node that has it."""
    node = redis.node_of(channel) if isinstance(redis, RedisCluster) else redis
    with redis_client.Redis(port=node.port) as client:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return int(reply[1])


def rooms_on_every_master(cluster: RedisCluster, names: Names) -> list[str]:
    """One room name per master: its channel and keys live on that master."""
    rooms: dict[int, str] = {}
    number = 0
    while len(rooms) < MASTERS:
        room = f"room{number}"
        rooms.setdefault(cluster.node_of(names.channel(room)).port, room)
        number += 1
    return list(rooms.values())


def test_rooms_on_every_master_carry_messages_and_counts_across_processes(
    on_cluster: Deployment, cluster: RedisCluster
) -> None:
    one, two, names = on_cluster.one, on_cluster.two, on_cluster.names
    assert broker_report(one)["pubsub"] == "sharded"
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        for room in rooms_on_every_master(cluster, names):
            assert alice.join(room)["members"] == 1
            assert bob.join(room)["members"] == 2
            event = alice.expect("presence")
            assert (event["room"], event["id"], event["members"]) == (room, bob.id, 2)
            alice.send(type="message", room=room, text=f"one to {room}")
            bob.send(type="message", room=room, text=f"two to {room}")
            for client in (alice, bob):
                messages = [client.expect("message") for _ in range(2)]
                assert {m["text"] for m in messages} == {f"one to {room}", f"two to {room}"}
            # The room's counts and history are on the master that has its slot.
            with redis_client.Redis(port=cluster.node_of(names.channel(room)).port) as node:
                assert node.hlen(names.members(room)) == 2
                assert node.xlen(names.history(room)) == 2
            # A member back on the other process gets what it missed from that master.
            since = {"epoch": messages[0]["epoch"], "offset": 0}
            with RoomsClient(two.ws_url) as carol:
                carol.send(type="join", room=room, since=since)
                assert carol.expect("joined")["recovered"] is True
                assert [carol.expect("message")["text"] for _ in range(2)] == [
                    m["text"] for m in messages
                ]
            for client in (alice, bob):  # carol's join and departure
                assert [client.expect("presence")["event"] for _ in range(2)] == ["join", "leave"]


@pytest.mark.parametrize("senders", [1, 2])
def test_a_process_gets_no_frame_of_a_room_it_has_no_member_in(
    anywhere: Deployment, senders: int
) -> None:
    """Traffic in a room with members on server two only: server one receives none of it.
    ``senders`` doubles that traffic; server one's count does not move either way."""
    one, two = anywhere.one, anywhere.two
    with (
        RoomsClient(one.ws_url) as alice,
        RoomsClient(two.ws_url) as bob,
        RoomsClient(two.ws_url) as carol,
        RoomsClient(two.ws_url) as dave,
    ):
        alice.join("shared")
        bob.join("shared")
        alice.expect("presence")
        carol.join("busy")
        dave.join("busy")
        carol.expect("presence")
        before = frames_received(one), frames_received(two)
        for sender in (carol, dave)[:senders]:
            for number in range(50):
                sender.send(type="message", room="busy", text=str(number))
        for _ in range(50 * senders):
            carol.expect("message")
        alice.send(type="message", room="shared", text="to both")
        assert bob.expect("message")["text"] == "to both"
        assert alice.expect("message")["text"] == "to both"
        after = frames_received(one), frames_received(two)
        assert after[0] - before[0] == 1  # its own member's message, and nothing of "busy"
        assert after[1] - before[1] == 50 * senders + 1


def test_the_last_member_leaving_ends_the_subscription(anywhere: Deployment) -> None:
    one, two, redis = anywhere.one, anywhere.two, anywhere.redis
    channel = anywhere.names.channel("brief")
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        alice.join("brief")
        assert subscribers(redis, channel) == 1
        bob.join("brief")
        assert subscribers(redis, channel) == 2
        alice.expect("presence")
        alice.send(type="leave", room="brief")
        alice.expect("left")
        wait_until(lambda: subscribers(redis, channel) == 1)
        assert broker_report(one)["channels"] == 0
    wait_until(lambda: subscribers(redis, channel) == 0)
    assert broker_report(two)["channels"] == 0


def test_without_sharded_pub_sub_plain_pub_sub_carries_the_rooms(
    tmp_path: Path, single: RedisServer
) -> None:
    """A Redis user that may not use sharded pub/sub (as on Redis 6) gets plain pub/sub."""
    user = f"plain{time.monotonic_ns()}"
    with redis_client.Redis(port=single.port) as admin:
        admin.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], channels=["*"])
        admin.execute_command("ACL", "SETUSER", user, "+@all", "-spublish", "-ssubscribe")
    url = single.url.replace("redis://", f"redis://{user}:pw@")
    with deployed(tmp_path, single, url) as deployment:
        one, two = deployment.one, deployment.two
        assert broker_report(one)["pubsub"] == "plain"
        with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
            assert alice.join("plain")["members"] == 1
            assert bob.join("plain")["members"] == 2
            assert alice.expect("presence")["members"] == 2
            alice.send(type="message", room="plain", text="no shards")
            assert bob.expect("message")["text"] == "no shards"
            assert alice.expect("message")["text"] == "no shards"


def test_a_master_that_restarts_empty_gets_its_rooms_back(
    on_cluster: Deployment, cluster: RedisCluster
) -> None:
    one, two, names = on_cluster.one, on_cluster.two, on_cluster.names
    room = rooms_on_every_master(cluster, names)[1]
    master = cluster.node_of(names.channel(room))
    with RoomsClient(one.ws_url) as alice, RoomsClient(two.ws_url) as bob:
        alice.join(room)
        bob.join(room)
        alice.expect("presence")
        master.kill()
        for server in (one, two):
            assert "Redis" in str(wait_for_health(server, 503, RECOVERY_TIMEOUT)["reason"])
        master.start()  # its folder keeps its slots; its data is gone
        cluster.wait_until_ok()
        for server in (one, two):
            wait_for_health(server, 200, RECOVERY_TIMEOUT)
        with redis_client.Redis(port=master.port) as node:
            wait_until(lambda: node.hlen(names.members(room)) == 2)  # counted again
        alice.send(type="message", room=room, text="back again")
        assert last_message(bob) == "back again"


def test_members_of_a_process_that_died_stop_counting(anywhere: Deployment) -> None:
    one, two = anywhere.one, anywhere.two
    with RoomsClient(one.ws_url) as alice:
        alice.join("wake")
        bob = RoomsClient(two.ws_url)
        assert bob.join("wake")["members"] == 2
        os.killpg(two.process.pid, signal.SIGKILL)  # every process of it, no goodbye
        deadline = time.monotonic() + HEARTBEAT_TTL + RECOVERY_TIMEOUT
        while True:
            with RoomsClient(one.ws_url) as probe:
                if probe.join("wake")["members"] == 2:  # alice and the probe
                    break
            assert time.monotonic() < deadline, "the dead process's member still counts"
            time.sleep(1)
        bob.close()


def test_several_workers_share_their_rooms(
    tmp_path: Path, any_redis: RedisServer | RedisCluster
) -> None:
    env = {"REDIS_URL": any_redis.url, "REDIS_PREFIX": f"workers-{time.monotonic_ns()}"}
    server = start_server(tmp_path, {**env, "WORKERS": "2"})
    try:
        clients = [RoomsClient(server.ws_url) for _ in range(6)]
        try:
            for client in clients:
                client.join("many")
            for client in clients:
                client.send(type="message", room="many", text=client.id)
            for client in clients:
                texts: set[str] = set()
                while len(texts) < len(clients):
                    if (event := client.receive())["type"] == "message":
                        texts.add(event["text"])
                assert texts == {c.id for c in clients}
        finally:
            for client in clients:
                client.close()
    finally:
        stop_server(server)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def last_message(client: RoomsClient) -> str:
    """The text of the next ``message`` event, after any ``joined`` or ``presence``."""
    while (event := client.receive(timeout=RECOVERY_TIMEOUT))["type"] != "message":
        assert event["type"] in ("joined", "presence"), event
    return str(event["text"])
