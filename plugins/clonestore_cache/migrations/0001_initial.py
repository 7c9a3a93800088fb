"""0001: the cache plugin's tables, as they were at this version.

Frozen: the specs are copied here, not imported from the plugin, whose tables
move on; the backend creates them (``migrator.backend``), with its column
types, indexes and table options.
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

VECTOR_SEARCH: Final = TableSpec(
    name="cache_vector_search",
    columns=(
        Column(name="id", kind="id"),
        Column(name="query_hash", kind="key", max_length=512),
        Column(name="user_id", kind="key", max_length=200),
        Column(name="results", kind="json"),
        Column(name="created_at", kind="datetime"),
        Column(name="expires_at", kind="datetime"),
    ),
    unique=(Unique(("query_hash", "user_id")),),
    indexes=(
        Index(("expires_at",)),
        Index(("user_id",)),
    ),
)

LLM_RESPONSES: Final = TableSpec(
    name="cache_llm_responses",
    columns=(
        Column(name="id", kind="id"),
        Column(name="prompt_hash", kind="key", max_length=512),
        Column(name="response", kind="text", max_length=1000000),
        Column(name="provider", kind="text", max_length=200),
        Column(name="hit_count", kind="int"),
        Column(name="user_id", kind="key", nullable=True, max_length=200),
        Column(name="created_at", kind="datetime"),
        Column(name="expires_at", kind="datetime"),
    ),
    unique=(Unique(("prompt_hash",)),),
    indexes=(
        Index(("expires_at",)),
        Index(("user_id",)),
    ),
)


#: The tables this migration creates, in order.
TABLES: Final = (EMBEDDINGS, VECTOR_SEARCH, LLM_RESPONSES)


def up(migrator: Migrator, db: object) -> None:
    """Create the tables, with their indexes."""
    migrator.backend.create_spec_tables(TABLES)


def down(migrator: Migrator, db: object) -> None:
    """Drop the tables (and every row in them)."""
    migrator.backend.drop_spec_tables(TABLES[::-1])
