"""A real Redis Cluster for the tests: three masters on free ports, made with ``redis-cli``."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from tests.support.live_server import free_port
from tests.support.redis_server import START_TIMEOUT, RedisServer, redis_server_path

MASTERS = 3


class RedisCluster:
    """``MASTERS`` ``redis-server`` processes joined into one cluster, no replicas, no
    persistence; each node keeps its folder, so it can be killed and started again
    with its slots."""

    def __init__(self, directory: Path) -> None:
        self.nodes: list[RedisServer] = []
        for number in range(MASTERS):
            folder = directory / f"node-{number}"
            folder.mkdir()
            # The cluster bus port is the node's port + 10000 unless told: too high for
            # most free ports.
            options: tuple[str, ...] = ("--cluster-enabled", "yes")
            options += ("--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()))
            self.nodes.append(RedisServer(folder, *options))

    @property
    def url(self) -> str:
        """What ``REDIS_URL`` says to reach it: any one node, as a cluster."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        """Start every node and join them; wait until the cluster serves every slot."""
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or str(Path(redis_server_path()).with_name("redis-cli"))
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
        )
        self.wait_until_ok()

    def wait_until_ok(self) -> None:
        """Wait until every node says the cluster is ``ok``."""
        deadline = time.monotonic() + START_TIMEOUT
        while not all(self._is_ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become ok")
            time.sleep(0.1)

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def node_of(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot."""
        slot = key_slot(key.encode())
        with redis.Redis(port=self.nodes[0].port) as client:
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == int(master[1]))
        raise LookupError(f"no node serves slot {slot}")

    @staticmethod
    def _is_ok(node: RedisServer) -> bool:
        try:
            with redis.Redis(port=node.port, decode_responses=True) as client:
                return bool(client.cluster("INFO")["cluster_state"] == "ok")
        except redis.RedisError:
            return False
