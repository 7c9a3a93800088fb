"""Caching for clonestore: ``store.cache``.

Two levels: an in-process LRU with expiry (L1) in front of backend tables
(L2). It keeps the seed system's three caches (embeddings by query hash,
vector-search results by query hash and user, LLM responses by prompt hash
with hit counts) and caches ``get(id)`` of the entity repositories read
through, invalidated after commit (across processes on PostgreSQL by
``LISTEN``/``NOTIFY``). Enable it by name or configure a plugin object::

    store = clonestore.open(url, plugins=["cache"])
    store = clonestore.open(url, plugins=[CachePlugin(l1_size=50_000, l1_ttl=30)])

See ``docs/plugins.md`` for the guarantees and the staleness bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clonestore import Operation, Store, TableSpec, ValidationError, hookimpl
from clonestore_cache._channel import CHANNEL, Invalidation, PostgresChannel
from clonestore_cache._l1 import FLIGHT_WAIT
from clonestore_cache._levels import (
    DEFAULT_L1_TTL,
    DEFAULT_TTLS,
    UNNOTIFIED_L1_TTL,
    CacheConfig,
    CacheStats,
)
from clonestore_cache._service import Cache, LLMResponse
from clonestore_cache._tables import EMBEDDINGS, LLM_RESPONSES, VECTOR_SEARCH
from clonestore_cache._values import hash_text

__all__ = [
    "CHANNEL",
    "DEFAULT_L1_TTL",
    "DEFAULT_TTLS",
    "FLIGHT_WAIT",
    "UNNOTIFIED_L1_TTL",
    "Cache",
    "CacheConfig",
    "CachePlugin",
    "CacheStats",
    "Invalidation",
    "LLMResponse",
    "PostgresChannel",
    "hash_text",
    "plugin",
]


class CachePlugin:
    """The cache plugin; attaches a :class:`Cache` as ``store.cache``.

    :param l1_size: entries kept in process (all caches together).
    :param l1_ttl: seconds an entry lives in process at most. Default by URL:
        300 on ``memory://``, 60 on PostgreSQL (invalidated by ``NOTIFY``; the
        time to live is a safety net), 2 elsewhere (SQLite shared by several
        processes: the staleness bound).
    :param ttls: time to live per seed cache (``embedding``, ``vector_search``,
        ``llm_response``), in seconds.
    :param entities: cache ``get(id)`` of the entity repositories. Without it
        the plugin has no read or commit hook, so writes cost nothing extra.
    :param listen: on PostgreSQL, invalidate across processes with ``LISTEN``/``NOTIFY``.
    """

    def __new__(cls, **config: Any) -> CachePlugin:
        if config.get("entities", True) and cls is CachePlugin:
            cls = _ReadThroughCachePlugin
        return object.__new__(cls)

    def __init__(
        self,
        *,
        l1_size: int = 10_000,
        l1_ttl: float | None = None,
        ttls: Mapping[str, float] | None = None,
        entities: bool = True,
        listen: bool = True,
    ) -> None:
        if type(l1_size) is not int or l1_size < 0:
            raise ValidationError("must be an integer >= 0", field="l1_size")
        if l1_ttl is not None and (not isinstance(l1_ttl, (int, float)) or l1_ttl < 0):
            raise ValidationError("must be seconds >= 0", field="l1_ttl")
        unknown = set(ttls or {}) - set(DEFAULT_TTLS)
        if unknown:
            raise ValidationError(f"unknown caches {sorted(unknown)}", field="ttls")
        self.config = CacheConfig(
            l1_size=l1_size,
            l1_ttl=l1_ttl,
            ttls={**DEFAULT_TTLS, **(ttls or {})},
            listen=listen,
        )
        self.entities = entities

    def __repr__(self) -> str:
        return f"<{type(self).__name__} l1_size={self.config.l1_size}>"

    @hookimpl
    def clonestore_tables(self) -> Sequence[TableSpec]:
        """The seed caches' tables (L2)."""
        return [EMBEDDINGS, VECTOR_SEARCH, LLM_RESPONSES]

    @hookimpl
    def clonestore_store_opened(self, store: Store) -> None:
        """Attach ``store.cache`` (and start listening for invalidations)."""
        read_through = isinstance(self, _ReadThroughCachePlugin)
        store.attach("cache", Cache(store, self.config, read_through=read_through))

    @hookimpl
    def clonestore_store_closed(self, store: Store) -> None:
        """Stop listening; write hit counts kept in process."""
        cache: Cache = store.services["cache"]
        cache.close()

    @hookimpl
    def clonestore_export_user(self, store: Store, user_id: str) -> Mapping[str, Any]:
        """The user's cache entries."""
        cache: Cache = store.services["cache"]
        return cache.export_user(user_id)

    @hookimpl
    def clonestore_erase_user(self, store: Store, user_id: str) -> None:
        """Remove what is cached about the user, in every process."""
        cache: Cache = store.services["cache"]
        cache.erase_user(user_id)


class _ReadThroughCachePlugin(CachePlugin):
    """The cache plugin with read-through caching of ``get(id)``.

    Order: the read hook runs last among read hooks and the commit hook first
    among commit hooks, so the cache is the innermost plugin.
    """

    @hookimpl(trylast=True)
    def clonestore_read(self, store: Store, op: Operation, fetch: Callable[[], Any]) -> Any:
        """Serve ``get`` from L1, or fetch once and keep."""
        cache: Cache = store.services["cache"]
        assert cache.entities is not None
        return cache.entities.read(op, fetch)

    @hookimpl(tryfirst=True)
    def clonestore_after_commit(self, store: Store, ops: Sequence[Operation]) -> None:
        """Invalidate what the committed writes changed, here and elsewhere."""
        cache: Cache = store.services["cache"]
        cache.committed(ops)


#: The plugin enabled by name (``plugins=["cache"]``): default settings.
plugin = CachePlugin()
