"""The rate limiter's maintenance task: ``ratelimit.windows``."""

from __future__ import annotations

from datetime import timedelta

from clonestore.maintenance import MaintenanceTask, TaskRun, delete_in_batches
from clonestore.query import Cond
from clonestore_ratelimit._service import RateLimiter
from clonestore_ratelimit._storage import TableCounters
from clonestore_ratelimit._tables import BUCKETS, WINDOWS
from clonestore_ratelimit._time import to_us

#: Windows that ended, and buckets full, longer ago than this go (as ``cleanup``'s default).
RETENTION = timedelta(days=1)


def _windows(run: TaskRun) -> None:
    """Remove windows that ended, and buckets full since, longer ago than the retention:
    in batches from the store's tables, or with the counter store's own call."""
    limiter: RateLimiter = run.store.services["ratelimit"]
    assert run.retention is not None
    cutoff = run.store.clock() - run.retention
    if isinstance(limiter.storage, TableCounters):
        delete_in_batches(run, WINDOWS, Cond("window_end", "lt", cutoff), "window_end")
        delete_in_batches(run, BUCKETS, Cond("tat_us", "lt", to_us(cutoff)), "tat_us")
    else:
        run.advance(limiter.cleanup(older_than=run.retention))


TASK = MaintenanceTask(
    name="ratelimit.windows",
    run=_windows,
    description="remove rate-limit windows that ended (and buckets full) before the retention",
    retention=RETENTION,
)
