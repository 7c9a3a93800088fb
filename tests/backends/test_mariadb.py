"""Behaviour specific to the mariadb:// backend (the contract matrix covers the rest):
URLs and options, set-up errors, lost connections, deadlocks, pool limits, migrations,
and the DDL its dialect writes. Against the session's throwaway MariaDB database."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest
from clonestore_peewee.sql._modes import NONE

import clonestore
from clonestore import AlreadyExists, ConfigurationError, Conflict, StorageUnavailable
from clonestore.query import TRUE, Cond, OrderBy
from clonestore.spi import Column, TableSpec, Unique
from tests.servers import free_port


def _admin(url: str) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
        database=parts.path.lstrip("/"), autocommit=True,
    )  # fmt: skip


def _with(url: str, *, netloc: str | None = None, path: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, netloc or parts.netloc, path or parts.path, parts.query, "")
    )


@pytest.fixture
def store(mariadb_url: str) -> Iterator[clonestore.Store]:
    with clonestore.open(mariadb_url) as s:
        yield s


def _user(store: clonestore.Store) -> clonestore.User:
    return store.users.create(email=f"{uuid.uuid4().hex}@example.com", name="M")


# ----------------------------------------------------------------------------- URLs and options


def test_options_from_url_or_keyword(mariadb_url: str) -> None:
    """pool_size and pool_timeout come from the URL query or keywords (which win)."""
    with clonestore.open(f"{mariadb_url}?pool_size=3&pool_timeout=2", pool_size=4) as s:
        assert (s.backend.pool_size, s.backend.pool_timeout) == (4, 2.0)
        assert s.health()["pool"]["size"] == 4
    with pytest.raises(ConfigurationError, match="known options: connect_timeout"):
        clonestore.open(mariadb_url, busy_timeout=1)


def test_mysql_urls_are_refused_with_the_reason() -> None:
    """mysql:// is refused: only MariaDB is tested."""
    with pytest.raises(ConfigurationError, match=r"mysql:// is not supported.*mariadb://"):
        clonestore.open("mysql://root@127.0.0.1:3306/db")


def test_a_url_without_database_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no database name"):
        clonestore.open("mariadb://root@127.0.0.1:3306/")


def test_a_missing_database_is_a_configuration_error(mariadb_url: str) -> None:
    missing = _with(mariadb_url, path=f"/nope_{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError, match=r"Unknown database.*create the database"):
        clonestore.open(missing)


def test_a_refused_login_is_a_configuration_error_without_the_password(
    mariadb_url: str,
) -> None:
    host = urlsplit(mariadb_url).netloc.rpartition("@")[2]
    url = _with(mariadb_url, netloc=f"nobody_here:s3cret-pw@{host}")
    with pytest.raises(ConfigurationError, match="refused the login") as caught:
        clonestore.open(url)
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_an_unreachable_server_is_storage_unavailable() -> None:
    url = f"mariadb://root:s3cret-pw@127.0.0.1:{free_port()}/db"
    with pytest.raises(StorageUnavailable, match="cannot be reached") as caught:
        clonestore.open(url, connect_timeout=1)
    assert "s3cret-pw" not in str(caught.value)


# ----------------------------------------------------------------------------- connections


def _kill_others(mariadb_url: str) -> int:
    admin = _admin(mariadb_url)
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            )
            ids = [row[0] for row in cur.fetchall()]
            for pid in ids:
                cur.execute(f"KILL {int(pid)}")
        return len(ids)
    finally:
        admin.close()


def test_a_killed_connection_fails_one_call_then_the_store_reconnects(
    store: clonestore.Store, mariadb_url: str
) -> None:
    """A connection killed on the server fails at most the next call, with
    StorageUnavailable; the calls after it reconnect by themselves."""
    user = _user(store)
    assert _kill_others(mariadb_url) >= 1
    with contextlib.suppress(StorageUnavailable):
        store.users.get(user.id)
    assert store.users.get(user.id).id == user.id
    assert store.health()["ok"] is True


def test_an_exhausted_pool_is_storage_unavailable(mariadb_url: str) -> None:
    """With every pooled connection held by a transaction, a call waits pool_timeout,
    then fails with StorageUnavailable naming the options to raise."""
    with clonestore.open(mariadb_url, pool_size=1, pool_timeout=0.2) as s:
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with s.transaction():
                s.users.count()
                held.set()
                release.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert held.wait(10)
            with pytest.raises(StorageUnavailable, match="pool_size / pool_timeout"):
                s.users.count()
        finally:
            release.set()
            thread.join(10)


# ----------------------------------------------------------------------------- deadlocks

_PAIRS = TableSpec(
    name="mariadb_deadlock_pairs",
    columns=(Column(name="id", kind="id"), Column(name="n", kind="int")),
)


def test_a_deadlock_ends_the_victims_whole_transaction(store: clonestore.Store) -> None:
    """Two transactions locking two rows in opposite orders: the victim gets Conflict,
    every later statement of its transaction too, and none of its writes survive
    (InnoDB rolled them back); the winner commits."""
    backend = store.backend
    backend.create_tables([_PAIRS])
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    backend.insert_many(_PAIRS, [{"id": a, "n": 0}, {"id": b, "n": 0}])
    marker = str(uuid.uuid4())
    both_locked = threading.Barrier(2, timeout=20)
    outcome: dict[str, str] = {}

    def run(name: str, first: str, second: str) -> None:
        try:
            with backend.transaction():
                backend.insert(_PAIRS, {"id": marker if name == "one" else str(uuid.uuid4()),
                                        "n": 7})  # fmt: skip
                backend.update(_PAIRS, Cond("id", "eq", first), {"n": 1})
                both_locked.wait()
                try:
                    backend.update(_PAIRS, Cond("id", "eq", second), {"n": 2})
                except Conflict:
                    outcome[name] = "victim"
                    with pytest.raises(Conflict, match="rolled back by a deadlock"):
                        backend.count(_PAIRS, Cond("n", "eq", 7))
                    return  # leaving the block normally must not commit anything
            outcome[name] = "committed"
        except Conflict:
            outcome[name] = "refused at commit"

    threads = [
        threading.Thread(target=run, args=("one", a, b)),
        threading.Thread(target=run, args=("two", b, a)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcome.values()) == ["committed", "refused at commit"], outcome
    assert backend.count(_PAIRS, Cond("n", "eq", 7)) == 1
    victim = next(name for name, what in outcome.items() if what != "committed")
    assert (backend.get(_PAIRS, marker) is None) == (victim == "one")


# ----------------------------------------------------------------------------- schema


def test_migrations_are_applied_and_plans_refused(store: clonestore.Store) -> None:
    """The core's migrations run on MariaDB; a plan (which needs transactional DDL to
    roll back) is refused, naming why."""
    status = store.backend.migration_status()
    assert status
    assert all(m["applied"] for m in status)
    with pytest.raises(ConfigurationError, match="commits every schema change"):
        store.backend.migration_plan()


def test_scoped_uniques_are_generated_columns_and_text_is_code_point_exact(
    store: clonestore.Store, mariadb_url: str
) -> None:
    """Partial unique constraints become a scope column in the unique key; text columns
    are utf8mb4_nopad_bin; long index names are shortened to MariaDB's 64."""
    admin = _admin(mariadb_url)
    try:
        with admin.cursor() as cur:
            cur.execute("SHOW CREATE TABLE users")
            ddl = cur.fetchone()[1]
            cur.execute(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE()"
            )
            names = [row[0] for row in cur.fetchall()]
    finally:
        admin.close()
    assert "`uq_users_email_key_scope` tinyint(4) GENERATED ALWAYS AS" in ddl
    assert "UNIQUE KEY `uq_users_email_key` (`email_key`,`uq_users_email_key_scope`)" in ddl
    assert "`email_key` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin" in ddl
    assert max(len(name) for name in names) <= 64


_SEATS = TableSpec(
    name="mariadb_seats",
    columns=(
        Column(name="id", kind="id"),
        Column(name="owner", kind="key"),
        Column(name="seat", kind="int"),
    ),
    unique=(Unique(("owner", "seat")), Unique(("seat",))),
)


def test_already_exists_names_the_columns_whatever_the_server_language(
    store: clonestore.Store,
) -> None:
    """The violated constraint is found without reading the server's message: in German
    (``Doppelter Eintrag ... für Schlüssel``) AlreadyExists still names its columns, and
    the caller's transaction goes on after the look-up."""
    backend = store.backend
    backend.create_tables([_SEATS])
    backend.delete(_SEATS, TRUE)
    ann = {"id": "a", "owner": "ann", "seat": 1}
    backend.insert(_SEATS, ann)
    twins = [{"id": "d", "owner": "dee", "seat": 3}, {"id": "e", "owner": "eve", "seat": 3}]
    caught: list[tuple[str, ...]] = []
    with backend.transaction():  # one connection: the language holds for every statement
        backend.execute("SET lc_messages = 'de_DE'", (), NONE)
        try:
            for write in (
                lambda: backend.insert(_SEATS, {**ann, "owner": "bob", "seat": 2}),
                lambda: backend.insert(_SEATS, {"id": "b", "owner": "ann", "seat": 1}),
                lambda: backend.insert_many(_SEATS, [{"id": "c", "owner": "cy", "seat": 1}]),
                lambda: backend.insert_many(_SEATS, twins),
            ):
                with pytest.raises(AlreadyExists) as error:
                    write()
                assert "Doppelter Eintrag" in str(error.value.orig)
                caught.append(error.value.columns)
            backend.insert(_SEATS, {"id": "f", "owner": "fay", "seat": 4})
        finally:
            backend.execute("SET lc_messages = 'en_US'", (), NONE)
    assert caught == [("id",), ("owner", "seat"), ("seat",), ("seat",)]
    assert [row["id"] for row in backend.select(_SEATS, TRUE, (OrderBy("id"),))] == ["a", "f"]
