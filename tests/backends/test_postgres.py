"""Behaviour specific to the postgresql:// backend: pooling, reconnection, errors, secrets."""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import psycopg2
import pytest
from clonestore_peewee.dialects import ONE

import clonestore
from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    Conflict,
    StorageUnavailable,
)
from clonestore.query import TRUE, Cond
from clonestore.records import TABLES
from clonestore.spi import AppendOnly, Column, Increment, TableSpec, capabilities_of
from clonestore.testing import Inbox

PASSWORD = "hunter2-" + "s3cret"


def _with(url: str, *, database: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = (userinfo.split(":", 1)[0] if userinfo else "") or "postgres"
        netloc = f"{user}:{password}@{host}"
    path = "/" + database if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def _admin(url: str) -> Any:
    conn = psycopg2.connect(url, connect_timeout=10)
    conn.autocommit = True
    return conn


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database of its own, dropped afterwards."""
    name = f"cs_pg_{secrets.token_hex(5)}"
    admin = _admin(postgres_server_url)
    try:
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    try:
        yield _with(postgres_server_url, database=name)
    finally:
        admin = _admin(postgres_server_url)
        try:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()


@pytest.fixture
def store(database_url: str) -> Iterator[clonestore.Store]:
    with clonestore.open(database_url) as s:
        yield s


def _user(store: clonestore.Store, n: int = 0, **fields: object) -> clonestore.User:
    values: dict[str, object] = {"email": f"user{n}@example.com", "name": f"User {n}"}
    return store.users.create(**{**values, **fields})


def _terminate(admin_url: str, application_name: str) -> int:
    """pg_terminate_backend every connection of ``application_name``; wait until gone."""
    admin = _admin(admin_url)
    try:
        cur = admin.cursor()
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (application_name,),
        )
        killed: int = cur.fetchone()[0]
        for _ in range(100):
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            )
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.05)
        return killed
    finally:
        admin.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- options


def test_pool_options_from_keywords_and_url(database_url: str) -> None:
    """pool_size, pool_timeout and connect_timeout come from keywords or the URL query."""
    with clonestore.open(database_url + "?pool_size=3&pool_timeout=2.5") as s:
        assert s.health()["pool"]["size"] == 3
        assert s.backend.pool_timeout == 2.5
    with clonestore.open(database_url + "?pool_size=3", pool_size=4, connect_timeout=2) as s:
        assert s.health()["pool"]["size"] == 4


@pytest.mark.parametrize(
    ("query", "options"),
    [
        ("?pool_sise=3", {}),
        ("", {"busy_timeout": 1}),
        ("?pool_size=zero", {}),
        ("", {"pool_size": 0}),
        ("", {"pool_timeout": -1}),
    ],
)
def test_unknown_or_bad_options_are_configuration_errors(
    database_url: str, query: str, options: dict[str, object]
) -> None:
    """Unknown options and bad values raise ConfigurationError before connecting."""
    with pytest.raises(ConfigurationError):
        clonestore.open(database_url + query, **options)


def test_postgres_scheme_is_an_alias(database_url: str) -> None:
    """postgres:// URLs open the same backend as postgresql://."""
    with clonestore.open(database_url.replace("postgresql://", "postgres://", 1)) as s:
        assert s.health()["backend"] == "postgresql"
        _user(s)


# ----------------------------------------------------------------------------- health and lifecycle


def test_health_reports_server_and_pool(store: clonestore.Store) -> None:
    """health() gives ok, backend, latency, server version and pool use."""
    _user(store)
    health = store.health()
    assert health["ok"] is True
    assert health["backend"] == "postgresql"
    assert health["latency_ms"] >= 0
    assert health["server_version"][:2].isdigit()
    assert health["pool"]["size"] == 10
    assert health["pool"]["in_use"] == 0
    assert health["pool"]["idle"] >= 1


def test_health_never_raises_when_the_server_is_down() -> None:
    """health() on an unreachable server reports ok False instead of raising."""
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    s = clonestore.open(url, create_tables=False, connect_timeout=1)
    try:
        health = s.health()
    finally:
        s.close()
    assert health["ok"] is False
    assert health["backend"] == "postgresql"
    assert "error" in health


def test_close_is_idempotent_and_later_calls_fail_cleanly(database_url: str) -> None:
    """close() twice is fine; calls after close raise a ClonestoreError."""
    s = clonestore.open(database_url)
    backend = s.backend
    s.close()
    s.close()
    with pytest.raises(ClonestoreError):
        backend.get(TABLES["users"], "00000000-0000-0000-0000-000000000000")
    assert backend.health()["ok"] is False


# ----------------------------------------------------------------------------- connections


def test_cannot_connect_is_storage_unavailable() -> None:
    """A server that refuses connections gives StorageUnavailable, never a driver error."""
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    with pytest.raises(StorageUnavailable) as excinfo:
        clonestore.open(url, connect_timeout=1)
    assert isinstance(excinfo.value.orig, psycopg2.OperationalError)


def test_reconnects_after_connections_are_terminated(
    database_url: str, postgres_server_url: str
) -> None:
    """After pg_terminate_backend a call fails with StorageUnavailable, later ones succeed."""
    app = f"cs_test_{secrets.token_hex(4)}"
    with clonestore.open(database_url, application_name=app) as s:
        user = _user(s)
        assert _terminate(postgres_server_url, app) >= 1
        with pytest.raises(StorageUnavailable) as excinfo:
            s.users.get(user.id)
        assert not isinstance(excinfo.value, BackendError)
        assert s.users.get(user.id) == user  # the same store reconnects by itself
        _user(s, 1)
        assert s.users.count() == 2
        assert s.health()["ok"] is True


def test_connection_lost_inside_a_transaction(database_url: str, postgres_server_url: str) -> None:
    """A connection dropped mid-transaction fails it cleanly; committed data is kept."""
    app = f"cs_test_{secrets.token_hex(4)}"
    with clonestore.open(database_url, application_name=app) as s:
        kept = _user(s)

        def doomed() -> None:
            with s.transaction():
                _user(s, 1)
                _terminate(postgres_server_url, app)
                _user(s, 2)

        with pytest.raises(StorageUnavailable):
            doomed()
        assert s.in_transaction is False
        assert [u.id for u in s.users.find_many()] == [kept.id]
        _user(s, 3)
        assert s.users.count() == 2


def test_all_idle_connections_are_renewed_after_a_restart(
    database_url: str, postgres_server_url: str
) -> None:
    """After every pooled connection dies, one failed call is enough: the rest reconnect."""
    app = f"cs_test_{secrets.token_hex(4)}"
    with clonestore.open(database_url, application_name=app, pool_size=4) as s:
        _user(s)
        barrier = threading.Barrier(4)

        def hold() -> None:  # put four connections in the pool
            with s.transaction():
                s.users.count()
                barrier.wait(timeout=10)

        threads = [threading.Thread(target=hold) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert s.health()["pool"]["idle"] == 4
        _terminate(postgres_server_url, app)
        failures = 0
        for _ in range(4):
            try:
                s.users.count()
            except StorageUnavailable:
                failures += 1
        assert failures == 1


@contextlib.contextmanager
def _connection_held(s: clonestore.Store) -> Iterator[threading.Event]:
    """Another thread holds one of the store's connections (in a transaction) until the
    event given is set."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with s.transaction():
            s.users.count()
            holding.set()
            release.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        yield release
    finally:
        release.set()
        holder.join()


def test_pool_exhaustion_is_storage_unavailable_after_pool_timeout(database_url: str) -> None:
    """With every connection taken, a call waits pool_timeout then raises StorageUnavailable."""
    with clonestore.open(database_url, pool_size=1, pool_timeout=0.3) as s:
        _user(s)
        with _connection_held(s):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match="pool"):
                s.users.count()
            assert 0.25 <= time.monotonic() - started < 5
        assert s.users.count() == 1


def test_many_threads_share_a_small_pool_exactly(database_url: str) -> None:
    """More threads than connections all finish, and atomic increments lose nothing."""
    with clonestore.open(database_url, pool_size=2, pool_timeout=30) as s:
        user = _user(s)
        session = s.sessions.create(user_id=user.id)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(10):
                    s.sessions.add_turn(session.id, llm_cost=Decimal("0.000001"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        final = s.sessions.get(session.id)
        assert final.total_turns == 80
        assert final.total_cost == Decimal("0.000080")
        assert s.health()["pool"]["in_use"] == 0


def _backend_pids(url: str, app: str) -> set[int]:
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,))
            return {pid for (pid,) in cur.fetchall()}
    finally:
        conn.close()


def test_many_threads_never_open_more_than_pool_size_connections(
    database_url: str, postgres_server_url: str
) -> None:
    """Eight threads on a pool of two: the server never sees more than two connections of
    the store, and the pool counts them exactly."""
    app = f"cs_test_{secrets.token_hex(4)}"
    with clonestore.open(database_url, application_name=app, pool_size=2, pool_timeout=30) as s:
        user = _user(s)
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(len(_backend_pids(postgres_server_url, app)))

        def worker() -> None:
            for _ in range(25):
                s.users.get(user.id)
                with s.transaction():
                    s.users.update(user.id, name="busy")

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        watcher.join()
        assert seen
        assert max(seen) <= 2
        pool = s.health()["pool"]
        assert pool["in_use"] == 0
        assert pool["idle"] == len(_backend_pids(postgres_server_url, app)) <= 2


def test_a_waiting_call_gets_the_connection_given_back(database_url: str) -> None:
    """With the only connection held, a call waits and proceeds as soon as it is given back
    (well before pool_timeout), on the same connection."""
    with clonestore.open(database_url, pool_size=1, pool_timeout=20) as s:
        _user(s)
        with _connection_held(s) as release:
            threading.Timer(0.2, release.set).start()
            started = time.monotonic()
            assert s.users.count() == 1
            assert 0.15 <= time.monotonic() - started < 10
        assert s.health()["pool"] == {"size": 1, "in_use": 0, "idle": 1}


def test_stale_connections_are_renewed(database_url: str, postgres_server_url: str) -> None:
    """A connection older than stale_timeout is closed and replaced, not reused.

    The age counts from when the connection was opened; on a loaded machine opening the
    store and writing a user can take longer than a short timeout, so the "still young"
    check uses a timeout of a few seconds and the clock read just before it."""
    app = f"cs_test_{secrets.token_hex(4)}"
    timeout = 3.0
    opened = time.monotonic()
    with clonestore.open(database_url, application_name=app, stale_timeout=timeout) as s:
        _user(s)
        first = _backend_pids(postgres_server_url, app)
        seen = time.monotonic()  # the connection was opened before this
        assert len(first) == 1
        young = time.monotonic() - opened < timeout - 0.5
        assert s.users.count() == 1
        if young:  # opened less than timeout - 0.5 s ago: the same connection
            assert _backend_pids(postgres_server_url, app) == first
        time.sleep(max(0.0, timeout + 0.2 - (time.monotonic() - seen)))
        assert s.users.count() == 1
        second = _backend_pids(postgres_server_url, app)
        assert len(second) == 1
        assert second != first


def test_a_transaction_left_open_is_rolled_back_before_reuse(database_url: str) -> None:
    """A connection given back inside a transaction (a BEGIN that never ended) is rolled
    back first: the next caller sees none of it."""
    with clonestore.open(database_url, pool_size=1) as s:
        backend: Any = s.backend
        # One call outside transaction() that leaves its transaction open (mode NONE).
        backend.execute("BEGIN; CREATE TABLE left_open (x int)", None, 4)
        assert s.health()["pool"]["idle"] == 1
        assert backend.execute("SELECT to_regclass('left_open')", (), 1) == (None,)


# ----------------------------------------------------------------------------- errors


def test_unique_violation_is_already_exists_with_orig(store: clonestore.Store) -> None:
    """A unique violation is AlreadyExists; the driver's exception is kept as orig."""
    _user(store)
    with pytest.raises(AlreadyExists) as excinfo:
        store.users.create(email="USER0@example.com", name="again")
    assert isinstance(excinfo.value.orig, psycopg2.errors.UniqueViolation)
    assert "user0@example.com" not in str(excinfo.value)  # no values in messages


def test_deadlock_is_conflict(store: clonestore.Store) -> None:
    """Two transactions locking rows in opposite orders: the loser gets Conflict."""
    a, b = _user(store, 1), _user(store, 2)
    spec = TABLES["users"]
    backend = store.backend
    both_locked_one = threading.Barrier(2)
    results: list[BaseException | None] = []

    def run(first: str, second: str) -> None:
        try:
            with backend.transaction():
                backend.update(spec, Cond("id", "eq", first), {"version": Increment(1)})
                both_locked_one.wait(timeout=10)
                backend.update(spec, Cond("id", "eq", second), {"version": Increment(1)})
            results.append(None)
        except ClonestoreError as exc:
            results.append(exc)

    threads = [
        threading.Thread(target=run, args=(a.id, b.id)),
        threading.Thread(target=run, args=(b.id, a.id)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
    conflict = next(r for r in results if r is not None)
    assert isinstance(conflict, Conflict)
    assert isinstance(conflict.orig, psycopg2.errors.DeadlockDetected)


def test_other_failures_are_backend_errors_with_orig(store: clonestore.Store) -> None:
    """Any other driver failure is BackendError keeping the driver's exception."""
    missing = TableSpec(name="no_such_table", columns=TABLES["users"].columns)
    with pytest.raises(BackendError) as excinfo:
        store.backend.select(missing, TRUE)
    assert isinstance(excinfo.value.orig, psycopg2.errors.UndefinedTable)


def test_statement_timeout_is_storage_unavailable(database_url: str) -> None:
    """A statement cut by statement_timeout is StorageUnavailable (retryable)."""
    with clonestore.open(database_url, statement_timeout=0.2) as s:
        with pytest.raises(StorageUnavailable, match="timed out"):
            s.backend.execute("SELECT pg_sleep(2)", (), 4)
        assert s.users.count() == 0


# ----------------------------------------------------------------------------- secrets


def test_passwords_never_appear_in_reprs_messages_or_logs(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The DSN password is redacted from reprs, health, errors and log records."""
    caplog.set_level(logging.DEBUG)
    url = _with(database_url, password=PASSWORD)  # trust auth accepts any password
    with clonestore.open(url) as s:
        _user(s)
        texts = [repr(s), repr(s.backend), str(s.health())]
        with pytest.raises(AlreadyExists) as dup:
            _user(s)
        texts.append(str(dup.value))
        with pytest.raises(ConfigurationError) as bad:
            clonestore.open(url + "?pool_size=lots")
        texts.append(str(bad.value))
    down = _with(f"postgresql://postgres@127.0.0.1:{_closed_port()}/x", password=PASSWORD)
    with pytest.raises(StorageUnavailable) as unreachable:
        clonestore.open(down, connect_timeout=1)
    texts.append(str(unreachable.value))
    texts.extend(record.getMessage() for record in caplog.records)
    assert "***" in repr(s)
    for text in texts:
        assert PASSWORD not in text


# ----------------------------------------------------------------------------- values


def test_json_keeps_number_types_exactly(store: clonestore.Store) -> None:
    """JSON is stored as text (json, not jsonb): 1e16, 1e300 stay floats, -0.0 keeps its sign."""
    settings = {"int": 1, "float": 1.0, "big": 1e16, "huge": 1e300, "neg": -0.0, "u": "é😀"}
    user = _user(store, settings=settings)
    got = store.users.get(user.id).settings
    assert got == settings
    assert [type(got[k]) for k in ("int", "float", "big", "huge")] == [int, float, float, float]
    assert math.copysign(1.0, got["neg"]) == -1.0


def test_text_orders_by_code_point_not_locale(store: clonestore.Store) -> None:
    """Text columns are COLLATE "C": "B" < "a" < "é", whatever the database locale."""
    user = _user(store)
    for name in ["a", "é", "B", "😀", "Z"]:
        store.voice_models.create(user_id=user.id, name=name, provider="p")
    assert [m.name for m in store.voice_models.find_many(order_by="name")] == sorted(
        ["a", "é", "B", "😀", "Z"]
    )


def test_kinds_come_back_as_their_python_values(store: clonestore.Store) -> None:
    """ids are str, datetimes aware UTC, money Decimal with six places, lists in order."""
    user = _user(store, personality_traits=["b", "a", "b"])
    row = store.backend.get(TABLES["users"], user.id)
    assert type(row["id"]) is str
    assert row["id"] == user.id
    assert row["created_at"].tzinfo is UTC
    assert row["personality_traits"] == ["b", "a", "b"]
    session = store.sessions.create(user_id=user.id, started_at=datetime(1, 1, 1, tzinfo=UTC))
    store.sessions.add_turn(session.id, llm_cost=Decimal("1.5"))
    got = store.sessions.get(session.id)
    assert str(got.total_cost) == "1.500000"
    assert got.started_at == datetime(1, 1, 1, tzinfo=UTC)
    stats = store.sessions.user_statistics(user.id)
    assert type(stats.total_turns) is int
    assert stats.total_turns == 1


def test_upsert_is_one_atomic_statement_under_concurrency(store: clonestore.Store) -> None:
    """Concurrent upserts on one key insert once and count every increment."""
    from clonestore import Column, Unique

    spec = TableSpec(
        name="counters",
        columns=(
            Column(name="id", kind="id"),
            Column(name="key", kind="key"),
            Column(name="hits", kind="int"),
        ),
        unique=(Unique(("key",)),),
    )
    backend = store.backend
    backend.create_tables([spec])
    ids = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1000))
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(25):
            with lock:
                new_id = next(ids)
            row = {"id": new_id, "key": "k", "hits": 1}
            backend.upsert(spec, ["key"], row, {"hits": Increment(1)})

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = backend.select(spec, TRUE)
    assert len(rows) == 1
    assert rows[0]["hits"] == 100


# ----------------------------------------------------------------------------- listen_notify


def test_listen_notify_is_declared_and_delivers(store: clonestore.Store) -> None:
    """The backend offers listen_notify; a notification reaches this process's listener."""
    from clonestore.spi import ListenNotify

    backend = store.backend
    assert "listen_notify" in capabilities_of(backend)
    assert isinstance(backend, ListenNotify)
    inbox = Inbox()
    stop = backend.listen("cs_test", inbox)
    try:
        backend.notify("cs_test", "hello é")
        backend.notify("other_channel", "not for us")
        assert inbox.wait_for(1) == ["hello é"]
    finally:
        stop()


def test_notify_in_a_transaction_is_sent_on_commit_only(store: clonestore.Store) -> None:
    """Inside a transaction a message is delivered at commit, and never after a rollback."""
    backend = store.backend
    inbox = Inbox()
    stop = backend.listen("cs_tx", inbox)

    def rolled_back() -> None:
        with store.transaction():
            backend.notify("cs_tx", "rolled back")
            raise RuntimeError

    try:
        with pytest.raises(RuntimeError):
            rolled_back()
        with store.transaction():
            backend.notify("cs_tx", "committed")
            time.sleep(0.3)
            assert inbox.messages == []  # not before the commit
        assert inbox.wait_for(1) == ["committed"]
        time.sleep(0.2)
        assert inbox.messages == ["committed"]
    finally:
        stop()


def test_listener_reports_none_after_reconnecting(
    database_url: str, postgres_server_url: str
) -> None:
    """When the listening connection drops, the listener says None, then hears again."""
    app = f"cs_test_{secrets.token_hex(4)}"
    with clonestore.open(database_url, application_name=app) as s:
        inbox = Inbox()
        stop = s.backend.listen("cs_reconnect", inbox)
        try:
            _terminate(postgres_server_url, app)
            assert inbox.wait_for(1) == [None]
            deadline = time.monotonic() + 10
            while len(inbox.messages) < 2 and time.monotonic() < deadline:
                # The pool's connections were terminated too: the first send may fail.
                with contextlib.suppress(StorageUnavailable):
                    s.backend.notify("cs_reconnect", "again")
                time.sleep(0.1)
            assert inbox.messages[1] == "again"
        finally:
            stop()


def test_stopped_listener_hears_nothing_and_payloads_are_bounded(store: clonestore.Store) -> None:
    """After stop() nothing is delivered; payloads over 7,000 bytes are refused."""
    backend = store.backend
    inbox = Inbox()
    stop = backend.listen("cs_stop", inbox)
    stop()
    stop()
    backend.notify("cs_stop", "late")
    time.sleep(0.3)
    assert inbox.messages == []
    with pytest.raises(clonestore.ValidationError):
        backend.notify("cs_stop", "x" * 7001)


def test_a_timed_out_statement_keeps_its_connection(database_url: str) -> None:
    """A statement timeout does not throw away the pooled connections."""
    with clonestore.open(database_url, statement_timeout=0.2) as s:
        s.users.count()
        idle = s.health()["pool"]["idle"]
        with pytest.raises(StorageUnavailable):
            s.backend.execute("SELECT pg_sleep(2)", (), 4)
        assert s.health()["pool"]["idle"] == idle


# ----------------------------------------------------------------------------- table options

_LEDGER = TableSpec(
    name="pg_ledger",
    columns=(
        Column(name="id", kind="id"),
        Column(name="seq", kind="int"),
        Column(name="body", kind="text"),
        Column(name="note", kind="text", nullable=True),
    ),
    append_only=AppendOnly(erasable=("note",), purge_by="seq"),
)


def test_table_options_follow_the_spec(store: clonestore.Store, database_url: str) -> None:
    """ephemeral is UNLOGGED and back; the append_only trigger refuses others, follows the spec."""
    backend = store.backend
    ephemeral = attrs.evolve(_LEDGER, name="pg_scratch", ephemeral=True, append_only=None)
    backend.create_tables([_LEDGER, ephemeral])
    for seq in (1, 2):
        backend.insert(_LEDGER, {"id": _uid(seq), "seq": seq, "body": "b", "note": "n"})
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:

            def persistence(table: str) -> str:
                cur.execute("SELECT relpersistence FROM pg_class WHERE relname = %s", (table,))
                return str(cur.fetchone()[0])

            assert (persistence("pg_scratch"), persistence("pg_ledger")) == ("u", "p")
            backend.create_tables([attrs.evolve(ephemeral, ephemeral=False)])
            assert persistence("pg_scratch") == "p"
            for statement in (
                "UPDATE pg_ledger SET body = 'x' WHERE seq = 1",
                "DELETE FROM pg_ledger WHERE seq = 1",
                "TRUNCATE pg_ledger",
            ):
                with pytest.raises(psycopg2.Error, match="append-only"):
                    cur.execute(statement)
            cur.execute("UPDATE pg_ledger SET note = NULL WHERE seq = 1")
            backend.create_tables([attrs.evolve(_LEDGER, append_only=AppendOnly(purge_by="seq"))])
            with pytest.raises(psycopg2.Error, match="append-only"):
                cur.execute("UPDATE pg_ledger SET note = NULL WHERE seq = 2")
            with pytest.raises(psycopg2.Error, match="append-only"):
                cur.execute("DELETE FROM pg_ledger WHERE seq <= 1")
    finally:
        conn.close()
    assert backend.purge(_LEDGER, 1) == 1
    assert [r["seq"] for r in backend.select(_LEDGER, TRUE)] == [2]


def _uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _plans(url: str, statements: list[tuple[str, Any]]) -> list[str]:
    """Each statement's plan (JSON text), sequential scans switched off so that a plan
    with one shows a missing index whatever the row counts."""
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute("ANALYZE memories; SET enable_seqscan = off")
            plans = []
            for sql, params in statements:
                cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                plans.append(str(cur.fetchone()[0]))
            return plans
    finally:
        conn.close()


def test_metadata_lookups_read_an_index_not_every_owners_rows(
    store: clonestore.Store, database_url: str
) -> None:
    """A JSON equality lookup on memories' metadata across owners (find_many, nearest) is
    answered through the GIN index on (metadata::jsonb), and one owner's filtered
    similar() through an index too: no statement scans every owner's memories."""
    users = [_user(store, n) for n in range(20)]
    store.memories.create_many(
        {"user_id": u.id, "content": "m", "embedding": [1.0, i], "metadata": {"kind": f"k{i}"}}
        for u in users
        for i in range(30)
    )
    calls = {
        "find_many": lambda: store.memories.find_many(where={"metadata__kind": "k3"}),
        "nearest": lambda: store.memories.nearest([1.0, 0.0], where={"metadata__kind": "k3"}),
        "similar": lambda: store.memories.similar(
            users[1].id, [1.0, 0.0], where={"metadata__kind": "k3"}
        ),
    }
    backend: Any = store.backend
    original = backend.execute
    original_sent = backend.sent_vectors  # the ids and vectors, by binary COPY of a SELECT
    for name, call in calls.items():
        recorded: list[tuple[str, Any]] = []

        def execute(sql: str, params: Any, mode: int, recorded: list[Any] = recorded) -> Any:
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                recorded.append((sql, params))
            return original(sql, params, mode)

        def sent_vectors(sql: str, params: Any, recorded: list[Any] = recorded) -> Any:
            recorded.append((sql, params))
            return original_sent(sql, params)

        backend.execute = execute
        backend.sent_vectors = sent_vectors
        try:
            found = call()
        finally:
            backend.execute = original
            del backend.sent_vectors
        assert found, f"{name} found nothing: the lookup is not exercised"
        plans = _plans(database_url, recorded)
        assert plans, f"{name} sent no query"
        assert not [p for p in plans if "Seq Scan" in p and "memories" in p], (name, plans)
        if name != "similar":
            assert any("ix_memories_metadata_gin" in p for p in plans), (name, plans)


# ----------------------------------------------------------------------------- Prisma's URL options


def _schema_tables(url: str, schema: str) -> set[str]:
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
            return {name for (name,) in cur.fetchall()}
    finally:
        conn.close()


def test_two_schemas_in_one_database_are_isolated(database_url: str) -> None:
    """?schema=NAME (as the original's URLs have it) puts every table and migration in that
    schema, created if missing, and every pooled connection reads and writes there: two
    stores on two schemas of one database share nothing, and public stays empty."""
    with (
        clonestore.open(database_url + "?schema=tenant_a&pool_size=3") as a,
        clonestore.open(database_url + "?schema=tenant_b&pool_size=3") as b,
    ):
        assert {m["name"] for m in a.migration_status() if m["applied"]} == {
            m["name"] for m in b.migration_status() if m["applied"]
        }
        a_tables = _schema_tables(database_url, "tenant_a")
        assert set(TABLES) | {"clonestore_migrations"} <= a_tables
        assert _schema_tables(database_url, "tenant_b") == a_tables
        assert _schema_tables(database_url, "public") == set()
        ada = a.users.create(id="u1", email="ada@example.com", name="Ada")
        grace = b.users.create(id="u1", email="ada@example.com", name="Grace")

        def read_many(store: clonestore.Store, expected: clonestore.User) -> None:
            for _ in range(20):
                assert store.users.get("u1") == expected
                assert store.users.count() == 1

        threads = [threading.Thread(target=read_many, args=p) for p in [(a, ada), (b, grace)] * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        a.memories.add("u1", "only in a", [1.0, 0.0])
        assert b.memories.count() == 0
        assert [m.memory.content for m in a.memories.similar("u1", [1.0, 0.0])] == ["only in a"]
        assert b.memories.similar("u1", [1.0, 0.0]) == []
    with clonestore.open(database_url + "?schema=tenant_a") as again:
        assert again.users.get("u1") == ada
        assert again.migrate() == []


def test_schema_reaches_every_pooled_connection(database_url: str) -> None:
    """Each connection of the pool, opened while others are held, works in the schema."""
    with clonestore.open(database_url, schema="tenant_x", pool_size=3, pool_timeout=30) as s:
        backend: Any = s.backend
        seen: list[str] = []
        barrier = threading.Barrier(3)

        def check() -> None:
            with s.transaction():
                barrier.wait(timeout=30)  # three connections held at once
                (schema,) = backend.execute("SELECT current_schema()", (), ONE)
                seen.append(schema)

        threads = [threading.Thread(target=check) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert seen == ["tenant_x"] * 3
        assert s.health()["pool"]["idle"] == 3


def test_connection_limit_is_the_pool_size(database_url: str) -> None:
    """connection_limit (Prisma's name) sets the pool's size; given with a different
    pool_size it is a ConfigurationError; a bad schema name is one too."""
    with clonestore.open(database_url + "?connection_limit=4&schema=public") as s:
        assert s.health()["pool"]["size"] == 4
    with clonestore.open(database_url + "?connection_limit=4", pool_size=4) as s:
        assert s.health()["pool"]["size"] == 4
    with pytest.raises(ConfigurationError, match="connection_limit"):
        clonestore.open(database_url + "?connection_limit=4&pool_size=5")
    for bad in ('a"b', "a b", "", "x" * 64, "a,b"):
        with pytest.raises(ConfigurationError, match="schema"):
            clonestore.open(database_url, schema=bad)


def test_schema_under_open_async(database_url: str) -> None:
    """open_async honours ?schema too: its tables and rows are in that schema only."""
    import asyncio

    async def main() -> int:
        async with clonestore.open_async(database_url + "?schema=tenant_async") as s:
            await s.users.create(id="u", email="ada@example.com", name="Ada")
            return await s.users.count()

    assert asyncio.run(main()) == 1
    assert "users" in _schema_tables(database_url, "tenant_async")
    with clonestore.open(database_url + "?schema=tenant_async") as s:
        assert s.users.get("u").name == "Ada"
    assert "users" not in _schema_tables(database_url, "public")


def test_begin_travels_with_the_first_statement(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A transaction's BEGIN is sent with its first statement (one round trip), one that
    runs no statement sends neither BEGIN nor COMMIT, and one whose first statement fails
    at the server still rolls back whole."""
    with clonestore.open(database_url, log_queries=True) as store:
        ada = store.users.create(email="ada@example.com", name="Ada")
        with caplog.at_level(logging.DEBUG, logger="clonestore.sql"):
            caplog.clear()
            with store.transaction():
                pass
            assert caplog.messages == []
            with store.transaction():
                store.users.update(ada.id, name="Ada L.")
                store.users.create(email="grace@example.com", name="Grace")
            sent = [m.split(": ", 1)[1] for m in caplog.messages]
        # The log shows what the store asked for; BEGIN went out with the first of it.
        assert not any(s.startswith("BEGIN") for s in sent)
        assert sent[-1].startswith("COMMIT")
        with pytest.raises(clonestore.AlreadyExists), store.transaction():
            store.users.create(email="ada@example.com", name="Again")

        def update_then_fail() -> None:
            with store.transaction():
                store.users.update(ada.id, name="Never")
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            update_then_fail()
        assert store.users.get(ada.id).name == "Ada L."
        assert store.users.count() == 2
