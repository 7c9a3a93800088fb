"""The cache's second level: the seed system's three cache tables."""

from __future__ import annotations

from typing import Final

from clonestore.spi import Column, Index, TableSpec, Unique

__all__ = ["EMBEDDINGS", "LLM_RESPONSES", "TABLES", "VECTOR_SEARCH"]

HASH_LENGTH: Final = 512
MAX_DIMENSIONS: Final = 65_536
MAX_RESPONSE: Final = 1_000_000

#: Embeddings by query hash (default time to live: one hour).
EMBEDDINGS: Final = TableSpec(
    name="cache_embeddings",
    columns=(
        Column(name="id", kind="id"),
        Column(name="query_hash", kind="key", max_length=HASH_LENGTH),
        Column(name="embedding", kind="vector", max_length=MAX_DIMENSIONS),
        Column(name="model", kind="text", nullable=True, max_length=200),
        Column(name="user_id", kind="key", nullable=True, max_length=200),
        Column(name="created_at", kind="datetime"),
        Column(name="expires_at", kind="datetime"),
    ),
    unique=(Unique(("query_hash",)),),
    indexes=(Index(("expires_at",)), Index(("user_id",))),
)

#: Vector-search results by query hash and user (default: 30 minutes).
VECTOR_SEARCH: Final = TableSpec(
    name="cache_vector_search",
    columns=(
        Column(name="id", kind="id"),
        Column(name="query_hash", kind="key", max_length=HASH_LENGTH),
        Column(name="user_id", kind="key", max_length=200),
        Column(name="results", kind="json"),
        Column(name="created_at", kind="datetime"),
        Column(name="expires_at", kind="datetime"),
    ),
    unique=(Unique(("query_hash", "user_id")),),
    indexes=(Index(("expires_at",)), Index(("user_id",))),
)

#: LLM responses by prompt hash, with their provider and hit count (default: one hour).
LLM_RESPONSES: Final = TableSpec(
    name="cache_llm_responses",
    columns=(
        Column(name="id", kind="id"),
        Column(name="prompt_hash", kind="key", max_length=HASH_LENGTH),
        Column(name="response", kind="text", max_length=MAX_RESPONSE),
        Column(name="provider", kind="text", max_length=200),
        Column(name="hit_count", kind="int"),
        Column(name="user_id", kind="key", nullable=True, max_length=200),
        Column(name="created_at", kind="datetime"),
        Column(name="expires_at", kind="datetime"),
    ),
    unique=(Unique(("prompt_hash",)),),
    indexes=(Index(("expires_at",)), Index(("user_id",))),
)

#: The seed caches: name -> (table, key columns).
TABLES: Final = {
    "embedding": (EMBEDDINGS, ("query_hash",)),
    "vector_search": (VECTOR_SEARCH, ("query_hash", "user_id")),
    "llm_response": (LLM_RESPONSES, ("prompt_hash",)),
}
