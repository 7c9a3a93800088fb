"""The audit's maintenance task: ``audit.purge``, entries past retention (90 days,
as the original kept them), each cut chain anchored as ``audit.purge`` does. Where
the backend keeps the log in partitions by time (capability ``time_partitions``),
the months wholly past retention go first in one step, their partitions dropped."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, cast

from clonestore.maintenance import MaintenanceTask, TaskRun
from clonestore.query import Cond, OrderBy
from clonestore.spi import TimePartitions, capabilities_of
from clonestore_audit._chain import stamp_of
from clonestore_audit._service import _PURGE_ATTEMPTS, AuditLog, _Raced
from clonestore_audit._tables import LOG

#: How long entries are kept: the original's 90-day audit retention.
RETENTION: Final = timedelta(days=90)


def _purge_up_to(log: AuditLog, backend: Any, up_to: int, cutoff: datetime) -> int:
    """One step of ``AuditLog.purge``'s (anchor, remove, ``audit.purge`` entry), retried
    when entries arrived under the bound meanwhile; how many went."""
    for _ in range(_PURGE_ATTEMPTS):
        try:
            with backend.transaction():
                return log._purge(up_to, cutoff)
        except _Raced:
            continue
    return 0


def _purge(run: TaskRun) -> None:
    """Purge in steps of about ``batch_size`` entries, oldest first: each step is one
    transaction of ``AuditLog.purge``'s (anchor, remove, ``audit.purge`` entry)."""
    log: AuditLog = run.store.services["audit"]
    backend = run.store.backend
    assert run.retention is not None
    cutoff = log._now() - run.retention
    target = stamp_of(cutoff) - 1
    if "time_partitions" in capabilities_of(backend):
        # The months wholly past retention in one step: the backend drops their
        # partitions whole (the anchors are taken as for any purge).
        bound = cast(TimePartitions, backend).partition_bound(LOG, "stamp", target + 1)
        if bound is not None and run.time_left():
            run.advance(_purge_up_to(log, backend, bound - 1, cutoff))
    while run.time_left():
        nth = backend.select(
            LOG,
            Cond("stamp", "lte", target),
            (OrderBy("stamp"), OrderBy("id")),
            limit=1,
            offset=run.batch_size - 1,
        )
        up_to = nth[0]["stamp"] if nth else target
        removed = _purge_up_to(log, backend, up_to, cutoff)
        run.advance(removed)
        if not nth or not removed:
            return


TASK = MaintenanceTask(
    name="audit.purge",
    run=_purge,
    description="remove audit entries past retention, each cut chain anchored",
    retention=RETENTION,
)
