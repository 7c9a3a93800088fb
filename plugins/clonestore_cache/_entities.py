"""Read-through caching of ``get(id)`` for the entity repositories.

Rows are cached in L1 only (a backend table in front of the same backend
would cost what the read costs). Inside a transaction the cache steps aside:
it neither serves (the transaction may have written the row) nor keeps (the
row may be rolled back). Cached rows are invalidated once the outermost
transaction commits, from the operations it committed: a keyed write drops
its row, a write by filter (``update_many``, cascades) drops its table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from clonestore import Operation
from clonestore.spi import Row, TableSpec
from clonestore.spi_reference import copy_row
from clonestore_cache._channel import Invalidation
from clonestore_cache._l1 import L1, MISSING, Flights

__all__ = ["EntityReads", "Levels", "namespace"]

#: Writes that cannot touch a cached row: new rows have new ids.
_INSERTS = frozenset({"insert", "insert_many"})


def namespace(table: str) -> str:
    """The L1 namespace of a table's rows."""
    return f"entity:{table}"


class Levels(Protocol):
    """What entity reads use of the two-level cache (``_levels.TwoLevelCache``)."""

    l1: L1
    flights: Flights
    l1_ttl: float

    @property
    def use_l1(self) -> bool: ...
    @property
    def notified(self) -> bool: ...
    def now(self) -> datetime: ...
    def count(self, name: str, which: int) -> None: ...
    def epoch(self, namespace: str) -> tuple[int, int]: ...


class EntityReads:
    """The ``clonestore_read`` side of the cache."""

    def __init__(self, cache: Levels) -> None:
        self._cache = cache

    @staticmethod
    def _copy(table: TableSpec, row: Row) -> Row:
        return copy_row(row, table.mutable_columns)

    def read(self, op: Operation, fetch: Callable[[], Any]) -> Row | None:
        """Answer ``get`` reads from L1, or fetch once for all concurrent callers."""
        cache = self._cache
        if op.kind != "get" or op.key is None or not cache.use_l1 or not cache.notified:
            return None
        table = op.table
        ns = namespace(table.name)
        now = cache.now().timestamp()
        cached = cache.l1.get(ns, op.key, now)
        if cached is not MISSING:
            cache.count("entity", 0)
            return self._copy(table, cached)
        cache.count("entity", 2)
        epoch = cache.epoch(ns)

        def load() -> Row | None:
            row: Row | None = fetch()
            # Keep it only if nothing was invalidated meanwhile: the row read may
            # predate a commit whose invalidation has already run.
            if row is not None and cache.epoch(ns) == epoch:
                owner = row["id"] if table.name == "users" else row.get("user_id")
                cache.l1.put(ns, op.key, self._copy(table, row), now + cache.l1_ttl, owner)
            return row

        row, fetched_here = cache.flights.run((ns, op.key), load)
        if row is None or fetched_here:
            return row
        return self._copy(table, row)

    def invalidation(self, ops: Sequence[Operation]) -> Invalidation:
        """What the committed ``ops`` make stale."""
        keys: dict[tuple[str, str], None] = {}
        tables: dict[str, None] = {}
        for op in ops:
            if op.kind in _INSERTS:
                continue
            if op.key is not None:
                keys[(namespace(op.table.name), op.key)] = None
            else:
                tables[namespace(op.table.name)] = None
        return Invalidation(
            keys=tuple(k for k in keys if k[0] not in tables), namespaces=tuple(tables)
        )
