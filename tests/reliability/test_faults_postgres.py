"""Faults on the real PostgreSQL server: killed connections, a restart, an exhausted pool,
a statement timeout. Calls fail only with clonestore errors, the store recovers without
being reopened, every acknowledged write survives and none is half-applied."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        pytest.fail("restart tests need a local cluster managed by pg_ctlcluster", pytrace=False)
    return versions[-1], "main"


def _pg_ctl(action: str) -> Callable[[], None]:
    version, name = _cluster()

    def run() -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
                       check=True, timeout=60, capture_output=True)
    return run


@pytest.mark.restarts_server
def test_server_restart_mid_workload(store_factory: StoreFactory) -> None:
    """The server restarted under 4 writers: the same store recovers, no acknowledged write lost."""
    store = store_factory(pool_size=6, pool_timeout=5, connect_timeout=2)
    try:
        with workload(store) as ledger:
            time.sleep(0.5)
            _pg_ctl("restart")()
            time.sleep(1.0)
    finally:
        status = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True)
        if "online" not in status.stdout:
            _pg_ctl("start")()
    assert set(ledger.errors) <= {"StorageUnavailable", "Conflict"}
    recovered(store, ledger)
