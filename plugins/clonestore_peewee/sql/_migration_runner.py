"""Versioned schema migrations with ``playhouse.migrations``, for the core and plugins.

The core's scripts are the package :data:`MIGRATIONS_PACKAGE`
(``plugins/clonestore_peewee/migrations``, numbered files:
``0001_initial.py``...). A plugin ships its own as a package named by its
``clonestore_migrations`` hook (``clonestore_audit.migrations``); the same
runner applies them, with a history table per plugin
(``clonestore_migrations_audit``), and their names are shown qualified
(``audit/0001_initial``).

Each script defines ``up(migrator, db)`` and ``down(migrator, db)`` over
frozen copies of its tables, never over live classes. A script that concerns
some engines only names them in ``ENGINES`` (``ENGINES = ("postgresql",)``):
on the others it is neither run, recorded nor listed. ``migrator.backend`` is
the SQL backend (:class:`clonestore.spi.Migrations`; the migrator is a
:class:`clonestore.spi.Migrator`), so a plugin's script creates tables from frozen
table specs through it (``migrator.backend.create_spec_tables(SPECS)``), with the
backend's column types, indexes and table options.

Callers hold the engine's schema lock (see the backends' ``schema_session``)
so that two processes starting at once do not migrate twice.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import attrs
import peewee
from playhouse.migrations import Runner

from clonestore.spi import Migrations

__all__ = [
    "HISTORY_TABLE",
    "MIGRATIONS_PACKAGE",
    "PLANNING",
    "MigrationSet",
    "apply_pending",
    "core_migrations",
    "migration_status",
    "migrations_directory",
    "plan",
    "plugin_migrations",
    "revert",
]

MIGRATIONS_PACKAGE: Final = "clonestore_peewee.migrations"
HISTORY_TABLE: Final = "clonestore_migrations"

log = logging.getLogger("clonestore.migrations")


def migrations_directory(package: str = MIGRATIONS_PACKAGE) -> str:
    """Where a package of migration scripts is (inside the installation)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {package} package is missing from this installation")
    return str(next(iter(spec.submodule_search_locations)))


@attrs.frozen
class MigrationSet:
    """One owner's migrations: the core's (``plugin`` None) or a plugin's."""

    plugin: str | None
    directory: str
    history_table: str

    def qualified(self, name: str) -> str:
        """``name`` as shown: ``0002_x`` for the core, ``audit/0001_initial`` for a plugin."""
        return name if self.plugin is None else f"{self.plugin}/{name}"

    def own(self, qualified: str) -> str | None:
        """The bare name of ``qualified`` if it is one of this set's, else None."""
        if self.plugin is None:
            return None if "/" in qualified else qualified
        prefix = f"{self.plugin}/"
        return qualified[len(prefix) :] if qualified.startswith(prefix) else None


def core_migrations() -> MigrationSet:
    """clonestore's own migrations."""
    return MigrationSet(None, migrations_directory(), HISTORY_TABLE)


def plugin_migrations(plugin: str, package: str) -> MigrationSet:
    """A plugin's migrations, from the package its ``clonestore_migrations`` hook names."""
    return MigrationSet(plugin, migrations_directory(package), f"{HISTORY_TABLE}_{plugin}")


def _engine(database: peewee.Database) -> str:
    """The engine's name as a script's ``ENGINES`` gives it."""
    if isinstance(database, peewee.PostgresqlDatabase):
        return "postgresql"
    if isinstance(database, peewee.MySQLDatabase):
        return "mariadb"
    return "sqlite"


#: Each script's ``ENGINES`` (None: every engine) by its path and modification time: a
#: script is executed to read them once per process, not at every store's open.
_ENGINES: dict[tuple[str, int], tuple[str, ...] | None] = {}


def _script_engines(migration: Any) -> tuple[str, ...] | None:
    """The ``ENGINES`` a migration script names, None when it names none (all of them)."""
    key = (migration.path, os.stat(migration.path).st_mtime_ns)
    if key not in _ENGINES:
        engines = getattr(migration.load(), "ENGINES", None)
        _ENGINES[key] = None if engines is None else tuple(engines)
    return _ENGINES[key]


class _EngineRunner(Runner):  # type: ignore[misc]  # playhouse is untyped
    """playhouse's runner, without the scripts whose ``ENGINES`` leave this engine out
    (and without their rows in the history, which older versions recorded)."""

    def migrations(self) -> list[Any]:
        return [m for m in super().migrations() if m.name not in self.elsewhere()]

    def elsewhere(self) -> set[str]:
        """The names of the scripts that do not concern this engine."""
        cached: set[str] | None = getattr(self, "_elsewhere", None)
        if cached is None:
            engine = _engine(self.database)
            cached = set()
            for m in super().migrations():
                engines = _script_engines(m)
                if engines is not None and engine not in engines:
                    cached.add(m.name)
            self._elsewhere = cached
        return cached

    def status(self) -> list[Any]:
        return [m for m in super().status() if m.name not in self.elsewhere()]


def _runner(
    database: peewee.Database, migrations: MigrationSet, backend: Migrations | None
) -> Runner:
    runner = _EngineRunner(database, migrations.directory, table_name=migrations.history_table)
    runner.migrator.backend = backend
    return runner


def apply_pending(
    database: peewee.Database,
    where: str,
    sets: Sequence[MigrationSet] = (),
    backend: Migrations | None = None,
    target: str | None = None,
) -> list[str]:
    """Apply every pending migration of ``sets`` (default: the core's) in order, one
    transaction each; with ``target`` (a qualified name), stop once it is applied.
    The qualified names applied."""
    sets = tuple(sets) or (core_migrations(),)
    runners = [(migrations, _runner(database, migrations, backend)) for migrations in sets]
    owner: MigrationSet | None = None
    if target is not None:
        for migrations, runner in runners:
            own = migrations.own(target)
            if own is not None and own in {m.name for m in runner.status()}:
                owner = migrations
        if owner is None:
            raise LookupError(f"no migration {target!r}")
    applied: list[str] = []
    for migrations, runner in runners:
        pending = [m.name for m in runner.status() if m.path is not None and not m.applied]
        for name in pending:
            qualified = migrations.qualified(name)
            log.info("%s: applying %s", where, qualified)
            started = time.perf_counter()
            runner.up(target=name)
            applied.append(qualified)
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s: applied %s in %.0f ms", where, qualified, elapsed)
            if qualified == target:
                return applied
        if migrations is owner:
            return applied  # the target was applied already
    return applied


def migration_status(
    database: peewee.Database, sets: Sequence[MigrationSet] = (), backend: Migrations | None = None
) -> list[dict[str, Any]]:
    """Every known migration: ``name`` (qualified), ``plugin``, ``applied`` and
    ``applied_at`` (None if pending)."""
    return [
        {
            "name": migrations.qualified(m.name),
            "plugin": migrations.plugin,
            "applied": m.applied is not None,
            "applied_at": m.applied,
        }
        for migrations in sets or (core_migrations(),)
        for m in _runner(database, migrations, backend).status()
    ]


def revert(
    database: peewee.Database,
    where: str,
    migrations: MigrationSet,
    backend: Migrations | None = None,
    keep: str | None = None,
) -> list[str]:
    """Run ``down`` of the set's applied migrations newer than ``keep`` (a bare name;
    None: only the newest), newest first; the qualified names reverted."""
    runner = _runner(database, migrations, backend)
    applied = [m.name for m in runner.status() if m.applied]
    if keep is not None:
        if keep not in applied:
            raise LookupError(f"{migrations.qualified(keep)!r} is not an applied migration")
        doomed = applied[applied.index(keep) + 1 :]
    else:
        doomed = applied[-1:]
    reverted: list[str] = []
    for name in reversed(doomed):
        log.info("%s: reverting %s", where, migrations.qualified(name))
        runner.down(target=name)
        reverted.append(migrations.qualified(name))
    return reverted


class _Rollback(Exception):
    pass


@contextmanager
def _recording(db: peewee.Database, sql: list[str]) -> Iterator[None]:
    database: Any = db
    execute = database.execute_sql

    def record(statement: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        sql.append(statement if not params else f"{statement}  -- {list(params)!r}")
        return execute(statement, params, *args, **kwargs)

    database.execute_sql = record
    try:
        yield
    finally:
        del database.execute_sql


#: The attribute set (true) on the database while :func:`plan` runs the migrations.
PLANNING: Final = "clonestore_planning"


def plan(
    database: peewee.Database,
    where: str,
    sets: Sequence[MigrationSet],
    backend: Migrations | None = None,
    target: str | None = None,
) -> list[tuple[str, list[str]]]:
    """The SQL each pending migration would run: applied in a transaction that is then
    rolled back (SQLite and PostgreSQL roll DDL back), so nothing changes. While it
    runs the database carries ``PLANNING`` true: a migration that commits its batches as
    it goes (on SQLite, ending the schema session's transaction) commits nothing then."""
    statements: list[str] = []
    names: list[str] = []
    setattr(database, PLANNING, True)
    try:
        with database.atomic(), _recording(database, statements):
            names = apply_pending(database, where, sets, backend, target)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        delattr(database, PLANNING)
    # Each migration's statements end with the insert of its name into the history
    # table; reads (introspection) and transaction control are not part of the plan.
    history = tuple(f'"{m.history_table}"' for m in (tuple(sets) or (core_migrations(),)))
    out: list[tuple[str, list[str]]] = []
    current: list[str] = []
    for statement in statements:
        verb = statement.lstrip().split(" ", 1)[0].upper()
        if any(h in statement for h in history):
            if verb == "INSERT":
                out.append((names[len(out)], current))
                current = []
            continue
        if verb not in ("SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN"):
            current.append(statement)
    return out
