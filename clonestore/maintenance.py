"""Maintenance: the retention and upkeep tasks that ``store.maintain()`` and
``clonestore maintain`` run.

Plugins contribute tasks through ``clonestore_maintenance_tasks`` (the cache
removes expired entries, the rate limiter old windows, the audit purges entries
past retention with each chain anchored); the core contributes two, removing
soft-deleted rows past a configured age through the repositories (so their
dependants go with them and plugins see every write), and turns past a
configured age (``turns``: whole time partitions where the backend has them).
No task names an engine.

Each task is bounded: it works in batches of at most ``batch_size`` rows, one
transaction each, and stops at its time limit (reported as not ``complete``,
the rest left for the next run). A run holds a lease (a row of
``maintenance_leases``): a second process that starts while it is held runs
nothing and reports who holds it. A lease left by a process that died expires.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, cast

import attrs

from clonestore.errors import AlreadyExists, ClonestoreError, ValidationError
from clonestore.query import And, Cond, Expr, OrderBy
from clonestore.schema import Column, TableSpec
from clonestore.spi import TimePartitions, capabilities_of

#: The store a task runs on: a :class:`clonestore.Store` (typed loosely here, since the
#: store module imports this one).
Store = Any

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_TIME_LIMIT",
    "LEASES",
    "MaintenanceReport",
    "MaintenanceTask",
    "TaskReport",
    "TaskRun",
    "delete_in_batches",
    "maintain",
]

#: Rows a task removes per transaction, unless told otherwise.
DEFAULT_BATCH_SIZE: Final = 1_000
#: Seconds a task may run before it stops (complete or not), unless told otherwise.
DEFAULT_TIME_LIMIT: Final = 60.0
#: The name of the lease row every ``maintain`` run takes.
_LEASE: Final = "maintain"
#: Seconds a lease outlives its run's time budget, so a process that died frees it.
_LEASE_SLACK: Final = 60.0

#: One row per lease: who holds it and until when.
LEASES: Final = TableSpec(
    name="maintenance_leases",
    columns=(
        Column(name="id", kind="id"),
        Column(name="holder", kind="key", max_length=200),
        Column(name="acquired_at", kind="datetime"),
        Column(name="expires_at", kind="datetime"),
    ),
)


class TaskRun:
    """What a task gets when it runs: its retention, batch size and time budget.

    ``retention`` is the age past which its rows go (None for tasks that are not
    age-based); a task calls :meth:`time_left` between batches and stops when it
    is False, and :meth:`advance` after each batch with the rows it removed.
    """

    def __init__(
        self,
        store: Store,
        name: str,
        retention: timedelta | None,
        batch_size: int,
        deadline: float,
        progress: Callable[[str, int], None] | None,
    ) -> None:
        self.store = store
        self.name = name
        self.retention = retention
        self.batch_size = batch_size
        self.deadline = deadline
        self.removed = 0
        self.complete = True
        self._progress = progress

    def time_left(self) -> bool:
        """Whether the task may start another batch; False marks it incomplete."""
        if time.monotonic() < self.deadline:
            return True
        self.complete = False
        return False

    def advance(self, removed: int) -> None:
        """Count a batch's rows and report progress."""
        self.removed += removed
        if self._progress is not None:
            self._progress(self.name, self.removed)


@attrs.frozen(kw_only=True)
class MaintenanceTask:
    """A unit of upkeep a plugin (or the core) contributes.

    ``run(task_run)`` removes what is due in batches of at most
    ``task_run.batch_size`` rows, each in its own transaction, checks
    ``task_run.time_left()`` between batches and counts them with
    ``task_run.advance(n)``. ``retention`` is the default age past which rows go
    (None: the task is not age-based, or, with ``needs_retention``, does nothing
    until an age is configured).
    """

    name: str
    run: Callable[[TaskRun], None]
    description: str = ""
    retention: timedelta | None = None
    needs_retention: bool = False


@attrs.frozen(kw_only=True)
class TaskReport:
    """What one task did."""

    name: str
    removed: int = 0
    complete: bool = True
    seconds: float = 0.0
    retention_days: float | None = None
    skipped: str | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class MaintenanceReport:
    """What a ``maintain`` run did: ``ran`` is False when another process held the
    lease (``held_by`` names it) and nothing was done."""

    ran: bool
    held_by: str | None = None
    tasks: tuple[TaskReport, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every task ran without an error."""
        return all(task.error is None for task in self.tasks)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {**attrs.asdict(self), "ok": self.ok}


def delete_in_batches(run: TaskRun, table: TableSpec, where: Expr, order_by: str) -> None:
    """Remove the rows of ``table`` matching ``where``, oldest ``order_by`` first, in
    batches of ``run.batch_size``, each in its own transaction, straight on the
    store's backend (for plugin tables nobody else audits), until none is left or
    the time is up."""
    backend = run.store.backend
    while run.time_left():
        with backend.transaction():
            rows = backend.select(table, where, (OrderBy(order_by), OrderBy("id")), run.batch_size)
            if not rows:
                return
            ids = [row["id"] for row in rows]
            removed = backend.delete(table, And((where, Cond("id", "in", ids))))
        run.advance(removed)
        if len(rows) < run.batch_size:
            return


def _soft_deleted(run: TaskRun) -> None:
    """Remove rows soft-deleted longer ago than the retention, through the
    repositories: a user goes with everything about them (``erase_user``), so
    plugins (audit, cache) see each removal."""
    store = run.store
    assert run.retention is not None
    cutoff = store.clock() - run.retention
    for name in ("users", "voice_models", "face_models", "documents", "memories"):
        repo = getattr(store, name)
        while run.time_left():
            due = repo.find_many(
                where={"deleted_at__lte": cutoff},
                with_deleted=True,
                order_by=["deleted_at", "id"],
                limit=run.batch_size,
            )
            if not due:
                break
            with store.transaction():
                for record in due:
                    repo.hard_delete(record.id)
            run.advance(len(due))
            if len(due) < run.batch_size:
                break


def _old_turns(run: TaskRun) -> None:
    """Remove turns created longer ago than the retention, through the turns
    repository's writes (so the cache and the audit see them). Where the backend
    keeps turns in partitions by time (capability ``time_partitions``), the months
    wholly past retention go first in one step, each partition dropped whole; the
    rest in batches. Sessions keep their totals (what they came to)."""
    store = run.store
    turns = store.turns
    assert run.retention is not None
    cutoff = store.clock() - run.retention
    if "time_partitions" in capabilities_of(store.backend):
        backend = cast(TimePartitions, store.backend)
        bound = backend.partition_bound(turns.spec, "created_at", cutoff)
        if bound is not None and run.time_left():
            with store.transaction():
                run.advance(turns._delete("retention", Cond("created_at", "lt", bound)))
    due = Cond("created_at", "lt", cutoff)
    while run.time_left():
        rows = turns._select("retention", due, (OrderBy("created_at"), OrderBy("id")),
                             run.batch_size)  # fmt: skip
        if not rows:
            return
        with store.transaction():
            ids = [row["id"] for row in rows]
            run.advance(turns._delete("retention", And((due, Cond("id", "in", ids)))))
        if len(rows) < run.batch_size:
            return


#: The core's turn retention (opt-in: no default age).
OLD_TURNS: Final = MaintenanceTask(
    name="turns",
    run=_old_turns,
    description="remove turns created longer ago than the retention (sessions keep their totals)",
    needs_retention=True,
)

#: The task the core contributes.
SOFT_DELETED: Final = MaintenanceTask(
    name="soft_deleted",
    run=_soft_deleted,
    description="remove rows soft-deleted longer ago than the retention, with their dependants",
    needs_retention=True,
)


def _days(value: Any, name: str) -> timedelta:
    if isinstance(value, timedelta):
        days = value
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("must be a number of days or a timedelta", field=name)
    else:
        if not 0 <= value <= 36_500:  # NaN fails too
            raise ValidationError("must be from 0 to 36500 days", field=name)
        days = timedelta(days=value)
    if days < timedelta(0):
        raise ValidationError("must not be negative", field=name)
    return days


def _tasks(store: Store) -> list[MaintenanceTask]:
    tasks = [SOFT_DELETED, OLD_TURNS]
    for contributed in store.hook.clonestore_maintenance_tasks(store=store):
        tasks.extend(contributed)
    names = [task.name for task in tasks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationError(f"two maintenance tasks are named {duplicates}")
    return tasks


def maintenance_tasks(store: Store) -> list[MaintenanceTask]:
    """Every task ``store.maintain()`` would run, the core's and the plugins'."""
    return _tasks(store)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _acquire(store: Store, holder: str, seconds: float) -> str | None:
    """Take the lease; None when taken, else who holds it."""
    backend = store.backend
    now = store.clock()
    expires = now + timedelta(seconds=seconds)
    try:
        backend.insert(
            LEASES, {"id": _LEASE, "holder": holder, "acquired_at": now, "expires_at": expires}
        )
        return None
    except AlreadyExists:
        pass
    # Held, or left by a run that died: take it only if it expired (one atomic step).
    stale = And((Cond("id", "eq", _LEASE), Cond("expires_at", "lt", now)))
    if backend.update(LEASES, stale, {"holder": holder, "acquired_at": now, "expires_at": expires}):
        return None
    row = backend.get(LEASES, _LEASE)
    if row is None:  # released between the two steps: try once more
        return _acquire(store, holder, seconds) if seconds > 0 else "unknown"
    return str(row["holder"])


def _release(store: Store, holder: str) -> None:
    store.backend.delete(LEASES, And((Cond("id", "eq", _LEASE), Cond("holder", "eq", holder))))


def maintain(
    store: Store,
    *,
    tasks: Iterable[str] | None = None,
    retention: Mapping[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_limit: float = DEFAULT_TIME_LIMIT,
    progress: Callable[[str, int], None] | None = None,
) -> MaintenanceReport:
    """Run every due task (or those named in ``tasks``); see ``Store.maintain``."""
    if type(batch_size) is not int or not 1 <= batch_size <= 100_000:
        raise ValidationError("must be an integer from 1 to 100000", field="batch_size")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not (
        0 < time_limit <= 86_400
    ):
        raise ValidationError("must be seconds, more than 0 and at most 86400", field="time_limit")
    if store.in_transaction:
        raise ClonestoreError("maintain() runs its own transactions; call it outside one")
    available = _tasks(store)
    by_name = {task.name: task for task in available}
    chosen: Sequence[MaintenanceTask] = available
    if tasks is not None:
        wanted = list(tasks)
        unknown = sorted(set(wanted) - set(by_name))
        if unknown:
            raise ValidationError(
                f"no maintenance task named {unknown}; there are {sorted(by_name)}", field="tasks"
            )
        chosen = [task for task in available if task.name in wanted]
    ages = {name: _days(value, name) for name, value in (retention or {}).items()}
    unknown = sorted(set(ages) - set(by_name))
    if unknown:
        raise ValidationError(
            f"no maintenance task named {unknown}; there are {sorted(by_name)}", field="retention"
        )
    started = time.monotonic()
    holder = _holder()
    held_by = _acquire(store, holder, time_limit * max(len(chosen), 1) + _LEASE_SLACK)
    if held_by is not None:
        return MaintenanceReport(ran=False, held_by=held_by, seconds=time.monotonic() - started)
    reports: list[TaskReport] = []
    try:
        for task in chosen:
            reports.append(_run_task(store, task, ages, batch_size, time_limit, progress))
    finally:
        _release(store, holder)
    return MaintenanceReport(ran=True, tasks=tuple(reports), seconds=time.monotonic() - started)


def _run_task(
    store: Store,
    task: MaintenanceTask,
    ages: Mapping[str, timedelta],
    batch_size: int,
    time_limit: float,
    progress: Callable[[str, int], None] | None,
) -> TaskReport:
    retention = ages.get(task.name, task.retention)
    days = retention / timedelta(days=1) if retention is not None else None
    if task.needs_retention and retention is None:
        return TaskReport(
            name=task.name,
            skipped=f"no age configured (retention {task.name}=DAYS)",
        )
    begun = time.monotonic()
    run = TaskRun(store, task.name, retention, batch_size, begun + time_limit, progress)
    error = None
    try:
        task.run(run)
    except ClonestoreError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return TaskReport(
        name=task.name,
        removed=run.removed,
        complete=run.complete and error is None,
        seconds=round(time.monotonic() - begun, 6),
        retention_days=days,
        error=error,
    )
