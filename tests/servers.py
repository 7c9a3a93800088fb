"""Servers the tests start for themselves, on free loopback ports in temporary
folders, stopped afterwards: a Redis Cluster of three masters, a lone Redis the
outage tests may kill, and a PostgreSQL primary with hot standbys.

Each start either succeeds within seconds or raises :class:`ServerError`;
the fixtures turn that into a test failure (never a skip).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "PostgresPair",
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


def _watchdog(directory: Path, cleanup: str) -> None:
    """Run ``cleanup`` (shell) if this process dies without removing ``directory``
    (killed by a timeout, say): servers of a dead test run must not outlive it.
    The watchdog ends by itself once ``directory`` is gone."""
    script = (
        f'while kill -0 {os.getpid()} 2>/dev/null && [ -d "{directory}" ]; do sleep 1; done; '
        f'if [ -d "{directory}" ]; then {cleanup}; rm -rf "{directory}"; fi'
    )
    subprocess.Popen(
        ["sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


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
        shutdowns = "; ".join(
            f"redis-cli -p {node.port} shutdown nosave >/dev/null 2>&1" for node in self.nodes
        )
        _watchdog(self.directory, shutdowns)
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


# ----------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The directory of the PostgreSQL server binaries: those on PATH, else
    ``pg_config --bindir``'s, else the ``pgserver`` package's."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    config = shutil.which("pg_config")
    if config:
        bindir = subprocess.run([config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(bindir.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise ServerError("no PostgreSQL server binaries (initdb) found") from None
    return Path(POSTGRES_BIN_PATH)


_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "shared_buffers": "16MB",
    "max_connections": "60",
    "fsync": "off",  # a throwaway server: durability is not under test
    "full_page_writes": "off",
    "wal_sender_timeout": "5s",
    "wal_receiver_status_interval": "1s",
    "log_min_messages": "warning",
}


class PostgresPair:
    """A throwaway PostgreSQL primary (``wal_level=replica``) and hot standbys made
    with ``pg_basebackup -R``, each on a free loopback port, run as ``postgres``
    when the tests run as root. ``stop()`` removes them."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="clonestore-replicas-"))
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self.primary_port = free_port()
        self.standbys: dict[int, Path] = {}
        runuser = "runuser -u postgres -- " if self.as_postgres else ""
        _watchdog(
            self.directory,
            f'for d in "{self.directory}"/*/; do [ -f "$d/postmaster.pid" ] && '
            f'{runuser}"{self.bin}/pg_ctl" -D "$d" -m immediate -w stop; done',
        )

    def _run(self, *args: str, timeout: float = 60) -> str:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise ServerError(f"{args[0]} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def _start(self, data: Path, port: int) -> None:
        log = data.parent / f"{data.name}.log"
        self._run(
            "pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", f"-p {port} -k {self.directory}", "start",
        )  # fmt: skip

    def start_primary(self) -> None:
        data = self.directory / "primary"
        self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in _SETTINGS.items())
        with open(data / "pg_hba.conf", "w", encoding="utf-8") as hba:
            hba.write("local all all trust\n")
            hba.write("host all all 127.0.0.1/32 trust\n")
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self._start(data, self.primary_port)

    def add_standby(self) -> int:
        """A new hot standby streaming from the primary; its port."""
        port = free_port()
        data = self.directory / f"standby-{port}"
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
            "-D", str(data), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        self._start(data, port)
        self.standbys[port] = data
        return port

    def stop_standby(self, port: int, mode: str = "immediate") -> None:
        """Stop a standby (``immediate``: as a crash would)."""
        self._run("pg_ctl", "-D", str(self.standbys[port]), "-m", mode, "-w", "stop")

    def restart_standby(self, port: int) -> None:
        self._start(self.standbys[port], port)

    def restart_primary(self) -> None:
        """Restart the primary (``fast``: connections are terminated, as in a real restart).
        Stop then start, not ``pg_ctl restart``, which would leave the server writing to
        this process's pipe (no ``-l``) and ``_run`` waiting for it to close."""
        data = self.directory / "primary"
        self._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        self._start(data, self.primary_port)

    def stop(self) -> None:
        for data in [*self.standbys.values(), self.directory / "primary"]:
            if (data / "postmaster.pid").exists():
                with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)
