"""``store.maintain()``: every plugin's upkeep, bounded, one process at a time."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

import clonestore
from clonestore import ClonestoreError, ValidationError, hookimpl
from clonestore.maintenance import LEASES, MaintenanceTask, TaskRun
from clonestore.spi import capabilities_of

DAY = 86_400
PLUGINS = ["cache", "ratelimit", "audit"]


def _tasks(report: clonestore.maintenance.MaintenanceReport) -> dict[str, object]:
    return {task.name: task for task in report.tasks}


def _user_with_data(store, email="ada@example.com"):
    user = store.users.create(email=email, name="Ada")
    store.voice_models.create(user_id=user.id, provider="elevenlabs")
    store.documents.create(user_id=user.id, filename="a.txt")
    session = store.sessions.create(user_id=user.id)
    store.sessions.add_turn(session.id, llm_latency_ms=3, llm_cost=Decimal("0.5"))
    return user


def test_maintain_runs_every_due_task(store_factory, clock):
    """Expired cache entries, old windows, audit entries past 90 days and soft-deleted
    rows past the given age go; what is not due stays; the audit chain still verifies."""
    store = store_factory(plugins=PLUGINS, clock=clock)
    old = _user_with_data(store)
    store.cache.set_embedding("h1", [1.0], model="m")
    store.ratelimit.check_and_increment("anonymous", "chat", 10, 60)
    store.users.delete(old.id)
    clock.advance(91 * DAY)
    keep = _user_with_data(store, "bob@example.com")
    store.cache.set_embedding("h2", [2.0], model="m")
    store.users.delete(keep.id)  # deleted today: not yet due
    report = store.maintain(retention={"soft_deleted": 30})
    assert report.ran
    assert report.ok
    tasks = _tasks(report)
    expected = {"soft_deleted", "turns", "cache.expired", "ratelimit.windows", "audit.purge"}
    if "time_partitions" in capabilities_of(store.backend):
        expected.add("partitions")
    assert set(tasks) == expected
    assert tasks["turns"].skipped  # no age configured
    assert tasks["cache.expired"].removed == 1
    assert tasks["ratelimit.windows"].removed == 1
    assert tasks["audit.purge"].removed > 0
    assert tasks["audit.purge"].retention_days == 90
    assert tasks["soft_deleted"].removed == 1  # the user; their rows went with them
    assert store.users.get_or_none(old.id) is None
    assert [u.id for u in store.users.find_many(with_deleted=True)] == [keep.id]
    assert store.documents.count(where={"user_id": old.id}, with_deleted=True) == 0
    assert store.sessions.count(where={"user_id": old.id}) == 0
    assert store.cache.get_embedding("h2") == [2.0]
    assert store.audit.verify().ok


def test_soft_deleted_rows_go_only_when_an_age_is_configured(store_factory, clock):
    """Without a retention for soft_deleted the task is skipped and nothing is removed."""
    store = store_factory(clock=clock)
    user = _user_with_data(store)
    store.users.delete(user.id)
    clock.advance(3650 * DAY)
    task = _tasks(store.maintain())["soft_deleted"]
    assert task.skipped
    assert task.removed == 0
    assert store.users.restore(user.id).id == user.id


def test_a_soft_deleted_document_of_a_live_user_goes_alone(store_factory, clock):
    """A row deleted by itself is hard-deleted when due; its live owner stays."""
    store = store_factory(clock=clock)
    user = _user_with_data(store)
    (doc,) = store.documents.find_many(where={"user_id": user.id})
    store.documents.delete(doc.id)
    clock.advance(8 * DAY)
    report = store.maintain(retention={"soft_deleted": timedelta(days=7)})
    assert report.tasks[0].removed == 1
    assert store.documents.count(where={"user_id": user.id}, with_deleted=True) == 0
    assert store.users.get(user.id).id == user.id


def test_tasks_work_in_batches_and_report_progress(store_factory, clock):
    """With batch_size 2, five expired entries go in three batches, each reported."""
    store = store_factory(plugins=["cache"], clock=clock)
    for i in range(5):
        store.cache.set_embedding(f"h{i}", [float(i)], model="m")
    clock.advance(2 * 3600)
    seen: list[tuple[str, int]] = []
    report = store.maintain(tasks=["cache.expired"], batch_size=2,
                            progress=lambda task, n: seen.append((task, n)))
    assert _tasks(report)["cache.expired"].removed == 5
    assert seen == [("cache.expired", 2), ("cache.expired", 4), ("cache.expired", 5)]


class _Slow:
    """A plugin whose task removes one 'row' per batch until told to stop."""

    def __init__(self, started: threading.Event | None = None, release=None) -> None:
        self.started = started
        self.release = release
        self.batches = 0

    def _run(self, run: TaskRun) -> None:
        if self.started is not None:
            self.started.set()
        if self.release is not None:
            self.release.wait(10)
        while run.time_left():
            self.batches += 1
            run.advance(1)

    @hookimpl
    def clonestore_maintenance_tasks(self, store):
        return [MaintenanceTask(name="slow", run=self._run, description="counts")]


def test_clonestore_maintenance_tasks(store_factory):
    """A plugin's task runs under maintain(); a task stopped by its time limit is reported
    not complete, with what it did."""
    slow = _Slow()
    store = store_factory(plugins=[slow])
    assert "slow" in [task.name for task in store.maintenance_tasks()]
    report = store.maintain(tasks=["slow"], time_limit=0.05)
    (task,) = report.tasks
    assert task.name == "slow"
    assert not task.complete
    assert task.removed == slow.batches > 0


def test_a_second_run_sees_the_lease_held(store_factory, clonestore_url):
    """While one maintain() runs, another (same store or another process's store on the
    same database) runs nothing and names the holder; after it, the lease is free."""
    started, release = threading.Event(), threading.Event()
    slow = _Slow(started, release)
    store = store_factory(plugins=[slow])
    other = store if clonestore_url.startswith("memory") else store_factory()
    results = []
    worker = threading.Thread(
        target=lambda: results.append(store.maintain(tasks=["slow"], time_limit=0.05))
    )
    worker.start()
    try:
        assert started.wait(10)
        held = other.maintain()
        assert not held.ran
        assert held.held_by
        assert held.tasks == ()
    finally:
        release.set()
        worker.join(20)
    assert results[0].ran
    # On memory:// `other` is the same store, with the slow task: a short limit, or it runs
    # for the default 60 s (the lease itself was seen held at once).
    assert other.maintain(time_limit=0.05).ran


def test_a_lease_left_by_a_dead_run_expires(store_factory, clock):
    """A lease whose holder died is taken once it has expired, not before."""
    store = store_factory(clock=clock)
    now = clock()
    store.backend.insert(LEASES, {"id": "maintain", "holder": "host:1:dead",
                                  "acquired_at": now, "expires_at": now + timedelta(minutes=5)})
    assert store.maintain().held_by == "host:1:dead"
    clock.advance(301)
    assert store.maintain().ran


def test_bad_options_are_refused_before_anything_runs(store_factory):
    """Unknown tasks, bad retention, batch sizes and time limits are ValidationErrors;
    maintain() inside a transaction is refused."""
    store = store_factory(plugins=["cache"])
    for kwargs in (
        {"tasks": ["nope"]},
        {"retention": {"nope": 1}},
        {"retention": {"soft_deleted": -1}},
        {"retention": {"soft_deleted": "30"}},
        {"batch_size": 0},
        {"time_limit": 0},
    ):
        with pytest.raises(ValidationError):
            store.maintain(**kwargs)
    with store.transaction(), pytest.raises(ClonestoreError):
        store.maintain()
