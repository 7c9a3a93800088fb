"""Contract: request context reaches plugins; clock and id factory are injectable;
each store has its own plugins."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import clonestore
from clonestore import Context, Operation, Store
from clonestore.testing import FrozenClock, StoreFactory, sequential_ids
from clonestore.testing.contract._builders import new_document, new_user


class Recorder:
    """A plugin remembering the operations it saw."""

    def __init__(self) -> None:
        self.writes: list[Operation] = []
        self.reads: list[Operation] = []

    @clonestore.hookimpl
    def clonestore_before_write(self, store: Store, op: Operation) -> None:
        self.writes.append(op)

    @clonestore.hookimpl
    def clonestore_read(self, store: Store, op: Operation, fetch: Callable[[], Any]) -> None:
        self.reads.append(op)


def test_context_values_reach_hooks(store_factory: StoreFactory) -> None:
    """Operations carry the context of the innermost store.context(...) block."""
    recorder = Recorder()
    store = store_factory(plugins=[recorder])
    with store.context(
        actor_id="admin-1", ip_address="203.0.113.9", user_agent="app/1.2", request_id="r-1"
    ) as context:
        user = new_user(store)
        store.users.get(user.id)
    expected = Context(
        actor_id="admin-1", ip_address="203.0.113.9", user_agent="app/1.2", request_id="r-1"
    )
    assert context == expected
    assert [op.context for op in recorder.writes] == [expected]
    assert recorder.reads[-1].context == expected
    assert recorder.writes[0].action == "user.create"


def test_context_nests_and_is_restored(store_factory: StoreFactory) -> None:
    """An inner context replaces the outer one for its block; leaving it restores the outer."""
    recorder = Recorder()
    store = store_factory(plugins=[recorder])
    with store.context(actor_id="outer"):
        with store.context(actor_id="inner", request_id="r-2"):
            assert store.current_context == Context(actor_id="inner", request_id="r-2")
            new_user(store)
        new_user(store)
    new_user(store)
    assert [op.context.actor_id for op in recorder.writes] == ["inner", "outer", None]
    assert recorder.writes[2].context == Context()
    assert store.current_context == Context()


def test_context_is_per_thread(store_factory: StoreFactory) -> None:
    """A context set in one thread is not seen by writes in another."""
    recorder = Recorder()
    store = store_factory(plugins=[recorder])
    with store.context(actor_id="main-thread"):
        worker = threading.Thread(target=lambda: new_user(store))
        worker.start()
        worker.join()
    assert recorder.writes[0].context == Context()


def test_injected_clock_sets_every_timestamp(store_factory: StoreFactory) -> None:
    """Every timestamp (created, updated, defaulted) comes from the injected clock, to the µs."""
    start = datetime(2030, 6, 1, 8, 30, 15, 123457, tzinfo=UTC)
    clock = FrozenClock(start)
    store = store_factory(clock=clock)
    user = new_user(store)
    document = new_document(store, user)
    assert user.created_at == user.updated_at == start
    assert document.uploaded_at == start
    clock.advance(0.000001)
    updated = store.users.update(user.id, name="Later")
    assert updated.updated_at == start + timedelta(microseconds=1)
    assert updated.created_at == start
    assert store.users.get(user.id) == updated
    stored = store.documents.get(document.id)
    assert stored.uploaded_at == start
    assert stored.uploaded_at.utcoffset() == timedelta(0)


def test_clock_in_another_timezone_is_stored_as_utc(store_factory: StoreFactory) -> None:
    """A clock returning non-UTC aware datetimes yields UTC timestamps of the same instant."""
    tokyo = timezone(timedelta(hours=9))
    instant = datetime(2024, 2, 29, 9, 0, tzinfo=tokyo)
    store = store_factory(clock=lambda: instant)
    user = new_user(store)
    stored = store.users.get(user.id)
    assert stored.created_at == instant
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at.hour == 0


def test_injected_id_factory_names_every_record(store_factory: StoreFactory) -> None:
    """Ids come from the injected factory, and those records are found by them."""
    store = store_factory(id_factory=sequential_ids(100))
    user = new_user(store)
    document = new_document(store, user)
    assert user.id == "00000000-0000-4000-8000-000000000064"
    assert document.id == "00000000-0000-4000-8000-000000000065"
    assert store.documents.get(document.id).user_id == user.id


def test_each_store_has_its_own_plugins(store_factory: StoreFactory) -> None:
    """Two stores opened with different plugins do not share them."""
    recorder = Recorder()
    with_plugin = store_factory(plugins=[recorder])
    without = store_factory()
    new_user(without)
    assert recorder.writes == []
    new_user(with_plugin)
    assert len(recorder.writes) == 1
    assert with_plugin.plugin_manager is not without.plugin_manager
