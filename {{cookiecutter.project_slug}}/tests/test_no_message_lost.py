"""The fault test that defines "no message lost": real servers, a real Redis, real faults.

Two servers share one Redis; ten members on each stay in one room, and four
senders send messages with ids at a steady rate. Meanwhile Redis is killed and
restarted, one server is SIGKILLed and started again, and every client drops its
connection once. The members behave as ``client.js`` does
(``tests/support/resilient_client.py``). Afterwards every member holds every
acknowledged message exactly once, in offset order.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.live_server import start_server, stop_server, wait_for_health
from tests.support.redis_server import RedisServer
from tests.support.resilient_client import ResilientMember

pytestmark = pytest.mark.slow

MEMBERS_PER_SERVER = 10
SENDERS = 4
MESSAGES = 2000
RATE = 200.0  # messages per second, all senders together
SETTLE_TIMEOUT = 60.0


class Deployment:
    """Two single-worker servers on one Redis, each restartable on its own port."""

    def __init__(self, directory: Path, redis: RedisServer) -> None:
        self.directory = directory
        self.env = {
            "REDIS_URL": redis.url,
            "REDIS_PREFIX": "lost",
            "WORKERS": "1",
            "HISTORY_SIZE": str(MESSAGES * 2),
            "RATE_LIMIT": "1000",
            "RATE_BURST": "1000",
        }
        self.servers = [start_server(directory, self.env) for _ in range(2)]

    def kill_and_restart(self, index: int) -> None:
        server = self.servers[index]
        os.killpg(server.process.pid, signal.SIGKILL)  # every process of it, no goodbye
        server.process.wait()
        self.servers[index] = start_server(self.directory, self.env, port=server.port)

    def stop(self) -> None:
        for server in self.servers:
            stop_server(server)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Deployment, RedisServer]]:
    # Persistence that survives a SIGKILL: every write is in the append-only file.
    redis = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    redis.start()
    try:
        deployment = Deployment(tmp_path, redis)
        try:
            yield deployment, redis
        finally:
            deployment.stop()
    finally:
        redis.kill()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_every_acknowledged_message_reaches_every_member_once_in_order_through_faults(
    deployment: tuple[Deployment, RedisServer],
) -> None:
    setup, redis = deployment
    urls = [server.ws_url for server in setup.servers]
    members = [ResilientMember([url], "faults") for url in urls for _ in range(MEMBERS_PER_SERVER)]
    senders = [ResilientMember(urls[n % 2 :] + urls[: n % 2], "faults") for n in range(SENDERS)]
    everyone = members + senders
    for client in everyone:
        client.start()
    wait_until(lambda: all(c.joined.is_set() for c in everyone), 30, "every client to join")

    def faults() -> None:
        """While the messages go out: Redis, then a server, then every client."""
        time.sleep(MESSAGES / RATE * 0.15)
        redis.kill()
        for server in setup.servers:
            wait_for_health(server, 503, 15)
        time.sleep(0.5)  # messages sent meanwhile are refused, and sent again
        redis.start()
        time.sleep(MESSAGES / RATE * 0.15)
        setup.kill_and_restart(1)
        for client in everyone:
            client.drop()
            time.sleep(0.05)

    faulting = threading.Thread(target=faults)
    faulting.start()
    sent: list[str] = []
    started = time.monotonic()
    for number in range(MESSAGES):
        sent.append(senders[number % SENDERS].send())
        time.sleep(max(0.0, started + (number + 1) / RATE - time.monotonic()))
    faulting.join()

    acked: dict[str, tuple[str, int]] = {}

    def all_acked() -> bool:
        for sender in senders:
            acked.update(sender.tally.acked)
        return len(acked) == MESSAGES

    wait_until(all_acked, SETTLE_TIMEOUT, "every message to be acknowledged")
    try:
        wait_until(
            lambda: all(len(m.tally.messages) >= MESSAGES for m in members),
            SETTLE_TIMEOUT,
            "every member to hold every message",
        )
    except AssertionError:
        for index, member in enumerate(members):
            offsets = {offset for _, offset, _ in member.tally.messages}
            missing = sorted(set(range(1, MESSAGES + 1)) - offsets)
            print(
                f"member {index}: {len(offsets)} held, missing {missing[:10]}…, "
                f"resumed {member.tally.resumed}, connections {member.tally.connections}"
            )
        raise
    for client in everyone:
        client.stop()

    assert set(acked) == set(sent)
    for member in members:
        held = member.tally.messages
        assert Counter(text for _, _, text in held) == Counter(sent)  # each exactly once
        assert [(epoch, offset) for epoch, offset, _ in held] == sorted(acked.values())
        assert {text: (epoch, offset) for epoch, offset, text in held} == acked
    refused = sum(s.tally.refused for s in senders)
    resumed = [outcome for m in members for outcome in m.tally.resumed]
    print(
        f"\n{MESSAGES} messages acknowledged, each held once, in offset order, by all "
        f"{len(members)} members; {refused} refusals (unavailable), sent again; "
        f"{len(resumed)} resumes ({sum(missed for _, missed in resumed)} messages replayed, "
        f"{sum(not recovered for recovered, _ in resumed)} not recovered); "
        f"{sum(m.tally.duplicates_dropped for m in members)} copies the members dropped; "
        f"{sum(c.tally.connections for c in everyone)} connections"
    )
    assert refused > 0, "Redis was down while messages were sent: some must have been refused"
    assert all(recovered for recovered, _ in resumed)
