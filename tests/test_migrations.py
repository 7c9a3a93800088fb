"""Schema migrations on SQLite and PostgreSQL, and the ``clonestore`` command."""

from __future__ import annotations

import ast
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from clonestore_peewee.migration_runner import HISTORY_TABLE, migrations_directory
from clonestore_peewee.models import build_models
from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

import clonestore
from clonestore import Column, TableSpec, Unique, hookimpl
from clonestore.records import TABLES

MIGRATIONS = sorted(p.stem for p in Path(migrations_directory()).glob("[0-9]*.py"))
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
        assert store.migrate() == MIGRATIONS
        database = store.backend.database
        with database.connection_context():
            models = build_models(database, TABLES.values())
            diff = diff_models(database, models)
            # The one column not in the specs: pgvector's single-precision copy of each
            # vector column, made by migration 0004 exactly when the server has pgvector.
            copies = _pgvector_copies(store)
            assert sorted(diff.drop_columns) == copies, str(diff)
            diff.drop_columns.clear()
            assert not diff, str(diff)
            assert set(TABLES) | {HISTORY_TABLE} == _tables(database)


def _pgvector_copies(store: clonestore.Store) -> list[tuple[str, str]]:
    """The (table, column) of each pgvector copy the database should have: one per vector
    column when the PostgreSQL backend reports pgvector installed, else none."""
    pgvector = store.health().get("pgvector")
    if not (pgvector and pgvector["installed"]):
        return []
    from clonestore_peewee.pg_vectors import ENGINE_SUFFIX

    return sorted(
        (spec.name, column.name + ENGINE_SUFFIX)
        for spec in TABLES.values()
        for column in spec.columns
        if column.kind == "vector"
    )


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
                ref_db.create_tables(build_models(ref_db, TABLES.values()))
            mig_db = migrated.backend.database
            copies = _pgvector_copies(migrated)  # migration 0004's, beside the spec's columns
            with mig_db.connection_context(), ref_db.connection_context():
                for table in TABLES:
                    columns = _columns(mig_db, table)
                    extra = sorted((table, c[0]) for c in columns if (table, c[0]) in copies)
                    assert extra == [copy for copy in copies if copy[0] == table], table
                    columns = [c for c in columns if (table, c[0]) not in copies]
                    assert columns == _columns(ref_db, table), table
                    assert _indexes(mig_db, table) == _indexes(ref_db, table), table
    finally:
        if reference_cm is not None:
            reference_cm.close()


def test_migrate_and_status_are_idempotent(fresh_url: str) -> None:
    """migrate applies each migration once; status lists them all applied."""
    with clonestore.open(fresh_url, create_tables=False) as store:
        assert [m["applied"] for m in store.migration_status()] == [False] * len(MIGRATIONS)
        assert store.migrate() == MIGRATIONS
        assert store.migrate() == []
        status = store.migration_status()
        assert [m["name"] for m in status] == MIGRATIONS
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
            assert runner.down(MIGRATIONS[0]) == list(reversed(MIGRATIONS))
            assert _tables(database) == {HISTORY_TABLE}
        assert store.migrate() == MIGRATIONS
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
            assert [m["name"] for m in store.migration_status()] == MIGRATIONS
    finally:
        fresh.close()


def test_migrations_declare_frozen_models() -> None:
    """Migration scripts import no live clonestore code: only peewee and stable field types."""
    allowed = {"__future__", "typing", "peewee", "clonestore_peewee.fields"}
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
    """Scripts are NNNN_name.py numbered 1, 2, 3... with no gaps or duplicates."""
    numbers = [int(name.split("_", 1)[0]) for name in MIGRATIONS]
    assert numbers == list(range(1, len(numbers) + 1))


def test_storage_types_are_mapped_on_every_engine() -> None:
    """Every storage type of the migrations has a SQLite, a PostgreSQL and a MariaDB
    column type; MariaDB's text is code-point exact and its JSON verbatim text."""
    from clonestore_peewee.fields import FIELD_CLASSES, MARIADB_TYPES, POSTGRES_TYPES, SQLITE_TYPES

    used = {cls.field_type for cls in FIELD_CLASSES.values()}
    assert used == set(SQLITE_TYPES) == set(POSTGRES_TYPES) == set(MARIADB_TYPES)
    for kind in ("CS_ID", "CS_TEXT", "CS_JSON", "CS_LIST"):
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
    for name in MIGRATIONS:
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
