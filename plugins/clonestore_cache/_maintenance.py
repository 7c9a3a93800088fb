"""The cache's maintenance task: ``cache.expired``."""

from __future__ import annotations

from clonestore.maintenance import MaintenanceTask, TaskRun, delete_in_batches
from clonestore.query import Cond
from clonestore_cache._l2 import TableL2
from clonestore_cache._levels import TwoLevelCache
from clonestore_cache._tables import TABLES


def _expired(run: TaskRun) -> None:
    """Remove expired entries: in batches from the store's tables, or with the shared
    store's own call (a shared L2 such as Redis expires its keys itself)."""
    cache: TwoLevelCache = run.store.services["cache"]
    cache.flush_hit_counts()
    now = cache.now()
    if isinstance(cache.l2, TableL2):
        for name in TABLES:
            delete_in_batches(run, TABLES[name][0], Cond("expires_at", "lte", now), "expires_at")
    else:
        run.advance(sum(cache.l2.delete_expired(name, now) for name in TABLES))
    cache.l1.drop_expired(now.timestamp())


TASK = MaintenanceTask(
    name="cache.expired",
    run=_expired,
    description="remove expired cache entries",
)
