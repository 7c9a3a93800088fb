"""Read replicas on real PostgreSQL streaming replication: a throwaway primary and two
hot standbys (``postgres_replicas``), never the machine's server.

Routing is proven by pausing a standby's replay (``pg_wal_replay_pause()``): a read
that returns the old value came from a standby, a fresh one from the primary (or a
standby that has replayed the write).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

import clonestore
from clonestore import ConfigurationError
from tests.servers import wait_for


def _sql(url: str, statement: str) -> list:
    import psycopg2

    conn = psycopg2.connect(url.split("?")[0])
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture
def pair(postgres_replicas, replicated_url) -> Iterator:
    """The replicated pair, with both standbys replaying again after the test."""
    yield postgres_replicas
    for port in postgres_replicas.standbys:
        url = _standby_url(replicated_url, port)
        with contextlib.suppress(Exception):  # a standby the test stopped is restarted by it
            _sql(url, "SELECT pg_wal_replay_resume()")


def _standby_url(replicated_url: str, port: int) -> str:
    parts = urlsplit(replicated_url)
    return f"postgresql://postgres@127.0.0.1:{port}{parts.path}"


def _primary_url(replicated_url: str) -> str:
    return replicated_url.split("?")[0]


def _pause(url: str, port: int) -> None:
    _sql(_standby_url(url, port), "SELECT pg_wal_replay_pause()")


def _resume(url: str, port: int) -> None:
    _sql(_standby_url(url, port), "SELECT pg_wal_replay_resume()")


def _open(url: str, **options):
    return clonestore.open(url, replica_check_interval=0.05, **options)


def _caught_up(store) -> bool:
    """Every standby has replayed all the primary has written (asked of the servers
    themselves), and the store's monitor has seen them since."""
    backend = store.backend
    primary = backend.primary.url.split("?")[0]
    (current,) = _sql(primary, "SELECT pg_current_wal_lsn() - '0/0'")[0]
    for replica in backend.replicas:
        (replayed,) = _sql(replica.backend.url, "SELECT pg_last_wal_replay_lsn() - '0/0'")[0]
        if replayed < current:
            return False
    time.sleep(0.15)  # a few monitor checks
    return all(r["healthy"] for r in store.health()["replicas"])


def _freeze_standbys(store, pair, url: str) -> None:
    """Once both standbys hold everything written so far, pause their replay: from
    then on they answer with what they hold."""
    wait_for(lambda: _caught_up(store), 10, "standbys catching up")
    for port in pair.standbys:
        _pause(url, port)


def _reads(store) -> list[int]:
    return [r["reads"] for r in store.health()["replicas"]]


@pytest.fixture
def writer(replicated_url):
    """A store on the primary alone: its writes are 'someone else's'."""
    store = clonestore.open(_primary_url(replicated_url))
    yield store
    store.close()


def test_reads_outside_transactions_go_to_replicas(pair, replicated_url, writer):
    """With both standbys paused, a read returns the value they hold (a replica served
    it); inside a transaction the same read sees the primary's."""
    store = _open(replicated_url.split("&replica_check")[0], read_your_writes=False)
    try:
        user = writer.users.create(email="route@example.com", name="before")
        _freeze_standbys(store, pair, replicated_url)
        writer.users.update(user.id, name="after")
        assert {store.users.get(user.id).name for _ in range(6)} == {"before"}
        assert all(n >= 3 for n in _reads(store))  # both standbys served, in turn
        with store.transaction():
            assert store.users.get(user.id).name == "after"
    finally:
        store.close()


def test_read_your_writes_sees_every_own_write(pair, replicated_url):
    """Default policy: a read right after the store's own write always sees it (zero stale
    reads over many writes), and reads still reach the replicas once they caught up."""
    store = _open(replicated_url)
    try:
        user = store.users.create(email="ryw@example.com", name="0")
        stale = 0
        served = 0
        for i in range(1, 60):
            store.users.update(user.id, name=str(i))
            for _ in range(3):
                stale += store.users.get(user.id).name != str(i)
            if i % 10 == 0:  # keep reading until a replica has replayed the write
                before = sum(_reads(store))
                deadline = time.monotonic() + 10
                while sum(_reads(store)) == before and time.monotonic() < deadline:
                    stale += store.users.get(user.id).name != str(i)
                served += sum(_reads(store)) > before
        assert stale == 0
        assert served == 5
    finally:
        store.close()


def test_read_your_writes_waits_for_a_paused_replica(pair, replicated_url):
    """With the standbys paused, the store's reads after its write go to the primary:
    fresh, and no replica read is counted."""
    store = _open(replicated_url)
    try:
        user = store.users.create(email="paused@example.com", name="old")
        _freeze_standbys(store, pair, replicated_url)
        before = _reads(store)
        store.users.update(user.id, name="new")
        time.sleep(0.2)  # several monitor checks: the replicas stay behind
        assert [store.users.get(user.id).name for _ in range(5)] == ["new"] * 5
        assert _reads(store) == before
    finally:
        store.close()


def test_context_policy_tracks_each_context(pair, replicated_url):
    """read_your_writes='context': a request's own writes are read back fresh; another
    request's reads may still go to a replica."""
    store = _open(replicated_url, read_your_writes="context")
    try:
        user = store.users.create(email="ctx@example.com", name="old")
        _freeze_standbys(store, pair, replicated_url)
        with store.context(request_id="writer"):
            store.users.update(user.id, name="new")
            assert store.users.get(user.id).name == "new"
        with store.context(request_id="other"):
            assert store.users.get(user.id).name == "old"  # a replica, allowed here
        assert store.users.get(user.id).name == "new"  # outside contexts: the store's
    finally:
        store.close()


def test_time_bound_policy(pair, replicated_url):
    """read_your_writes=seconds: after a write, reads go to the primary for that long."""
    bound = 1.5  # long enough that the read right after the write is inside it under load
    store = _open(replicated_url, read_your_writes=bound)
    try:
        user = store.users.create(email="bound@example.com", name="old")
        _freeze_standbys(store, pair, replicated_url)
        writing = time.monotonic()
        store.users.update(user.id, name="new")
        written = time.monotonic()
        name = store.users.get(user.id).name
        if time.monotonic() - writing < bound:  # (it always is but on a stalled machine)
            assert name == "new"
        time.sleep(max(0.0, bound + 0.2 - (time.monotonic() - written)))
        assert store.users.get(user.id).name == "old"  # the bound passed: a replica
    finally:
        store.close()


def test_lagging_replica_is_skipped_and_rechecked(pair, replicated_url, writer):
    """A standby more than max_replica_lag behind serves no read (health reports its lag);
    once it replays again it serves again."""
    lagging, other = list(pair.standbys)
    store = _open(replicated_url, read_your_writes=False, max_replica_lag=0.3)
    try:
        user = writer.users.create(email="lag@example.com", name="old")
        wait_for(lambda: _caught_up(store), 10, "catching up")
        _pause(replicated_url, lagging)
        _pause(replicated_url, other)
        writer.users.update(user.id, name="new")
        _resume(replicated_url, other)
        wait_for(
            lambda: not store.health()["replicas"][0]["healthy"], 10, "the lag to be noticed"
        )
        health = store.health()["replicas"]
        assert health[0]["lag_seconds"] > 0.3
        assert health[0]["lag_bytes"] > 0
        assert health[1]["healthy"]
        wait_for(lambda: store.health()["replicas"][1]["lag_bytes"] == 0, 10, "the other")
        assert {store.users.get(user.id).name for _ in range(10)} == {"new"}
        _resume(replicated_url, lagging)
        wait_for(lambda: _caught_up(store), 10, "the lagging standby to return")
        before = _reads(store)[0]
        for _ in range(4):
            store.users.get(user.id)
        assert _reads(store)[0] > before
    finally:
        store.close()


def test_no_healthy_replica_reads_the_primary(pair, replicated_url, writer):
    """With every standby too far behind, reads go to the primary (and are fresh)."""
    store = _open(replicated_url, read_your_writes=False, max_replica_lag=0.2)
    try:
        user = writer.users.create(email="none@example.com", name="old")
        _freeze_standbys(store, pair, replicated_url)
        writer.users.update(user.id, name="new")
        wait_for(
            lambda: not any(r["healthy"] for r in store.health()["replicas"]), 10, "lag"
        )
        assert store.users.get(user.id).name == "new"
    finally:
        store.close()


def test_killed_replica_fails_no_call(pair, replicated_url):
    """Killing a standby while 4 threads read fails no call; it is skipped, reported,
    and serves again once restarted."""
    victim = list(pair.standbys)[1]
    store = _open(replicated_url, read_your_writes=False)
    errors: list[BaseException] = []
    done = 0
    stop = threading.Event()
    try:
        user = store.users.create(email="kill@example.com", name="K")
        wait_for(lambda: _caught_up(store), 10, "catching up")

        def read() -> None:
            nonlocal done
            while not stop.is_set():
                try:
                    store.users.get(user.id)
                    store.users.find_many(where={"name": "K"}, limit=5)
                    done += 1
                except BaseException as exc:
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        pair.stop_standby(victim)
        time.sleep(0.7)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert done > 0
        replicas = store.health()["replicas"]
        assert not replicas[1]["ok"]
        assert "error" in replicas[1]
        pair.restart_standby(victim)
        wait_for(lambda: store.health()["replicas"][1]["healthy"], 20, "the restarted standby")
        before = _reads(store)[1]
        for _ in range(4):
            store.users.get(user.id)
        assert _reads(store)[1] > before
    finally:
        stop.set()
        store.close()


def test_replicas_as_keywords_and_in_the_url_agree(pair, replicated_url):
    """replicas=[url] (whole URLs) and ?replica=host:port name the same standbys;
    a bad policy is a ConfigurationError."""
    primary = _primary_url(replicated_url)
    path = urlsplit(primary).path
    urls = [f"postgresql://postgres@127.0.0.1:{p}{path}" for p in pair.standbys]
    with clonestore.open(primary, replicas=urls) as store:
        from_keywords = [r["url"] for r in store.health()["replicas"]]
    with clonestore.open(replicated_url) as store:
        from_url = [r["url"] for r in store.health()["replicas"]]
        assert store.health()["ok"]
    assert from_keywords == from_url == urls
    with pytest.raises(ConfigurationError, match="read_your_writes"):
        clonestore.open(primary, replicas=urls, read_your_writes="sometimes")
