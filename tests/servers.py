"""Servers the tests start for themselves, on free loopback ports in temporary
folders, stopped afterwards: a Redis Cluster of three masters, a lone Redis the
outage tests may kill, and a PostgreSQL primary with hot standbys.

Each start either succeeds within seconds or raises :class:`ServerError`;
the fixtures turn that into a test failure (never a skip).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "RedisCluster",
    "RedisServer",
    "ServerError",
    "delete_prefixed",
    "free_port",
    "wait_for",
]


class ServerError(RuntimeError):
    """A test server could not start."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, bus: bool = False) -> int:
    """A loopback port nobody listens on (and, with ``bus``, its Redis Cluster bus
    port, ``port + 10000``, too)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if bus and (port + 10000 > 65535 or not _port_free(port + 10000)):
            continue
        return port
    raise ServerError("no free loopback port")


def wait_for(ready: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``ready()`` until it is true, or raise ServerError after ``seconds``."""
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise ServerError(f"{what} not ready after {seconds}s" + (f": {last}" if last else ""))


def _need(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise ServerError(f"{binary} is not installed")
    return found


# ----------------------------------------------------------------------------- Redis


class RedisServer:
    """One ``redis-server`` on a free port (``cluster``: as a cluster node)."""

    def __init__(self, directory: Path, port: int | None = None, *, cluster: bool = False) -> None:
        self.port = port or free_port(bus=cluster)
        self.directory = directory
        self.cluster = cluster
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            _need("redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / f"redis-{self.port}.log"),
        ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(self.ping, 10, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(f"redis-server exited: {self.process.stderr.read().decode()!r}")  # type: ignore[union-attr]
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        """Kill the server at once (as a crash would)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class RedisCluster:
    """Three masters, no replicas, on free loopback ports in a temporary folder."""

    def __init__(self, masters: int = 3) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="clonestore-redis-cluster-"))
        self.nodes = [RedisServer(self.directory, cluster=True) for _ in range(masters)]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            nodes = [f"127.0.0.1:{node.port}" for node in self.nodes]
            create = [_need("redis-cli"), "--cluster", "create", *nodes]
            created = subprocess.run(
                [*create, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if created.returncode != 0:
                raise ServerError(f"redis-cli --cluster create failed: {created.stdout!r}")
            wait_for(self._ok, 20, "Redis Cluster")
        except BaseException:
            self.stop()
            raise
        return self

    def _ok(self) -> bool:
        for node in self.nodes:
            info = subprocess.run(
                [_need("redis-cli"), "-p", str(node.port), "cluster", "info"],
                capture_output=True,
                timeout=10,
                check=False,
            ).stdout
            if b"cluster_state:ok" not in info:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def delete_prefixed(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (and only those) on a Redis or a cluster."""
    import redis
    import redis.cluster

    if url.startswith("redis+cluster://"):
        client: redis.Redis | redis.cluster.RedisCluster = redis.cluster.RedisCluster.from_url(
            "redis://" + url.split("://", 1)[1]
        )
    else:
        client = redis.Redis.from_url(url)
    try:
        for key in list(client.scan_iter(match=prefix + "*", count=1000)):
            client.delete(key)
    finally:
        client.close()
