"""Versioned schema migrations with ``playhouse.migrations``.

The scripts live in the repository's top-level ``migrations/`` directory and
ship in the wheel as the package :data:`MIGRATIONS_PACKAGE` (numbered files:
``0001_initial.py``...). Each defines ``up(migrator, db)`` and
``down(migrator, db)`` over frozen model copies, never over the live record
classes. The table :data:`HISTORY_TABLE` records what is applied.

Callers hold the engine's schema lock (see the backends' ``schema_session``)
so that two processes starting at once do not migrate twice.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any, Final

import peewee
from playhouse.migrations import Runner

__all__ = [
    "HISTORY_TABLE",
    "MIGRATIONS_PACKAGE",
    "apply_pending",
    "migration_status",
    "migrations_directory",
]

MIGRATIONS_PACKAGE: Final = "clonestore_peewee.migrations"
HISTORY_TABLE: Final = "clonestore_migrations"

log = logging.getLogger("clonestore.migrations")


def migrations_directory() -> str:
    """Where the migration scripts are (inside the installed package)."""
    spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {MIGRATIONS_PACKAGE} package is missing from this installation")
    return str(next(iter(spec.submodule_search_locations)))


def _runner(database: peewee.Database) -> Runner:
    return Runner(database, migrations_directory(), table_name=HISTORY_TABLE)


def apply_pending(database: peewee.Database, where: str) -> list[str]:
    """Apply every pending migration in order, one transaction each; their names."""
    runner = _runner(database)
    pending = [m.name for m in runner.status() if m.path is not None and not m.applied]
    applied: list[str] = []
    for name in pending:
        log.info("%s: applying %s", where, name)
        started = time.perf_counter()
        runner.up(target=name)
        applied.append(name)
        log.info("%s: applied %s in %.0f ms", where, name, (time.perf_counter() - started) * 1000)
    return applied


def migration_status(database: peewee.Database) -> list[dict[str, Any]]:
    """Every known migration: ``name``, ``applied`` and ``applied_at`` (None if pending)."""
    return [
        {"name": m.name, "applied": m.applied is not None, "applied_at": m.applied}
        for m in _runner(database).status()
    ]
