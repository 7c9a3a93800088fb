"""Behaviour specific to the sqlite:// backend (see clonestore/testing/contract/ for the rest)."""

from __future__ import annotations

import itertools
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from clonestore_peewee.sql._backend import ONE
from clonestore_peewee.sqlite._backend import DRIVER as sqlite3  # the driver the backend uses

import clonestore
from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    StorageUnavailable,
)
from clonestore.query import TRUE, Cond, OrderBy
from clonestore.records import TABLES
from clonestore.spi import AppendOnly, Column, TableSpec


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[clonestore.Store]:
    with clonestore.open(f"sqlite:///{db_path}") as s:
        yield s


def _user(store: clonestore.Store, n: int = 0, **fields: object) -> clonestore.User:
    values: dict[str, object] = {"email": f"user{n}@example.com", "name": f"User {n}"}
    return store.users.create(**{**values, **fields})


# ----------------------------------------------------------------------------- URLs and options


def test_relative_absolute_and_memory_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///rel.db is relative to the cwd, sqlite:////abs.db absolute, :memory: in memory."""
    monkeypatch.chdir(tmp_path)
    with clonestore.open("sqlite:///rel.db") as s:
        _user(s)
    assert (tmp_path / "rel.db").exists()
    with clonestore.open(f"sqlite:///{tmp_path / 'abs.db'}") as s:
        assert s.backend.path == str(tmp_path / "abs.db")
    with clonestore.open("sqlite:///:memory:") as s:
        assert s.health()["path"] == ":memory:"


def test_busy_timeout_from_url_or_keyword(db_path: Path) -> None:
    """busy_timeout comes from the URL query or a keyword (which wins), in seconds."""
    with clonestore.open(f"sqlite:///{db_path}?busy_timeout=2.5") as s:
        assert s.backend.busy_timeout == 2.5
    with clonestore.open(f"sqlite:///{db_path}?busy_timeout=2.5", busy_timeout=7) as s:
        assert s.backend.busy_timeout == 7.0


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("sqlite:///x.db?pool_size=3", {}),
        ("sqlite:///x.db", {"nonsense": 1}),
        ("sqlite:///x.db?busy_timeout=soon", {}),
        ("sqlite:///x.db", {"busy_timeout": -1}),
        ("sqlite:///x.db", {"synchronous": "sometimes"}),
        ("sqlite://host/x.db", {}),
    ],
)
def test_bad_options_are_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, options: dict[str, object]
) -> None:
    """Unknown options, bad values and hosts in the URL raise ConfigurationError."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError):
        clonestore.open(url, **options)


# ----------------------------------------------------------------------------- concurrency


def test_file_database_runs_in_wal_mode(store: clonestore.Store, db_path: Path) -> None:
    """File databases use WAL, so readers do not block the writer."""
    assert store.health()["journal_mode"] == "wal"
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_connections_cache_a_vector_chunk_of_each_metric(store: clonestore.Store) -> None:
    """A connection caches up to 64 MiB of pages: sqlite-vec writes each vector into a
    chunk of 1,024 per metric column (1.5 MB each at 384 dims), and with SQLite's
    default 2 MB cache the two columns' chunks evicted each other on every insert."""
    cache_size = store.backend.execute("PRAGMA cache_size", (), ONE)[0]
    assert cache_size == -65536


def test_memory_database_is_shared_by_threads() -> None:
    """sqlite:///:memory: is one database for every thread of the store."""
    with clonestore.open("sqlite:///:memory:") as s:
        created: list[str] = []

        def writer(n: int) -> None:
            created.append(_user(s, n).id)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(created) == 8
        assert {u.id for u in s.users.find_many()} == set(created)


def test_memory_databases_of_two_stores_are_separate() -> None:
    """Each sqlite:///:memory: store has its own database."""
    with clonestore.open("sqlite:///:memory:") as a, clonestore.open("sqlite:///:memory:") as b:
        _user(a)
        assert a.users.count() == 1
        assert b.users.count() == 0


@pytest.mark.parametrize("where", ["file", "memory"])
def test_concurrent_read_then_write_transactions_never_fail(db_path: Path, where: str) -> None:
    """Transactions that read then write, from many threads, all succeed (BEGIN IMMEDIATE)."""
    url = f"sqlite:///{db_path}" if where == "file" else "sqlite:///:memory:"
    with clonestore.open(url) as s:
        user = _user(s)
        session = s.sessions.create(user_id=user.id)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(15):
                    with s.transaction():
                        s.sessions.get(session.id)  # a read first: the lock-upgrade case
                        s.sessions.add_turn(session.id, llm_cost=Decimal("0.000001"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        final = s.sessions.get(session.id)
        assert final.total_turns == 90
        assert final.total_cost == Decimal("0.000090")


def test_writer_waits_busy_timeout_then_storage_unavailable(db_path: Path) -> None:
    """A writer blocked by another process's lock waits busy_timeout, then StorageUnavailable."""
    with clonestore.open(f"sqlite:///{db_path}", busy_timeout=0.3) as s:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match="busy_timeout"):
                _user(s)
            assert time.monotonic() - started >= 0.25
            assert s.users.count() == 0  # readers are not blocked (WAL)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        _user(s)  # and the store works again once the lock is gone
        assert s.users.count() == 1


def test_writer_succeeds_when_lock_is_released_within_busy_timeout(db_path: Path) -> None:
    """A writer waits for a lock held shorter than busy_timeout instead of failing."""
    with clonestore.open(f"sqlite:///{db_path}", busy_timeout=5) as s:
        blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: blocker.execute("COMMIT"))
        release.start()
        try:
            _user(s)
        finally:
            release.join()
            blocker.close()
        assert s.users.count() == 1


# ----------------------------------------------------------------------------- values


def test_json_round_trips_types_exactly(store: clonestore.Store) -> None:
    """JSON keeps int vs float, 1e16, 1e300, -0.0, nesting and unicode."""
    settings = {
        "int": 1,
        "float": 1.0,
        "big": 1e16,
        "huge": 1e300,
        "neg_zero": -0.0,
        "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
        "unicode": 'é 漢字 😀 \\ " \u2028',
        "max": 2**63 - 1,
    }
    user = _user(store, settings=settings)
    got = store.users.get(user.id).settings
    assert got == settings
    assert type(got["int"]) is int
    assert type(got["float"]) is float
    assert type(got["big"]) is float
    assert type(got["huge"]) is float
    assert math.copysign(1.0, got["neg_zero"]) == -1.0


def test_values_are_stored_in_ordered_storage_types(store: clonestore.Store, db_path: Path) -> None:
    """Datetimes and money are integers (microseconds, micro-units): they order and sum exactly."""
    user = _user(store)
    store.sessions.create(user_id=user.id)
    raw = sqlite3.connect(db_path)
    try:
        row = raw.execute(
            "SELECT typeof(created_at), typeof(total_cost), typeof(metadata) FROM sessions"
        ).fetchone()
    finally:
        raw.close()
    assert row == ("integer", "integer", "text")


def test_datetimes_come_back_aware_utc_with_microseconds_and_order(store: clonestore.Store) -> None:
    """Datetimes round-trip as aware UTC with microseconds, ordered across the epoch."""
    user = _user(store)
    times = [
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=UTC),
    ]
    for t in times:
        store.sessions.create(user_id=user.id, started_at=t)
    got = [s.started_at for s in store.sessions.find_many(order_by="started_at")]
    assert got == sorted(times)
    assert all(t.tzinfo is UTC for t in got)


def test_decimal_sums_are_exact(store: clonestore.Store) -> None:
    """Money sums are exact Decimals with six places."""
    user = _user(store)
    session = store.sessions.create(user_id=user.id)
    for _ in range(10):
        store.sessions.add_turn(session.id, llm_cost=Decimal("0.1"), tts_cost=Decimal("0.000001"))
    stats = store.sessions.user_statistics(user.id)
    assert stats.total_cost == Decimal("1.000010")
    assert str(stats.total_cost) == "1.000010"


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        ({"name__contains": "%"}, ["50% off"]),
        ({"name__contains": "_"}, ["snake_case"]),
        ({"name__contains": "\\"}, ["back\\slash"]),
        ({"name__contains": "abc"}, ["xabcx"]),
        ({"name__startswith": "ABC"}, ["ABC upper"]),
        ({"name__endswith": "_case"}, ["snake_case"]),
        ({"name__startswith": "5"}, ["50% off"]),
    ],
)
def test_text_operators_are_literal_and_case_sensitive(
    lookup: dict[str, str], expected: list[str]
) -> None:
    """contains/startswith/endswith treat % _ \\ literally and respect case (no LIKE)."""
    with clonestore.open("sqlite:///:memory:") as s:
        for n, name in enumerate(["50% off", "snake_case", "back\\slash", "xabcx", "ABC upper"]):
            _user(s, n, name=name)
        assert sorted(u.name for u in s.users.find_many(where=lookup)) == expected


def test_text_orders_by_code_point_and_nulls_last_ascending(store: clonestore.Store) -> None:
    """Text sorts by code point; NULLs sort last ascending and first descending."""
    user = _user(store)
    names = ["b", "B", "a", "Z", "é", "😀", "ä"]
    for name in names:
        store.voice_models.create(user_id=user.id, name=name, provider="p")
    got = [m.name for m in store.voice_models.find_many(order_by="name")]
    assert got == sorted(names)
    store.voice_models.update(store.voice_models.find_one(name="a").id, quality_score=0.5)
    ascending = [m.quality_score for m in store.voice_models.find_many(order_by="quality_score")]
    assert ascending[0] == 0.5
    assert ascending[1:] == [None] * 6
    descending = [m.quality_score for m in store.voice_models.find_many(order_by="-quality_score")]
    assert descending[-1] == 0.5
    assert descending[:-1] == [None] * 6


def test_long_in_lists_are_one_statement_shape(store: clonestore.Store) -> None:
    """in/not_in with long lists work (one JSON array parameter) and share one cached shape."""
    users = [_user(store, n) for n in range(30)]
    ids = [u.id for u in users]
    backend = store.backend
    assert len(store.users.find_many(where={"id__in": ids[:20]})) == 20
    shapes = len(backend.compiler.cache)
    assert len(store.users.find_many(where={"id__in": ids[5:30]})) == 25
    assert len(store.users.find_many(where={"id__not_in": ids[:25]})) == 5
    assert len(backend.compiler.cache) == shapes + 1  # not_in added one, in none


# ----------------------------------------------------------------------------- SPI level


def test_statement_shapes_are_cached_not_rebuilt(store: clonestore.Store) -> None:
    """Repeating a query with other values reuses its cached SQL (limits past a page's
    are bound, so they share one shape too)."""
    _user(store)
    backend, spec = store.backend, TABLES["users"]
    order = [OrderBy("name"), OrderBy("id")]
    backend.select(spec, Cond("name", "eq", "a"), order, limit=5)
    backend.select(spec, Cond("name", "eq", "a"), order, limit=2000)
    size = len(backend.compiler.cache)
    for n in range(20):
        backend.select(spec, Cond("name", "eq", f"n{n}"), order, 5)
        backend.select(spec, Cond("name", "eq", f"n{n}"), order, 2000 + n)
    assert len(backend.compiler.cache) == size


def test_a_page_limit_is_written_into_the_sql(store: clonestore.Store) -> None:
    """A page's LIMIT (up to the largest page's 1,001 rows) is in the statement's text,
    not bound (SQLite 3.51 runs a keyset page about 12% slower with ``LIMIT ?``); a
    larger limit is bound."""
    for n in range(3):
        _user(store, n)
    backend: Any = store.backend
    sent: list[tuple[str, Any]] = []
    execute = backend.execute

    def recording(sql: str, params: Any, mode: int) -> Any:
        sent.append((sql, params))
        return execute(sql, params, mode)

    backend.execute = recording
    try:
        page = store.users.page(size=2)
        found = store.users.find_many(limit=5000)
    finally:
        backend.execute = execute
    assert [len(page.items), len(found)] == [2, 3]
    (page_sql, page_params), (many_sql, many_params) = sent
    assert (page_sql[-8:], list(page_params)) == (" LIMIT 3", [])
    assert (many_sql[-8:], list(many_params)) == (" LIMIT ?", [5000])


def test_aggregates_without_rows_and_grouped(store: clonestore.Store) -> None:
    """sum/min/max over no rows are None; groups come ordered by their values."""
    from clonestore.spi import Aggregate

    backend, spec = store.backend, TABLES["users"]
    (row,) = backend.aggregate(
        spec, TRUE, (), {"n": Aggregate("count"), "v": Aggregate("sum", "version")}
    )
    assert row == {"n": 0, "v": None}
    for n, tier in enumerate(["pro", "free", "pro", "enterprise"]):
        _user(store, n, subscription_tier=tier)
    grouped = backend.aggregate(
        spec,
        TRUE,
        ("subscription_tier",),
        {"n": Aggregate("count"), "first": Aggregate("min", "created_at")},
    )
    assert [(g["subscription_tier"], g["n"]) for g in grouped] == [
        ("enterprise", 1),
        ("free", 1),
        ("pro", 2),
    ]
    assert all(isinstance(g["first"], datetime) for g in grouped)


# ----------------------------------------------------------------------------- errors and lifecycle


def test_duplicate_id_and_unique_value_raise_already_exists(store: clonestore.Store) -> None:
    """A duplicate primary key or live unique value is AlreadyExists, keeping the driver error."""
    user = _user(store)
    spec = TABLES["users"]
    row = store.backend.get(spec, user.id)
    with pytest.raises(AlreadyExists) as excinfo:
        store.backend.insert(spec, row)
    assert isinstance(excinfo.value.orig, sqlite3.IntegrityError)
    with pytest.raises(AlreadyExists):
        store.users.create(email="USER0@example.com", name="again")


def test_unopenable_file_is_storage_unavailable(tmp_path: Path) -> None:
    """A database file that cannot be opened fails with StorageUnavailable."""
    with pytest.raises(StorageUnavailable):
        clonestore.open(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")


def test_close_is_idempotent_and_later_calls_fail_cleanly(db_path: Path) -> None:
    """close() twice is fine; calls after close raise a ClonestoreError, not a driver error."""
    s = clonestore.open(f"sqlite:///{db_path}")
    user = _user(s)
    backend = s.backend
    s.close()
    s.close()
    backend.close()
    with pytest.raises(ClonestoreError):
        backend.get(TABLES["users"], user.id)
    assert backend.health()["ok"] is False


def test_connections_of_finished_threads_are_released(db_path: Path) -> None:
    """Per-thread connections do not pile up when threads come and go."""
    with clonestore.open(f"sqlite:///{db_path}") as s:
        for _ in range(20):
            t = threading.Thread(target=lambda: s.users.count())
            t.start()
            t.join()
        import gc

        gc.collect()
        assert len(s.backend.database.opened) <= 2


def test_health_reports_version_and_latency(store: clonestore.Store) -> None:
    """health() gives ok, backend, latency and the SQLite version."""
    health = store.health()
    assert health["ok"] is True
    assert health["backend"] == "sqlite"
    assert health["latency_ms"] >= 0
    assert health["server_version"] == sqlite3.sqlite_version


def test_pages_read_stored_values_exactly_around_the_column_fast_paths(
    store: clonestore.Store, db_path: Path
) -> None:
    """Pages and find_many (read a column at a time: datetimes by fromtimestamp from 1970
    to 2096, JSON by the C scanner) give every stored value exactly: datetimes at and past
    the fast path's bounds, JSON written by another program with spaces around it; a
    stored text that is not one JSON value is a BackendError."""
    bounds = [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2096, 10, 2, 7, 6, 39, 999999, tzinfo=UTC),
        datetime(2096, 10, 2, 7, 6, 40, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    for n in range(len(bounds)):
        _user(store, n, settings={"n": n, "f": 1.0, "big": 2**63 - 1})
    ids = [u.id for u in store.users.find_many()]
    conn = sqlite3.connect(str(db_path))
    for id, at in zip(ids, bounds, strict=True):  # times no call can give: set in the file
        micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        conn.execute("UPDATE users SET created_at = ?, updated_at = ? WHERE id = ?",
                     (micros, micros, id))  # fmt: skip
    conn.commit()
    got = store.users.page(order_by="created_at", size=10).items
    assert [u.created_at for u in got] == sorted(bounds)
    assert [u.updated_at for u in got] == sorted(bounds)
    fast = store.users.find_many(created_at__gte=bounds[0], created_at__lt=bounds[3])
    assert sorted(u.created_at for u in fast) == bounds[:3]
    conn.execute("UPDATE users SET settings = ' {\"a\": [1, 2.0]} ' WHERE id = ?", (ids[0],))
    conn.commit()
    by_id = {u.id: u for u in store.users.find_many()}
    assert by_id[ids[0]].settings == {"a": [1, 2.0]}
    assert by_id[ids[1]].settings == {"n": 1, "f": 1.0, "big": 2**63 - 1}
    assert type(by_id[ids[1]].settings["f"]) is float
    conn.execute("UPDATE users SET settings = '1 2' WHERE id = ?", (ids[0],))
    conn.commit()
    conn.close()
    with pytest.raises(BackendError, match="cannot be read"):
        store.users.page(size=10)


def test_rows_equal_memory_rows_for_every_kind() -> None:
    """A row read back equals the row written, kind by kind, as on memory://."""
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rows = []
    for url in ("memory://", "sqlite:///:memory:"):
        numbers = itertools.count(1)

        def new_id(numbers: Iterator[int] = numbers) -> str:
            return str(uuid.UUID(int=next(numbers)))

        with clonestore.open(url, clock=lambda: when, id_factory=new_id) as s:
            user = _user(s, personality_traits=["b", "a", "b"], settings={"x": [1.5, 2]})
            s.memories.add(user.id, "m", [0.1, -0.0, 1e-300], importance=1.0)
            rows.append(
                (
                    s.backend.get(TABLES["users"], user.id),
                    s.backend.select(TABLES["memories"], TRUE),
                )
            )
    assert rows[0] == rows[1]
    assert timedelta(0) == rows[1][0]["created_at"] - when


def test_closing_refreshes_planner_statistics_of_tables_used(db_path: Path) -> None:
    """A store's connections run PRAGMA optimize as they close: a table queried where the
    planner had a choice of indexes has statistics afterwards."""
    store = clonestore.open(f"sqlite:///{db_path}")
    users = [store.users.create(email=f"u{n}@example.com", name="U") for n in range(10)]
    for user in users:
        for _ in range(3):
            store.documents.create(user_id=user.id, filename="notes.txt")
    store.documents.find_many(where={"user_id": users[3].id, "status": "pending"})
    store.close()
    conn = sqlite3.connect(db_path)
    try:
        stats = conn.execute("SELECT tbl, idx FROM sqlite_stat1").fetchall()
    finally:
        conn.close()
    assert ("documents", "ix_documents_user_id_created_at_id_live") in stats


# ----------------------------------------------------------------------------- table options

_LEDGER = TableSpec(
    name="file_ledger",
    columns=(
        Column(name="id", kind="id"),
        Column(name="seq", kind="int"),
        Column(name="body", kind="text"),
        Column(name="note", kind="text", nullable=True),
    ),
    append_only=AppendOnly(erasable=("note",), purge_by="seq"),
)


def test_append_only_triggers_refuse_other_programs_and_follow_the_spec(
    store: clonestore.Store, db_path: Path
) -> None:
    """Triggers refuse other connections' UPDATE/DELETE but erasure, and follow a changed spec."""
    backend = store.backend
    backend.create_tables([_LEDGER])
    for seq in (1, 2):
        backend.insert(_LEDGER, {"id": str(uuid.uuid4()), "seq": seq, "body": "b", "note": "n"})
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        for statement in (
            "UPDATE file_ledger SET body = 'x' WHERE seq = 1",
            "DELETE FROM file_ledger WHERE seq = 1",
            "DELETE FROM file_ledger",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                other.execute(statement)
        other.execute("UPDATE file_ledger SET note = NULL WHERE seq = 1")
        backend.create_tables([attrs.evolve(_LEDGER, append_only=AppendOnly(purge_by="seq"))])
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            other.execute("UPDATE file_ledger SET note = NULL WHERE seq = 2")
        assert other.execute("SELECT count(*) FROM file_ledger").fetchone() == (2,)
    finally:
        other.close()
    assert backend.purge(_LEDGER, 1) == 1
    assert [r["seq"] for r in backend.select(_LEDGER, TRUE)] == [2]
