"""0002: cached embeddings are emptied once, as vectors are now stored as float32.

The SQL backends store every vector as float32 since the core's migration
0009 (blobs of four bytes an item on SQLite and MariaDB); the cached
embeddings older versions wrote are float64 blobs, which would no longer read
back. They are a cache (recomputed by the caller on a miss), so the table is
recreated empty rather than converted: engine-neutral, through the backend
(``migrator.backend``), like 0001.

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
    """Drop and recreate ``cache_embeddings`` (empty)."""
    migrator.backend.drop_spec_tables((EMBEDDINGS,))
    migrator.backend.create_spec_tables((EMBEDDINGS,))


def down(migrator: Migrator, db: object) -> None:
    """Empty ``cache_embeddings`` again (what an older version reads back)."""
    up(migrator, db)
