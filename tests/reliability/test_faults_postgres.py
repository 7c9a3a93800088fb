"""Faults on the real PostgreSQL server: killed connections, a restart, an exhausted pool,
a statement timeout. Calls fail only with clonestore errors, the store recovers without
being reopened, every acknowledged write survives and none is half-applied."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import pytest

import clonestore
from bench.soak import Ledger, kill_connections, run_workload, verify
from clonestore import StorageUnavailable
from clonestore.testing import StoreFactory


@pytest.fixture
def clonestore_url(postgres_url: str) -> str:
    """These tests run on PostgreSQL only."""
    return postgres_url


@pytest.fixture
def app_name() -> str:
    """An application_name that singles out one store's connections."""
    return f"clonestore-faults-{uuid.uuid4().hex[:8]}"


@contextmanager
def workload(store: clonestore.Store, threads: int = 4) -> Iterator[Ledger]:
    """``threads`` workers running the mixed workload for the duration of the block."""
    ledger, stop = Ledger(), threading.Event()
    workers = [
        threading.Thread(target=run_workload, args=(store, ledger, stop, seed))
        for seed in range(threads)
    ]
    for worker in workers:
        worker.start()
    try:
        yield ledger
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)


def recovered(store: clonestore.Store, ledger: Ledger) -> None:
    """The store works again without reopening; nothing acknowledged is lost or half-applied."""
    deadline = time.monotonic() + 20
    while True:
        try:
            store.users.create(email=f"after-{uuid.uuid4().hex}@example.com", name="after")
            break
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert not ledger.escaped, f"non-clonestore exceptions escaped: {ledger.escaped[:3]!r}"
    assert ledger.turns, "the workload made no progress"
    assert verify(store, ledger) == []


def test_killed_connections_mid_workload(store_factory: StoreFactory, app_name: str,
                                         postgres_url: str) -> None:
    """Backends terminated repeatedly under 4 writers: only clonestore errors, no lost writes."""
    store = store_factory(application_name=app_name, pool_size=6, pool_timeout=5)
    killed = 0
    with workload(store) as ledger:
        for _ in range(15):
            time.sleep(0.15)
            killed += kill_connections(postgres_url, app_name)
    assert killed > 0
    assert ledger.errors, "killing connections never hurt a call: the test did not bite"
    assert set(ledger.errors) <= {"StorageUnavailable", "Conflict"}
    recovered(store, ledger)


def test_exhausted_pool_is_storage_unavailable(store_factory: StoreFactory) -> None:
    """With every connection held, a call fails with StorageUnavailable after pool_timeout."""
    store = store_factory(pool_size=1, pool_timeout=0.5)
    user = store.users.create(email="pool@example.com", name="p")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            store.users.get(user.id)
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="pool"):
            store.users.get(user.id)
        assert 0.4 <= time.monotonic() - started < 5
    finally:
        release.set()
        holder.join(10)
    assert store.users.get(user.id).id == user.id


@pytest.fixture
def admin(postgres_url: str) -> Iterator[Any]:
    """A separate connection to the test database, outside the store."""
    conn = psycopg2.connect(postgres_url, connect_timeout=5)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def test_statement_timeout_fails_cleanly(store_factory: StoreFactory, admin: Any) -> None:
    """A statement stuck behind a lock times out as StorageUnavailable and leaves nothing half
    done; the same store works once the lock is gone."""
    store = store_factory(statement_timeout=0.3)
    user = store.users.create(email="slow@example.com", name="s")
    session = store.sessions.create(user_id=user.id)
    store.sessions.add_turn(session.id, llm_latency_ms=3)
    with admin.cursor() as cur:
        cur.execute("LOCK TABLE turns IN ACCESS EXCLUSIVE MODE")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="timed out"):
        store.sessions.add_turn(session.id, llm_latency_ms=100)
    assert time.monotonic() - started < 5
    admin.rollback()
    got = store.sessions.get(session.id)
    assert (got.total_turns, got.total_latency_ms) == (1, 3)  # the session's increment rolled back
    store.sessions.add_turn(session.id, llm_latency_ms=4)
    assert store.sessions.get(session.id).total_latency_ms == 7


@pytest.fixture
def own_server() -> Iterator[Any]:
    """A throwaway PostgreSQL of this test's own (``tests/servers.py``), never the shared
    server: restarting that would cut every other test's connections (and did, in CI, when
    another xdist worker was using it)."""
    from tests.servers import PostgresPair, ServerError

    pair = PostgresPair()
    try:
        pair.start_primary()
    except (ServerError, OSError, subprocess.TimeoutExpired) as exc:
        pair.stop()
        pytest.fail(f"could not start a throwaway PostgreSQL: {exc}", pytrace=False)
    try:
        yield pair
    finally:
        pair.stop()


def test_server_restart_mid_workload(own_server: Any) -> None:
    """The server restarted under 4 writers: the same store recovers, no acknowledged write lost."""
    store = clonestore.open(own_server.url(own_server.primary_port), pool_size=6, pool_timeout=5,
                            connect_timeout=2)
    try:
        store.migrate()
        with workload(store) as ledger:
            time.sleep(0.5)
            own_server.restart_primary()
            time.sleep(1.0)
        assert set(ledger.errors) <= {"StorageUnavailable", "Conflict"}
        recovered(store, ledger)
    finally:
        store.close()
