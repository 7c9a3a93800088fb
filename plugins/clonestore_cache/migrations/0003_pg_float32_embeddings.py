"""0003: cached embeddings on PostgreSQL become ``real[]``, emptied once.

PostgreSQL stored them once already, but as ``double precision[]``: eight bytes an item
for float32 values. Since the core's migration 0012 a new vector column is ``real[]``
there (four bytes an item, the same values read back). The table is a cache (recomputed
by the caller on a miss), so, as 0002, it is recreated empty rather than converted,
engine-neutral through the backend (``migrator.backend``): SQLite and MariaDB, whose
blobs are float32 already, lose their cached embeddings once too.

Frozen: the spec is copied here (0001's, unchanged).
"""

from __future__ import annotations

from typing import Final

from clonestore.spi import Column, Index, Migrator, TableSpec, Unique

EMBEDDINGS: Final = TableSpec(
    name="cache_embeddings",
    columns=(
        Column(name="id", kind="id"),
        Column(name="query_hash", kind="key", max_length=512),
        Column(name="embedding", kind="vector", max_length=65536),
        Column(name="model", kind="text", nullable=True, max_length=200),
        Column(name="user_id", kind="key", nullable=True, max_length=200),
        Column(name="created_at", kind="datetime"),
        Column(name="expires_at", kind="datetime"),
    ),
    unique=(Unique(("query_hash",)),),
    indexes=(
        Index(("expires_at",)),
        Index(("user_id",)),
    ),
)


def up(migrator: Migrator, db: object) -> None:
    """Drop and recreate ``cache_embeddings`` (empty, ``real[]`` on PostgreSQL)."""
    migrator.backend.drop_spec_tables((EMBEDDINGS,))
    migrator.backend.create_spec_tables((EMBEDDINGS,))


def down(migrator: Migrator, db: object) -> None:
    """Empty ``cache_embeddings`` again (an older version reads either type back)."""
    up(migrator, db)
