"""The cache's second level: the :class:`L2Store` protocol and its default,
:class:`TableL2` (the backend's cache tables).

``CachePlugin(l2=url)`` puts L2 elsewhere: the first plugin offering the
URL's scheme through ``clonestore_shared_stores(kind="cache.l2")`` makes the
store (``redis://``, ``rediss://`` and ``redis+cluster://`` by the
``clonestore_redis`` plugin). An L2 store that also implements
:class:`clonestore.spi.ListenNotify` carries the cache's invalidations
between processes too.

Entries are rows (plain dicts, the columns of the cache's tables in
:mod:`clonestore_cache._tables`), identified by ``(cache name, row id)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable

from clonestore.query import Cond
from clonestore.spi import Backend, Increment, Row
from clonestore_cache._tables import TABLES

__all__ = ["KIND", "L2Store", "TableL2"]

#: The ``kind`` asked of ``clonestore_shared_stores``.
KIND: Final = "cache.l2"


@runtime_checkable
class L2Store(Protocol):
    """What the cache needs of its second level. Failing to reach the storage
    raises :class:`clonestore.StorageUnavailable`."""

    def get(self, name: str, row_id: str) -> Row | None:
        """The entry (expired or not: the caller checks ``expires_at``), or None."""

    def put(self, name: str, row: Mapping[str, Any]) -> Row:
        """Keep ``row`` (replacing the entry with its id) until its ``expires_at``;
        returns it as stored."""

    def add_hits(self, name: str, row_id: str, hits: int) -> None:
        """Add ``hits`` to the entry's ``hit_count``, if it still exists."""

    def count(self, name: str, now: datetime) -> int:
        """How many entries have not expired at ``now``."""

    def delete_expired(self, name: str, now: datetime) -> int:
        """Remove the entries expired at ``now``; how many."""

    def user_rows(self, name: str, user_id: str) -> list[Row]:
        """The entries marked with ``user_id``."""

    def delete_user(self, name: str, user_id: str) -> int:
        """Remove the entries marked with ``user_id``; how many."""

    def close(self) -> None:
        """Release connections."""


class TableL2:
    """L2 in the store's backend: one table per seed cache."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def get(self, name: str, row_id: str) -> Row | None:
        return self.backend.get(TABLES[name][0], row_id)

    def put(self, name: str, row: Mapping[str, Any]) -> Row:
        spec, key_columns = TABLES[name]
        changes = {c: v for c, v in row.items() if c != "id" and c not in key_columns}
        return self.backend.upsert(spec, key_columns, dict(row), changes)

    def add_hits(self, name: str, row_id: str, hits: int) -> None:
        spec = TABLES[name][0]
        self.backend.update(spec, Cond("id", "eq", row_id), {"hit_count": Increment(hits)})

    def count(self, name: str, now: datetime) -> int:
        return self.backend.count(TABLES[name][0], Cond("expires_at", "gt", now))

    def delete_expired(self, name: str, now: datetime) -> int:
        return self.backend.delete(TABLES[name][0], Cond("expires_at", "lte", now))

    def user_rows(self, name: str, user_id: str) -> list[Row]:
        return self.backend.select(TABLES[name][0], Cond("user_id", "eq", user_id))

    def delete_user(self, name: str, user_id: str) -> int:
        return self.backend.delete(TABLES[name][0], Cond("user_id", "eq", user_id))

    def close(self) -> None:
        """Nothing to release: the store closes its backend."""
