"""Tampering with an append-only table the way someone with database access could:
first lifting its guard (memory://: the backend's bookkeeping; SQLite and MariaDB: the
triggers),
then writing, then restoring the guard. PostgreSQL tests use
``SET session_replication_role = replica`` on a connection of their own instead."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from clonestore_peewee.sql._backend import NONE
from clonestore_peewee.sql._table_options import mariadb_append_only, sqlite_append_only

import clonestore


@contextmanager
def unguarded(store: clonestore.Store, table: str) -> Iterator[None]:
    """``table``'s append-only guard lifted for the block (memory://, SQLite, MariaDB)."""
    spec = store.tables[table]
    backend = store.backend
    if backend.name == "memory":
        guard = backend._db.guarded.pop(spec.name)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            backend._db.guarded[spec.name] = guard  # type: ignore[attr-defined]
        return
    assert backend.name in ("sqlite", "mariadb"), f"lift the guard of {backend.name} another way"
    triggers = sqlite_append_only if backend.name == "sqlite" else mariadb_append_only
    for name in triggers(spec):
        backend.execute(f"DROP TRIGGER {name}", (), NONE)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        backend.apply_table_options([spec])  # type: ignore[attr-defined]
