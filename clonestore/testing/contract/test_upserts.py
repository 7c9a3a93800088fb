"""Contract: ``upsert`` is one atomic step on the constraint it names, and no other.

Rate limits and quotas count with upserts, so racing upserts must all count,
from threads and from processes; an upsert applies its changes only to a row
its constraint covers (live, matching ``when``); and a clash with another of
the table's unique constraints is ``AlreadyExists``, changing nothing (SQL's
``ON DUPLICATE KEY UPDATE`` would update whichever row clashed).
"""

from __future__ import annotations

import multiprocessing
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import pytest

import clonestore
from clonestore import AlreadyExists, StorageUnavailable, Store
from clonestore.query import TRUE, Cond, OrderBy
from clonestore.spi import Backend, Column, Increment, Row, TableSpec, Unique
from clonestore.testing import StoreFactory
from clonestore.testing.contract._builders import race

COUNTERS = TableSpec(
    name="contract_upsert_counters",
    columns=(
        Column(name="id", kind="id"),
        Column(name="owner", kind="key"),
        Column(name="slot", kind="int"),
        Column(name="active", kind="bool"),
        Column(name="hits", kind="int"),
        Column(name="total", kind="decimal"),
        Column(name="note", kind="text", nullable=True),
        Column(name="deleted_at", kind="datetime", nullable=True),
    ),
    unique=(Unique(("owner", "slot")), Unique(("owner",), when=(("active", True),))),
)

#: Racing writers, and upserts each makes.
THREADS: Final = 8
PROCESSES: Final = 4
PER_WRITER: Final = 25

T0 = datetime(2024, 1, 1, tzinfo=UTC)
_BY_SLOT: Final = (OrderBy("owner"), OrderBy("slot"), OrderBy("id"))


def _fresh(store: Store) -> Backend:
    backend = store.backend
    backend.create_tables([COUNTERS])
    backend.delete(COUNTERS, TRUE)
    return backend


def _counter(owner: str, slot: int, **values: object) -> Row:
    row: Row = {
        "id": str(uuid.uuid4()),
        "owner": owner,
        "slot": slot,
        "active": False,
        "hits": 1,
        "total": Decimal("0.010000"),
        "note": None,
        "deleted_at": None,
    }
    row.update(values)
    return row


_COUNT: Final = {"hits": Increment(1), "total": Increment(Decimal("0.010000"))}


def _count_once(backend: Backend, owner: str) -> None:
    backend.upsert(COUNTERS, ("owner", "slot"), _counter(owner, 1), _COUNT)


def test_upsert_applies_changes_only_within_its_when_scope(store: Store) -> None:
    """An upsert on a ``when`` constraint updates only a row in scope, else inserts."""
    backend = _fresh(store)
    inactive = _counter("u1", 1, hits=10)
    backend.insert(COUNTERS, inactive)
    first = backend.upsert(
        COUNTERS, ("owner",), _counter("u1", 2, active=True), {"hits": Increment(1)}
    )
    assert first["id"] != inactive["id"]
    assert (first["slot"], first["hits"], first["active"]) == (2, 1, True)
    second = backend.upsert(
        COUNTERS, ("owner",), _counter("u1", 3, active=True), {"hits": Increment(1)}
    )
    assert second["id"] == first["id"]
    assert (second["slot"], second["hits"]) == (2, 2)
    assert backend.get(COUNTERS, inactive["id"]) == inactive
    assert backend.count(COUNTERS, TRUE) == 2


def test_upsert_never_updates_a_soft_deleted_row(store: Store) -> None:
    """An upsert whose key only a soft-deleted row holds inserts, leaving the dead row."""
    backend = _fresh(store)
    dead = _counter("u1", 1, hits=50, deleted_at=T0)
    backend.insert(COUNTERS, dead)
    live = backend.upsert(COUNTERS, ("owner", "slot"), _counter("u1", 1), {"hits": Increment(1)})
    assert live["id"] != dead["id"]
    assert (live["hits"], live["deleted_at"]) == (1, None)
    again = backend.upsert(COUNTERS, ("owner", "slot"), _counter("u1", 1), {"hits": Increment(1)})
    assert (again["id"], again["hits"]) == (live["id"], 2)
    assert backend.get(COUNTERS, dead["id"]) == dead


def test_upsert_clashing_with_another_constraint_changes_nothing(store: Store) -> None:
    """An upsert clashing with another unique constraint is AlreadyExists, changing nothing."""
    backend = _fresh(store)
    holder = _counter("u1", 1, active=True, hits=5)
    backend.insert(COUNTERS, holder)
    before = backend.select(COUNTERS, TRUE, _BY_SLOT)
    with pytest.raises(AlreadyExists):
        # Key (owner, slot) = (u1, 2) is free; (owner | active) is held by the row above.
        backend.upsert(
            COUNTERS, ("owner", "slot"), _counter("u1", 2, active=True), {"hits": Increment(1)}
        )
    assert backend.select(COUNTERS, TRUE, _BY_SLOT) == before


def test_upserts_racing_from_threads_all_count(store: Store) -> None:
    """Threads racing upserts on one new key make one row counting every upsert exactly."""
    backend = _fresh(store)

    def count(_: int) -> None:
        for _ in range(PER_WRITER):
            _count_once(backend, "racer")

    errors = race(THREADS, count)
    assert not errors, (
        f"racing upserts raised {errors[:3]!r}: the loser of the race to insert a new key "
        "must apply the changes instead (one atomic step, as INSERT ... ON CONFLICT ... "
        "DO UPDATE is), not fail"
    )
    rows = backend.select(COUNTERS, Cond("owner", "eq", "racer"), _BY_SLOT)
    _assert_counted(rows, THREADS * PER_WRITER)


def _assert_counted(rows: list[Row], total: int) -> None:
    got = [(r["hits"], r["total"]) for r in rows]
    assert got == [(total, Decimal("0.01") * total)], (
        f"{total} racing upserts left {got}: an upsert that reads, then writes the sum, "
        "loses the counts of the writers in between (Increment must be applied in the "
        "write itself: SET hits = hits + 1)"
    )


#: A worker's exit code when its process may not open the storage another holds.
EXCLUSIVE: Final = 3


def count_in_process(url: str, owner: str, start: object) -> None:
    """A worker process: open ``url`` and upsert :data:`PER_WRITER` times on one key."""
    try:
        store = clonestore.open(url)
    except StorageUnavailable:
        sys.exit(EXCLUSIVE)  # one process at a time (as the jsonfile example backend)
    try:
        backend = store.backend
        backend.create_tables([COUNTERS])
        start.wait(timeout=60)  # type: ignore[attr-defined]
        for _ in range(PER_WRITER):
            _count_once(backend, owner)
    finally:
        store.close()


def _unshared(url: str, backend: Backend) -> str | None:
    """Why storage at ``url`` cannot be shared between processes, known without starting
    any: a second store opened on it in this process is refused, or does not see a row
    the first wrote. None when it may be shared (the worker processes tell)."""
    probe = _counter(f"probe-{uuid.uuid4().hex[:8]}", 0)
    backend.insert(COUNTERS, probe)
    try:
        second = clonestore.open(url)
    except StorageUnavailable:
        return "held by one store"
    try:
        second.backend.create_tables([COUNTERS])
        if second.backend.get(COUNTERS, probe["id"]) is None:
            return "each store has its own"
    finally:
        second.close()
        backend.delete(COUNTERS, Cond("id", "eq", probe["id"]))
    return None


def test_upserts_racing_from_processes_all_count(store_factory: StoreFactory) -> None:
    """Processes racing upserts on one new key make one row counting every upsert exactly."""
    store = store_factory()
    backend = _fresh(store)
    # Before starting processes (seconds each): storage private to one store is not shared.
    unshared = _unshared(store_factory.url, backend)
    if unshared is not None:
        pytest.skip(f"{store.backend.name}: storage is not shared between processes ({unshared})")
    owner = f"processes-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=count_in_process, args=(store_factory.url, owner, start))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=180)
    exits = [w.exitcode for w in workers]
    if exits == [EXCLUSIVE] * PROCESSES:
        pytest.skip(f"{store.backend.name}: storage is not shared between processes (held by one)")
    assert exits == [0] * PROCESSES, (
        f"worker processes exited with {exits} (their errors are printed above): racing "
        "upserts must neither fail nor deadlock"
    )
    rows = backend.select(COUNTERS, Cond("owner", "eq", owner), _BY_SLOT)
    if not rows:
        pytest.skip(f"{store.backend.name}: storage is not shared between processes")
    _assert_counted(rows, PROCESSES * PER_WRITER)
