"""0007: a GIN index on memories' metadata, for JSON key lookups on PostgreSQL.

``memories.find_many(where={"metadata__kind": "a"})``, and a vector search with
``where={"metadata__kind": "a"}`` over every owner (``nearest``), compile an
equality lookup to the containment ``(metadata::jsonb) @> '{"kind": "a"}'``
(see ``clonestore_peewee.sql._json_lookups``). This expression index, built with
``jsonb_path_ops`` (containment only, smaller and faster than the default
operator class), serves it, so such a search reads the matching rows instead of
every owner's. Searches of one owner are served by the owner's index already.

The column stays ``json`` (text kept verbatim, so key order round-trips): the
index is on the expression ``metadata::jsonb``, which the lookups spell the
same way. On SQLite and MariaDB this migration does nothing (neither has an
index type for JSON documents; their lookups read one owner's rows through
the owner's index). Building it locks writes to ``memories`` for as long as
it takes (a transactional migration cannot use ``CONCURRENTLY``); on a big
table, create it beforehand with ``CREATE INDEX CONCURRENTLY`` under the same
name, and this migration keeps it.

Frozen at this version: the table, column and index names are written out here.
"""

from __future__ import annotations

from typing import Any

from peewee import PostgresqlDatabase

_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_memories_metadata_gin "
    "ON memories USING gin ((metadata::jsonb) jsonb_path_ops)"
)


def _postgres(db: Any) -> bool:
    return isinstance(db, PostgresqlDatabase)


def up(migrator: Any, db: Any) -> None:
    """Create the GIN index on ``(memories.metadata::jsonb)`` on PostgreSQL."""
    if _postgres(db):
        db.execute_sql(_INDEX)


def down(migrator: Any, db: Any) -> None:
    """Drop the index."""
    if _postgres(db):
        db.execute_sql("DROP INDEX IF EXISTS ix_memories_metadata_gin")
