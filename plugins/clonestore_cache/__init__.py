"""Caching for clonestore: ``store.cache``.

Two levels: an in-process LRU with expiry (L1) in front of backend tables
(L2). It keeps the seed system's three caches (embeddings by query hash,
vector-search results by query hash and user, LLM responses by prompt hash
with hit counts) and caches ``get(id)`` of the entity repositories read
through, invalidated after commit (across processes through the backend's
``listen_notify`` capability, where it has one). Enable it by name or configure a plugin object::

    store = clonestore.open(url, plugins=["cache"])
    store = clonestore.open(url, plugins=[CachePlugin(l1_size=50_000, l1_ttl=30)])
    store = clonestore.open(url, plugins=[CachePlugin(l2="redis://127.0.0.1:6379/0")])

L2 is the backend's tables unless ``l2`` names a shared store (found by URL
scheme through the ``clonestore_shared_stores`` hook; ``redis://`` by the
``clonestore_redis`` plugin), which then also carries invalidations.

See ``docs/plugins.md`` for the guarantees and the staleness bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clonestore import ConfigurationError, Operation, Store, TableSpec, ValidationError, hookimpl
from clonestore.maintenance import MaintenanceTask
from clonestore.plugin_helpers import open_shared_store
from clonestore.services import CacheService
from clonestore_cache._channel import CHANNEL, Invalidation
from clonestore_cache._l1 import FLIGHT_WAIT
from clonestore_cache._l2 import KIND, L2Store, TableL2
from clonestore_cache._levels import (
    DEFAULT_TTLS,
    NOTIFIED_L1_TTL,
    UNNOTIFIED_L1_TTL,
    CacheConfig,
    CacheStats,
)
from clonestore_cache._maintenance import TASK as MAINTENANCE
from clonestore_cache._service import Cache, LLMResponse
from clonestore_cache._tables import EMBEDDINGS, LLM_RESPONSES, VECTOR_SEARCH
from clonestore_cache._values import hash_text

__all__ = [
    "CHANNEL",
    "DEFAULT_TTLS",
    "FLIGHT_WAIT",
    "NOTIFIED_L1_TTL",
    "UNNOTIFIED_L1_TTL",
    "Cache",
    "CacheConfig",
    "CachePlugin",
    "CacheStats",
    "Invalidation",
    "L2Store",
    "LLMResponse",
    "TableL2",
    "cache_of",
    "hash_text",
    "plugin",
]


class CachePlugin:
    """The cache plugin; attaches a :class:`Cache` as ``store.cache``.

    :param l1_size: entries kept in process (all caches together).
    :param l1_ttl: seconds an entry lives in process at most. Default:
        :data:`NOTIFIED_L1_TTL` (60) where invalidations arrive (the backend's
        ``listen_notify``, or a shared L2's channel; the time to live is a safety
        net), :data:`UNNOTIFIED_L1_TTL` (2) elsewhere (a file shared by several
        processes: the staleness bound).
    :param ttls: time to live per seed cache (``embedding``, ``vector_search``,
        ``llm_response``), in seconds.
    :param entities: cache ``get(id)`` of the entity repositories. Without it
        the plugin has no read or commit hook, so writes cost nothing extra.
    :param listen: invalidate across processes: through a shared ``l2`` that
        carries messages, else through the backend's ``listen_notify``.
    :param l2: the URL of a shared store for L2 (``redis://...``) instead of the
        backend's tables. When it cannot be reached the cache reads through to
        the database (lookups miss, entries are not kept) and recovers by itself.
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
        l2: str | None = None,
    ) -> None:
        if l2 is not None and (not isinstance(l2, str) or "://" not in l2):
            raise ConfigurationError(f"l2 must be a shared store's URL (scheme://...), got {l2!r}")
        self.l2 = l2
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
    def clonestore_migrations(self) -> Mapping[str, str]:
        """Its tables' versioned migrations (``clonestore migrate --plugins cache``)."""
        return {"cache": "clonestore_cache.migrations"}

    @hookimpl
    def clonestore_store_opened(self, store: Store) -> None:
        """Attach ``store.cache`` (and start listening for invalidations)."""
        read_through = isinstance(self, _ReadThroughCachePlugin)
        l2: L2Store | None = None
        if self.l2 is not None:
            l2 = open_shared_store(store.hook, KIND, self.l2, L2Store)
        try:
            cache = Cache(store, self.config, read_through=read_through, l2=l2)
        except BaseException:
            if l2 is not None:
                l2.close()
            raise
        store.attach("cache", cache)

    @hookimpl
    def clonestore_store_closed(self, store: Store) -> None:
        """Stop listening; write hit counts kept in process."""
        cache: Cache = store.services["cache"]
        cache.close()

    @hookimpl
    def clonestore_maintenance_tasks(self, store: Store) -> Sequence[MaintenanceTask]:
        """``cache.expired``, run by ``store.maintain()``."""
        return [MAINTENANCE]

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


#: The core types ``store.cache`` as :class:`clonestore.services.CacheService`; mypy
#: checks here that :class:`Cache` implements it.
_IMPLEMENTS: type[CacheService] = Cache


def cache_of(store: Store) -> Cache:
    """``store.cache`` as the plugin's own :class:`Cache`, with every type precise.

    :raises ConfigurationError: the store was not opened with this plugin.
    """
    service = store.services.get("cache")
    if not isinstance(service, Cache):
        raise ConfigurationError(
            "this store was not opened with the cache plugin; "
            "open it with clonestore.open(url, plugins=['cache'])"
        )
    return service
