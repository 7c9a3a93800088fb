"""Schema migrations on SQLite and PostgreSQL, and the ``clonestore`` command."""

from __future__ import annotations

import ast
import importlib
import os
import secrets
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from clonestore_peewee.sql._migration_runner import HISTORY_TABLE, migrations_directory
from clonestore_peewee.sql._models import build_models
from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

import clonestore
from clonestore import Column, TableSpec, Unique, hookimpl
from clonestore.records import SYSTEM_TABLES, TABLES

MIGRATIONS = sorted(p.stem for p in Path(migrations_directory()).glob("[0-9]*.py"))


def migrations_on(url: str) -> list[str]:
    """The core migrations that concern the URL's engine (all but those whose ``ENGINES``
    leave it out, as 0004_pgvector does SQLite and MariaDB)."""
    engine = {"postgres": "postgresql"}.get(url.split(":", 1)[0], url.split(":", 1)[0])
    return [
        name for name in MIGRATIONS
        if engine in getattr(
            importlib.import_module(f"clonestore_peewee.migrations.{name}"), "ENGINES", (engine,)
        )
    ]  # fmt: skip
PASSWORD = "tr0ub4dor-" + "pw"


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database on each SQL engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        yield from _fresh_postgres(request.getfixturevalue("postgres_server_url"))


def _fresh_postgres(server_url: str) -> Iterator[str]:
    name = f"cs_mig_{secrets.token_hex(5)}"
    admin = psycopg2.connect(server_url, connect_timeout=10)
    admin.autocommit = True
    try:
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(server_url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _tables(database: Any) -> set[str]:
    return set(database.get_tables())


def _columns(database: Any, table: str) -> list[tuple[Any, ...]]:
    return sorted(
        (c.name, c.data_type.lower(), c.null, c.primary_key) for c in database.get_columns(table)
    )


def _indexes(database: Any, table: str) -> list[tuple[Any, ...]]:
    out = []
    for index in database.get_indexes(table):
        if index.name.startswith("sqlite_autoindex") or index.name.endswith("_pkey"):
            continue
        where = (index.sql or "").upper().partition(" WHERE ")[2]
        predicate = "".join(ch for ch in where if ch.isalnum() or ch == "_")
        out.append((index.name, tuple(index.columns), index.unique, predicate))
    return sorted(out)


# ----------------------------------------------------------------------------- migrating


def test_migrating_a_fresh_database_gives_exactly_the_spec_schema(fresh_url: str) -> None:
    """After migrate, schema_diff finds nothing between the database and the spec models."""
    with clonestore.open(fresh_url, create_tables=False) as store:
        assert store.migrate() == migrations_on(fresh_url)
        database = store.backend.database
        with database.connection_context():
            models = build_models(database, [*TABLES.values(), *SYSTEM_TABLES.values()])
            diff = diff_models(database, models)
            # The one index not in the specs: migration 0007's GIN index on
            # (memories.metadata::jsonb) for JSON key lookups, an expression index of
            # PostgreSQL's that a spec does not state.
            engine_indexes = [(i.table, i.name) for i in diff.drop_indexes]
            assert engine_indexes == _gin_indexes(fresh_url), str(diff)
            diff.drop_indexes.clear()
            assert not diff, str(diff)
            # Beside them, migration 0010's text index (two tables of the SQL backends'
            # own, with composite keys: no spec states them).
            text_index = {"text_index_rows", "text_index_terms"}
            assert set(TABLES) | set(SYSTEM_TABLES) | {HISTORY_TABLE} | text_index == _tables(
                database
            )


def _gin_indexes(url: str) -> list[tuple[str, str]]:
    """The (table, index) of the GIN indexes migrations make: PostgreSQL's only."""
    return [("memories", "ix_memories_metadata_gin")] if url.startswith("postgres") else []


def test_migrated_columns_and_indexes_match_tables_created_from_specs(
    fresh_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Column types, nullability and (partial) indexes equal those the spec models create."""
    if fresh_url.startswith("sqlite"):
        reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
        reference_cm: Any = None
    else:
        reference_cm = _fresh_postgres(request.getfixturevalue("postgres_server_url"))
        reference_url = next(reference_cm)
    try:
        with (
            clonestore.open(fresh_url, create_tables=False) as migrated,
            clonestore.open(reference_url, create_tables=False) as reference,
        ):
            migrated.migrate()
            ref_db = reference.backend.database
            with ref_db.connection_context():
                ref_db.create_tables(
                    build_models(ref_db, [*TABLES.values(), *SYSTEM_TABLES.values()])
                )
            mig_db = migrated.backend.database
            gin = _gin_indexes(fresh_url)  # migration 0007's, beside the spec's indexes
            with mig_db.connection_context(), ref_db.connection_context():
                for table in [*TABLES, *SYSTEM_TABLES]:
                    assert _columns(mig_db, table) == _columns(ref_db, table), table
                    indexes = _indexes(mig_db, table)
                    engine_only = [(table, i[0]) for i in indexes if (table, i[0]) in gin]
                    assert engine_only == [index for index in gin if index[0] == table], table
                    indexes = [i for i in indexes if (table, i[0]) not in gin]
                    assert indexes == _indexes(ref_db, table), table
    finally:
        if reference_cm is not None:
            reference_cm.close()


def test_migrate_and_status_are_idempotent(fresh_url: str) -> None:
    """migrate applies each migration once; status lists them all applied."""
    with clonestore.open(fresh_url, create_tables=False) as store:
        expected = migrations_on(fresh_url)
        assert [m["applied"] for m in store.migration_status()] == [False] * len(expected)
        assert store.migrate() == expected
        assert store.migrate() == []
        status = store.migration_status()
        assert [m["name"] for m in status] == expected
        assert all(m["applied"] and m["applied_at"] is not None for m in status)
    with clonestore.open(fresh_url) as store:  # open runs migrations: nothing left to do
        assert store.migrate() == []


def test_opening_a_store_migrates_and_creates_plugin_tables(fresh_url: str) -> None:
    """Opening migrates a fresh database and creates plugin tables, idempotently."""
    spec = TableSpec(
        name="plugin_counters",
        columns=(Column(name="id", kind="id"), Column(name="key", kind="key")),
        unique=(Unique(("key",)),),
    )

    class Plugin:
        @hookimpl
        def clonestore_tables(self) -> list[TableSpec]:
            return [spec]

    for _ in range(2):
        with clonestore.open(fresh_url, plugins=[Plugin()]) as store:
            assert all(m["applied"] for m in store.migration_status())
            database = store.backend.database
            with database.connection_context():
                assert "plugin_counters" in _tables(database)
                assert [i.name for i in database.get_indexes("plugin_counters") if i.unique][
                    -1:
                ] == ["uq_plugin_counters_key"]


def test_down_then_up_again(tmp_path: Path) -> None:
    """Every migration's down() undoes its up(), and up() works again afterwards."""
    with clonestore.open(f"sqlite:///{tmp_path / 'db.sqlite'}", create_tables=False) as store:
        store.migrate()
        database = store.backend.database
        with database.connection_context():
            runner = Runner(database, migrations_directory(), table_name=HISTORY_TABLE)
            on_sqlite = migrations_on("sqlite:")
            assert runner.down(on_sqlite[0]) == list(reversed(on_sqlite))
            assert _tables(database) == {HISTORY_TABLE}
        assert store.migrate() == on_sqlite
        assert store.users.count() == 0


def test_concurrent_first_opens_migrate_once(request: pytest.FixtureRequest) -> None:
    """Stores opening a fresh PostgreSQL database at once all succeed; each migration runs once."""
    fresh = _fresh_postgres(request.getfixturevalue("postgres_server_url"))
    url = next(fresh)
    try:
        errors: list[BaseException] = []

        def open_store() -> None:
            try:
                clonestore.open(url).close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with clonestore.open(url) as store:
            assert [m["name"] for m in store.migration_status()] == migrations_on(url)
    finally:
        fresh.close()


def test_migrations_declare_frozen_models() -> None:
    """Migration scripts import no live clonestore code: only peewee, stable field types
    and some of the standard library (0010 carries its own copy of the tokenizer)."""
    allowed = {"__future__", "typing", "logging", "struct", "peewee",
               "clonestore_peewee.sql._fields", "collections", "hashlib", "json", "re",
               "unicodedata"}  # fmt: skip
    for path in sorted(Path(migrations_directory()).glob("[0-9]*.py")):
        tree = ast.parse(path.read_text())
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert imported <= allowed, (path.name, imported - allowed)
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"up", "down"} <= names, path.name


def test_migration_scripts_are_numbered_in_sequence() -> None:
    """Scripts are NNNN_name.py numbered from 1 without duplicates, each below the next."""
    # Numbers are assigned to pieces of work in advance, so one may land before the
    # number below it (0009 before 0008): a gap, never a duplicate or a reuse.
    numbers = [int(name.split("_", 1)[0]) for name in MIGRATIONS]
    assert all(len(name.split("_", 1)[0]) == 4 for name in MIGRATIONS)
    assert numbers[0] == 1
    assert numbers == sorted(set(numbers))


def test_storage_types_are_mapped_on_every_engine() -> None:
    """Every storage type of the migrations has a SQLite, a PostgreSQL and a MariaDB
    column type; MariaDB's text is code-point exact and its JSON verbatim text."""
    from clonestore_peewee.sql import _fields as fields
    from clonestore_peewee.sql._fields import MARIADB_TYPES, POSTGRES_TYPES, SQLITE_TYPES

    used = {getattr(fields, name).field_type for name in fields.__all__ if name.endswith("Field")}
    assert used == set(SQLITE_TYPES) == set(POSTGRES_TYPES) == set(MARIADB_TYPES)
    for kind in ("CS_ID", "CS_TEXT_ID", "CS_TEXT", "CS_JSON", "CS_LIST"):
        assert MARIADB_TYPES[kind].endswith("COLLATE utf8mb4_nopad_bin")
    assert MARIADB_TYPES["CS_JSON"].startswith("LONGTEXT")  # MySQL's JSON type reorders keys
    assert POSTGRES_TYPES["CS_JSON"] == "JSON"  # not JSONB: it would re-format numbers
    assert POSTGRES_TYPES["CS_TEXT"] == 'TEXT COLLATE "C"'


def test_schema_diff_sees_drift_between_migrations_and_specs(tmp_path: Path) -> None:
    """A spec column or index that no migration created shows up in the diff."""
    import attrs

    from clonestore import Index

    users = TABLES["users"]
    drifted = attrs.evolve(
        users,
        columns=(*users.columns, Column(name="nickname", kind="text", nullable=True)),
        indexes=(*users.indexes, Index(("name",))),
    )
    with clonestore.open(f"sqlite:///{tmp_path / 'd.db'}", create_tables=False) as store:
        store.migrate()
        database = store.backend.database
        with database.connection_context():
            diff = diff_models(database, build_models(database, [drifted]))
    assert [f.column_name for f in diff.add_columns] == ["nickname"]
    assert [i.columns for i in diff.add_indexes] == [("name",)]


# ----------------------------------------------------------------------------- the command


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("clonestore")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "clonestore.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_migrate_then_status(fresh_url: str) -> None:
    """`clonestore migrate` prints progress per migration; `status` lists them applied."""
    before = _cli("status", "--url", fresh_url)
    assert before.returncode == 0, before.stderr
    assert f"[ ] {MIGRATIONS[0]}" in before.stdout
    migrated = _cli("migrate", "--url", fresh_url)
    assert migrated.returncode == 0, migrated.stderr
    for name in migrations_on(fresh_url):
        assert f"applying {name}" in migrated.stdout
        assert f"applied {name}" in migrated.stdout
    again = _cli("migrate", "--url", fresh_url)
    assert again.returncode == 0
    assert "up to date" in again.stdout
    assert "applying" not in again.stdout
    after = _cli("status", "--url", fresh_url)
    assert f"[x] {MIGRATIONS[0]}" in after.stdout


def test_cli_url_defaults_to_clonestore_url(tmp_path: Path) -> None:
    """Without --url the command uses $CLONESTORE_URL, like clonestore.open()."""
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = _cli("migrate", env={"CLONESTORE_URL": url})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize("command", [[], ["migrate"], ["status"]])
def test_cli_help(command: list[str]) -> None:
    """Every command has --help."""
    result = _cli(*command, "--help")
    assert result.returncode == 0
    assert "usage: clonestore" in result.stdout
    if command:
        assert "--url" in result.stdout


def test_cli_errors_are_one_line_without_traceback_or_password() -> None:
    """Failures print one line saying what to do next, exit 1, and redact passwords."""
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://bob:{PASSWORD}@127.0.0.1:{port}/nowhere?connect_timeout=1"
    result = _cli("migrate", "--url", url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert PASSWORD not in result.stderr + result.stdout
    assert "bob:***@" in result.stderr
    assert "check that the database server is running" in result.stderr
    bad = _cli("status", "--url", "sqlite:///x.db?colour=blue")
    assert bad.returncode == 1
    assert "unknown option" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database on each SQL engine, MariaDB included."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    if request.param == "postgres":
        yield from _fresh_postgres(request.getfixturevalue("postgres_server_url"))
        return
    import pymysql

    server = os.environ.get("CLONESTORE_TEST_MARIADB_URL") or "mariadb://root@127.0.0.1:3306/"
    parts = urlsplit(server)
    name = f"cs_mig_{secrets.token_hex(5)}"

    def admin(sql: str) -> None:
        connection = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
            password=parts.password or "", connect_timeout=10,
        )  # fmt: skip
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        admin(f"DROP DATABASE IF EXISTS `{name}`")


def _id_column_types(store: clonestore.Store) -> set[str]:
    """The engine's types of every id column of the core tables."""
    database = store.backend.database
    with database.connection_context():
        return {
            c.data_type.lower()
            for spec in TABLES.values()
            for c in database.get_columns(spec.name)
            if c.name in spec.by_name and spec.by_name[c.name].kind == "id"
        }


def test_id_columns_of_an_existing_database_become_text(engine_url: str) -> None:
    """Migration 0005 turns a database's UUID id columns (PostgreSQL uuid, MariaDB
    varchar(36)) into text holding any id, rows kept; ids then order by code point; after
    0006 names and embeddings may be left out."""
    before = {"sqlite": {"text"}, "postgresql": {"uuid"}, "mariadb": {"varchar"}}
    after = {"sqlite": {"text"}, "postgresql": {"text"}, "mariadb": {"varchar"}}
    engine = engine_url.split(":", 1)[0]
    with clonestore.open(engine_url, create_tables=False) as store:
        store.migrate(to="0003_keyset_indexes")
        assert _id_column_types(store) == before[engine]
        old = store.users.create(email="old@example.com", name="Old")
        memory = store.memories.add(old.id, "kept", [1.0, 0.0])
        if engine != "postgresql":  # the float64 blob versions before 0009 wrote
            blob = struct.pack("<2d", 1.0, 0.0)
            _raw(store, "UPDATE memories SET embedding = ? WHERE id = ?", (blob, memory.id))
        assert store.migrate() == migrations_on(engine_url)[3:]
        assert _id_column_types(store) == after[engine]
        assert store.users.get(old.id) == old
        assert store.memories.get(memory.id) == memory
        keys = ["ck-1", "B", "a", "é", "x" * 128]
        for key in keys:
            store.users.create(id=key, email=f"u{len(key)}{key[0]}@example.com", name="N")
        assert [u.id for u in store.users.find_many(where={"id__in": keys}, order_by="id")] == (
            sorted(keys)
        )
        assert store.users.find_many(where={"id__in": [old.id]}) == [old]
        # 0006: what the original leaves optional is nullable now, old rows kept
        anonymous = store.users.create(email="anonymous@example.com")
        bare = store.memories.create(user_id=anonymous.id, content="no vector")
        assert store.users.get(anonymous.id).name is None
        assert store.memories.get(bare.id).embedding is None
        assert store.voice_models.create(user_id=old.id, provider="p").name is None
        if engine == "mariadb":  # the columns keep their code-point collation
            database = store.backend.database
            with database.connection_context():
                collations = database.execute_sql(
                    "SELECT DISTINCT collation_name FROM information_schema.columns WHERE "
                    "table_schema = DATABASE() AND column_name = 'name' AND table_name IN "
                    "('users', 'voice_models', 'face_models')"
                ).fetchall()
            assert collations == (("utf8mb4_nopad_bin",),) or collations == [
                ("utf8mb4_nopad_bin",)
            ]


def test_optional_columns_of_the_original_are_nullable_after_migrating(fresh_url: str) -> None:
    """Migration 0006 drops NOT NULL from users.name, the models' name and
    memories.embedding."""
    wanted = {("users", "name"), ("voice_models", "name"), ("face_models", "name"),
              ("memories", "embedding")}  # fmt: skip
    with clonestore.open(fresh_url, create_tables=False) as store:
        store.migrate(to="0003_keyset_indexes")
        database = store.backend.database

        def nullable() -> set[tuple[str, str]]:
            with database.connection_context():
                return {(table, c.name) for table, c2 in wanted for c in
                        database.get_columns(table) if c.name == c2 and c.null}  # fmt: skip

        assert nullable() == set()
        store.migrate(to="0006_optional_as_the_original")
        assert nullable() == wanted


# ----------------------------------------------------------------------------- 0009 float32


def _raw(store: clonestore.Store, sql: str, params: Any = ()) -> list[Any]:
    """Run ``sql`` on the store's database (``?`` marks parameters on every engine)."""
    database = store.backend.database
    with database.connection_context():
        cursor = database.execute_sql(sql.replace("?", database.param), params)
        return list(cursor.fetchall()) if cursor.description else []


def _embedding_bytes(store: clonestore.Store) -> dict[str, int]:
    return dict(_raw(store, "SELECT id, length(embedding) FROM memories"))


_STOP_SQLITE = (
    "CREATE TRIGGER stop_0009 BEFORE UPDATE OF embedding ON memories WHEN NEW.id = 'm2100' "
    "BEGIN SELECT RAISE(ABORT, 'interrupted'); END"
)
_STOP_MARIADB = (
    "CREATE TRIGGER stop_0009 BEFORE UPDATE ON memories FOR EACH ROW BEGIN "
    "IF NEW.id = 'm2100' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'interrupted'; "
    "END IF; END"
)


@pytest.mark.parametrize("engine_url", ["sqlite", "mariadb"], indirect=True)
def test_float64_vectors_become_float32_in_place_resumably(
    engine_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Migration 0009 rewrites float64 vector blobs as float32 batch by batch, with progress;
    interrupted, it resumes after the last committed batch; values read back float32."""
    import numpy as np

    rng = np.random.default_rng(9)
    wide = rng.normal(size=(2500, 3))  # unrounded doubles, as older versions stored them
    wide[2499, 1] = 1e300  # beyond float32: the memory is kept without its embedding
    with clonestore.open(engine_url, create_tables=False) as store:
        store.migrate(to="0007_metadata_gin")
        user = store.users.create(email="old@example.com", name="Old")
        rows = [{"id": f"m{i:04}", "user_id": user.id, "content": "c", "embedding": [1.0]}
                for i in range(2500)]  # fmt: skip
        store.memories.create_many(rows)
        database = store.backend.database
        with database.connection_context():
            database.cursor().executemany(
                f"UPDATE memories SET embedding = {database.param} WHERE id = {database.param}",
                [(wide[i].astype("<f8").tobytes(), f"m{i:04}") for i in range(2500)],
            )
            database.execute_sql(_STOP_MARIADB if "mariadb" in engine_url else _STOP_SQLITE)
        caplog.set_level("INFO", logger="clonestore.migrations")
        with pytest.raises(clonestore.ClonestoreError):
            store.migrate()
        lengths = _embedding_bytes(store)
        assert {lengths[f"m{i:04}"] for i in range(2000)} == {12}  # the committed batch
        assert {lengths[f"m{i:04}"] for i in range(2000, 2500)} == {24}
        assert "memories.embedding 2000/2500 rows" in caplog.text
        _raw(store, "DROP TRIGGER stop_0009")
        caplog.clear()
        assert "0009_float32_vectors" in store.migrate()
        assert "memories.embedding 2500/2500 rows" in caplog.text
        assert set(_embedding_bytes(store).values()) == {12, None}
        expected = [tuple(v) for v in wide[:2499].astype(np.float32).tolist()] + [None]
        got = {m.id: m.embedding for m in store.memories.find_many(limit=2500)}
        assert [got[f"m{i:04}"] for i in range(2500)] == expected
        # stopped after the last batch but before the runner recorded 0009: the rerun
        # converts nothing a second time
        _raw(store, "DELETE FROM clonestore_migrations WHERE name = '0009_float32_vectors'")
        assert "0009_float32_vectors" in store.migrate()
        assert {m.id: m.embedding for m in store.memories.find_many(limit=2500)} == got
        # written from now on: float32, four bytes an item
        fresh = store.memories.add(user.id, "new", [0.1, 0.2, 0.3, 0.4])
        assert _embedding_bytes(store)[fresh.id] == 16
        assert store.memories.get(fresh.id).embedding == tuple(
            np.asarray([0.1, 0.2, 0.3, 0.4], dtype=np.float32).tolist()
        )


def test_0011_backfills_the_kept_session_totals(fresh_url: str) -> None:
    """Sessions stored before 0011 get their totals: after the migration, each user's
    user_statistics equals the sum over their sessions (ended and open)."""
    with clonestore.open(fresh_url) as store:
        users = [store.users.create(email=f"u{i}@example.com", name="U") for i in range(3)]
        for n, user in enumerate(users):
            for k in range(n + 1):
                session = store.sessions.create(user_id=user.id)
                store.sessions.add_turn(session.id, llm_latency_ms=10 * k + n,
                                        llm_cost=Decimal("0.000125") * (k + 1))
                if k % 2 == 0:
                    store.sessions.end(session.id)
        expected = {u.id: store.sessions._computed_statistics(u.id) for u in users}
        before = [m["name"] for m in store.migration_status() if m["plugin"] is None]
        previous = before[before.index("0011_ops") - 1]
        undone = store.downgrade(to=previous)
        assert undone[-1] == "0011_ops"
        assert store.migrate() == undone[::-1]
        for user in users:
            assert store.sessions.user_statistics(user.id) == expected[user.id]


# ----------------------------------------------------------------------------- 0012 pg float32

_STOP_0012 = (
    "CREATE FUNCTION stop_0012() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.id = 'm2100' AND NEW.embedding_0012 IS NOT NULL THEN RAISE EXCEPTION "
    "'interrupted'; END IF; RETURN NEW; END $$; "
    "CREATE TRIGGER stop_0012 BEFORE UPDATE ON memories FOR EACH ROW EXECUTE FUNCTION stop_0012()"
)


def _embedding_columns(store: clonestore.Store) -> dict[str, str]:
    return dict(
        _raw(
            store,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            "attrelid = 'memories'::regclass AND attname LIKE 'embedding%%' AND NOT attisdropped",
        )
    )


@pytest.mark.parametrize("server", ["postgres", "pgvector"])
def test_0012_stores_postgres_vectors_once_in_place_resumably(
    server: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """Migration 0012 turns the previous layout (double precision[], with pgvector its
    generated float32 copy) into one float32 column (pgvector's vector, else real[]) batch
    by batch with progress; interrupted, it resumes after the last committed batch; values
    read back float32, searches equal the reference; down restores the previous layout."""
    import numpy as np

    from clonestore.vectors import nearest_reference

    pgvector = server == "pgvector"
    server_url = request.getfixturevalue(
        "pgvector_server_url" if pgvector else "postgres_server_url"
    )
    rng = np.random.default_rng(12)
    wide = rng.normal(size=(2500, 3))  # unrounded doubles, as older versions stored them
    wide[2499, 1] = 1e300  # beyond float32: the memory is kept without its embedding
    wide[2498] = [1e20, 2e20, 0.0]  # a row the engine does not score (norm above 2**50)
    for url in _fresh_postgres(server_url):
        with clonestore.open(url) as store:
            user = store.users.create(email="old@example.com", name="Old")
            rows = [{"id": f"m{i:04}", "user_id": user.id, "content": "c",
                     "embedding": [1.0, 2.0, 3.0]} for i in range(2500)]  # fmt: skip
            store.memories.create_many(rows)
            # the migrations after 0012 (applied on top, reverted first)
            newer = [n for n in migrations_on(url) if n > "0012_pg_float32_vectors"]
            assert store.downgrade(to="0011_ops") == [*newer[::-1], "0012_pg_float32_vectors"]
            previous = {"embedding": "double precision[]"}
            if pgvector:
                previous["embedding_vec"] = "vector"
            assert _embedding_columns(store) == previous
            database = store.backend.database
            with database.connection_context():
                database.cursor().executemany(
                    "UPDATE memories SET embedding = %s WHERE id = %s",
                    [(wide[i].tolist(), f"m{i:04}") for i in range(2500)],
                )
                database.execute_sql(_STOP_0012)
            caplog.set_level("INFO", logger="clonestore.migrations")
            with pytest.raises(clonestore.ClonestoreError):
                store.migrate()
            assert "memories.embedding 2000/2500 rows" in caplog.text
            converted = _raw(store, "SELECT count(embedding_0012) FROM memories")
            assert converted == [(2000,)]  # the committed batches
            _raw(store, "DROP TRIGGER stop_0012 ON memories")
            caplog.clear()
            assert store.migrate() == ["0012_pg_float32_vectors", *newer]
            assert "memories.embedding 2500/2500 rows" in caplog.text
            assert "1 vectors of memories.embedding had items beyond" in caplog.text
            assert _embedding_columns(store) == {"embedding": "vector" if pgvector else "real[]"}
            expected = [tuple(v) for v in wide[:2499].astype(np.float32).tolist()] + [None]
            got = {m.id: m.embedding for m in store.memories.find_many(limit=2500)}
            assert [got[f"m{i:04}"] for i in range(2500)] == expected
            # stopped after the swap but before the runner recorded 0012: the rerun
            # converts nothing a second time
            _raw(store, "DELETE FROM clonestore_migrations WHERE name = '0012_pg_float32_vectors'")
            assert store.migrate() == ["0012_pg_float32_vectors"]
            assert {m.id: m.embedding for m in store.memories.find_many(limit=2500)} == got
            stored = [{"id": id, "embedding": v} for id, v in got.items() if v is not None]
            for metric in ("cosine", "l2", "ip"):
                query = [0.5, -1.0, 2.0]
                want = nearest_reference(stored, "embedding", query, metric, 5)
                found = store.memories.similar(user.id, query, limit=5, metric=metric)
                assert [(r.memory.id, r.score) for r in found] == [(w["id"], s) for w, s in want]
            if pgvector:
                assert store.health()["vector_search"]["engine"] == "pgvector"
                loose = _raw(store, "SELECT count(*) FROM memories WHERE " + _LOOSE)
                assert loose == [(1,)]
            # down: the previous layout, the same values
            assert store.downgrade(to="0011_ops") == [*newer[::-1], "0012_pg_float32_vectors"]
            assert _embedding_columns(store) == previous
            assert {m.id: m.embedding for m in store.memories.find_many(limit=2500)} == got
            assert store.migrate() == ["0012_pg_float32_vectors", *newer]
            assert {m.id: m.embedding for m in store.memories.find_many(limit=2500)} == got


_LOOSE = (
    "NOT (vector_norm(embedding) = 0 OR vector_norm(embedding) "
    "BETWEEN 8.881784197001252e-16 AND 1125899906842624)"
)


# ----------------------------------------------------------------------------- 0010 text index

_STOP_0010 = {
    "sqlite": "CREATE TRIGGER stop_0010 BEFORE INSERT ON text_index_rows "
    "WHEN NEW.row_id = 'm1500' BEGIN SELECT RAISE(ABORT, 'interrupted'); END",
    "mariadb": "CREATE TRIGGER stop_0010 BEFORE INSERT ON text_index_rows FOR EACH ROW BEGIN "
    "IF NEW.row_id = 'm1500' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'interrupted'; "
    "END IF; END",
}


@pytest.mark.parametrize("engine_url", ["sqlite", "postgres", "mariadb"], indirect=True)
def test_0010_indexes_the_stored_text_resumably(
    engine_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Migration 0010 indexes the live documents and memories stored before it, batch by
    batch with progress; interrupted, it resumes after the last committed batch; the
    index is then exactly what the rows call for, and searches use it. ``down`` drops it
    (searches then read the rows), and a second ``up`` builds it again."""
    from tests.backends.test_sql_text_search import _exact, _index

    with clonestore.open(engine_url, create_tables=False) as store:
        names = [m["name"] for m in store.migration_status() if m["plugin"] is None]
        before = names[names.index("0010_text_index") - 1]  # 0009, or 0008 on PostgreSQL
        store.migrate(to=before)
        backend: Any = store.backend
        assert not backend.text_index.ready
        user = store.users.create(email="old@example.com", name="Old")
        store.memories.create_many(
            {"id": f"m{i:04}", "user_id": user.id, "content": f"word{i % 7} common {i}"}
            for i in range(2500)
        )
        store.memories.delete("m0003")
        store.documents.create(
            user_id=user.id, filename="a.txt", text_content="Common words", tags=["x y", "z"]
        )
        store.documents.create(  # the tokenizer's other path: the migration's own copy
            user_id=user.id, filename="b.txt", text_content="Straße Cafe\u0301 日本語 e-mail_x1"
        )
        expected = store.memories.search("word3 common", limit=5, where={"user_id": user.id})
        caplog.set_level("INFO", logger="clonestore.migrations")
        stop = _STOP_0010.get(engine_url.split(":")[0])
        if stop is not None:
            script = importlib.import_module("clonestore_peewee.migrations.0010_text_index")
            with backend.database.connection_context():
                script._create(backend.database)  # the tables, to hang the trigger on
            _raw(store, stop)
            with pytest.raises(clonestore.ClonestoreError):
                store.migrate()
            rows, _ = _index(store)
            assert len({r for r in rows if r[0] == "memories"}) == 1000  # the committed batch
            assert "memories 1000/2499 rows" in caplog.text
            _raw(store, "DROP TRIGGER stop_0010")
            caplog.clear()
        assert "0010_text_index" in store.migrate()
        assert "memories 2499/2499 rows" in caplog.text or "memories 1499/1499 rows" in caplog.text
        assert backend.text_index.ready
        assert _exact(store)
        found = store.memories.search("word3 common", limit=5, where={"user_id": user.id})
        assert found == expected
        assert store.documents.search('"x y"', where={"user_id": user.id})
        reverted = store.downgrade(to=before)
        assert reverted[-1] == "0010_text_index"
        assert not backend.text_index.ready
        assert "text_index_rows" not in backend.database.get_tables()
        assert store.memories.search("word3 common", limit=5, where={"user_id": user.id}) == (
            expected
        )
        store.memories.add(user.id, "word3 common, added while not indexed")
        assert store.migrate() == reverted[::-1]
        assert _exact(store)


def test_a_dry_run_over_batched_migrations_commits_nothing(tmp_path: Path) -> None:
    """migration_plan() on a SQLite database with rows for the batched migrations (0009's
    vectors, 0010's text index) runs them and commits none of their batches: the plan
    is complete and the database is as it was (the batches used to commit, ending the
    plan's transaction: "no such savepoint")."""
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    with clonestore.open(url) as store:
        user = store.users.create(email="plan@example.com", name="P")
        store.documents.create(user_id=user.id, filename="a.txt", text_content="red car")
        store.memories.create(user_id=user.id, content="blue sky", embedding=[1.0, 2.0])
        store.downgrade(to="0008_foreign_keys")
        before = store.migration_status()
        planned = [name for name, _ in store.migration_plan()]
        assert planned[:2] == ["0009_float32_vectors", "0010_text_index"]
        assert store.migration_status() == before
    with sqlite3.connect(tmp_path / "plan.db") as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert "text_index_rows" not in tables
