"""0003: indexes in the order the repositories read, so pages do not scan tables.

``find_many``/``page`` without ``order_by`` read live rows by ``(created_at,
id)``, and a user's rows by ``(user_id, created_at, id)``. Without an index in
that order every page (the first one included) scanned and sorted the whole
table: 18 ms for a first page of 100k users on SQLite. The indexes are partial
(``WHERE deleted_at IS NULL``) on tables with soft delete. ``users.restore``
scanned every model, document and memory table for ``deleted_by_cascade``: that
column gets an index too. ``ix_users_deleted_at``
goes: the new users index serves the same queries, and SQLite's planner
otherwise picks it and sorts every live user.

Frozen at this version: tables, columns and names are written out here.
"""

from __future__ import annotations

from typing import Any

from peewee import SQL

#: table -> (soft delete, index on (created_at, id), index on (user_id, created_at, id))
_TABLES = {
    "users": (True, True, False),
    "voice_models": (True, True, True),
    "face_models": (True, True, True),
    "sessions": (False, True, True),
    "turns": (False, True, False),
    "documents": (True, True, True),
    "memories": (True, True, True),
}


#: Tables whose rows a user's soft delete cascades to: ``users.restore`` finds them by
#: ``deleted_by_cascade``.
_CASCADED = ("voice_models", "face_models", "documents", "memories")


def _indexes() -> list[tuple[str, tuple[str, ...], bool, str]]:
    """(table, columns, partial on live rows, index name) of every new index."""
    out: list[tuple[str, tuple[str, ...], bool, str]] = [
        (table, ("deleted_by_cascade",), False, f"ix_{table}_deleted_by_cascade")
        for table in _CASCADED
    ]
    for table, (soft_delete, page, owner) in _TABLES.items():
        suffix = "_live" if soft_delete else ""
        for wanted, columns in (
            (page, ("created_at", "id")),
            (owner, ("user_id", "created_at", "id")),
        ):
            if wanted:
                out.append((table, columns, soft_delete, f"ix_{table}_{'_'.join(columns)}{suffix}"))
    return out


def up(migrator: Any, db: Any) -> None:
    """Create the ordered indexes and drop ``ix_users_deleted_at``."""
    for table, columns, live, name in _indexes():
        where = SQL("deleted_at IS NULL") if live else None
        migrator.migrate(migrator.add_index(table, columns, where=where, name=name))
    migrator.migrate(migrator.drop_index("users", "ix_users_deleted_at"))


def down(migrator: Any, db: Any) -> None:
    """Drop the ordered indexes and bring back ``ix_users_deleted_at``."""
    for table, _columns, _live, name in _indexes():
        migrator.migrate(migrator.drop_index(table, name))
    migrator.migrate(migrator.add_index("users", ("deleted_at",), name="ix_users_deleted_at"))
