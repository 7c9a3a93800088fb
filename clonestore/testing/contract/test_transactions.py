"""Contract: transactions are all-or-nothing, nest as savepoints, survive failed
writes, and concurrent writers lose no update."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

import clonestore
from clonestore import (
    AlreadyExists,
    ClonestoreError,
    Conflict,
    InvalidTransition,
    NotFound,
    Operation,
    Store,
)
from clonestore.testing import StoreFactory
from clonestore.testing.contract._builders import (
    aborted,
    missing_id,
    new_document,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    nothing_written,
    refused,
)


def test_transaction_commits_every_write(store: Store) -> None:
    """Writes inside a transaction are all there after it commits."""
    with store.transaction():
        user = new_user(store)
        document = new_document(store, user)
        store.documents.update_status(document.id, "processing")
    assert store.users.get(user.id) == user
    assert store.documents.get(document.id).status == "processing"


def test_transaction_is_all_or_nothing(store: Store) -> None:
    """An exception in a transaction undoes all its writes, domain operations included."""
    user = new_user(store)
    model = new_voice_model(store, user)
    session = new_session(store, user)
    with nothing_written(store), aborted(store.transaction()):
        new_user(store)
        store.users.update(user.id, name="Changed")
        store.voice_models.activate(model.id)
        store.sessions.add_turn(session.id, asr_latency_ms=5, asr_cost=Decimal("0.1"))
        store.sessions.update_state(session.id, "listening")
        new_memory(store, user)
        store.users.delete(user.id)


def test_transaction_sees_its_own_writes(store: Store) -> None:
    """Reads inside a transaction see the writes made earlier in it."""
    with store.transaction():
        user = new_user(store)
        assert store.users.get(user.id) == user
        assert store.users.count() == 1
        store.users.update(user.id, name="Renamed")
        assert store.users.find_one(name="Renamed") is not None


def test_nested_savepoint_rollback_keeps_outer_work(store: Store) -> None:
    """Rolling back a nested transaction undoes only its writes; the outer one commits."""
    with store.transaction():
        kept = new_user(store)
        with aborted(store.transaction()):
            lost = new_user(store)
            store.users.update(kept.id, name="Lost change")
        after = new_user(store)
    assert store.users.get(kept.id) == kept
    assert store.users.get(after.id) == after
    assert store.users.get_or_none(lost.id) is None
    assert store.users.count() == 2


def test_savepoints_nest_deeply(store: Store) -> None:
    """Three levels: rolling back the middle one undoes it and the innermost, not the outer."""
    with store.transaction():
        outer = new_user(store)
        with aborted(store.transaction()):
            middle = new_user(store)
            with store.transaction():
                inner = new_user(store)
        with store.transaction():
            last = new_user(store)
    assert {u.id for u in store.users.find_many()} == {outer.id, last.id}
    assert store.users.get_or_none(middle.id) is None
    assert store.users.get_or_none(inner.id) is None


def test_outer_rollback_undoes_committed_savepoints(store: Store) -> None:
    """Work of a savepoint that completed is still undone when the outer transaction fails."""
    with nothing_written(store), aborted(store.transaction()), store.transaction():
        new_user(store)


def test_failed_writes_do_not_poison_a_transaction(store: Store) -> None:
    """After a refused write inside a transaction, later writes work and commit."""
    taken = new_user(store, email="taken@example.com")
    session = new_session(store, taken)
    with store.transaction():
        first = new_user(store)
        with pytest.raises(AlreadyExists):
            new_user(store, email="TAKEN@example.com")
        with pytest.raises(NotFound):
            store.users.update(missing_id(), name="x")
        with pytest.raises(InvalidTransition):
            store.sessions.update_state(session.id, "speaking")
        with pytest.raises(clonestore.ValidationError):
            new_user(store, name="")
        second = new_user(store)
        store.users.update(first.id, name="Still works")
    assert store.users.get(first.id).name == "Still works"
    assert store.users.get(second.id) == second
    assert store.users.count() == 3


def test_uncaught_store_error_rolls_back(store: Store) -> None:
    """A clonestore error leaving the transaction block rolls back the whole block."""
    new_user(store, email="taken@example.com")

    def two_users() -> None:
        with store.transaction():
            new_user(store)
            new_user(store, email="taken@example.com")

    refused(store, two_users, AlreadyExists)


def test_store_is_usable_after_a_rollback(store: Store) -> None:
    """After a rolled-back transaction the store reads and writes normally."""
    with aborted(store.transaction()):
        new_user(store)
    assert not store.in_transaction
    user = new_user(store)
    assert store.users.find_many() == [user]


def test_in_transaction_flag(store: Store) -> None:
    """store.in_transaction is true exactly inside transaction blocks."""
    assert not store.in_transaction
    with store.transaction():
        assert store.in_transaction
        with store.transaction():
            assert store.in_transaction
        assert store.in_transaction
    assert not store.in_transaction


def test_create_many_inside_transaction_rolls_back_with_it(store: Store) -> None:
    """Bulk writes are undone with the transaction they ran in."""
    rows = [{"email": f"bulk{i}@example.com", "name": "B"} for i in range(20)]
    with nothing_written(store), aborted(store.transaction()):
        store.users.create_many(rows)


def test_cascading_delete_is_all_or_nothing(store_factory: StoreFactory) -> None:
    """If any step of a user's cascading delete fails, nothing of it is kept."""

    class FailOnMemories:
        @clonestore.hookimpl
        def clonestore_after_write(self, store: Store, op: Operation, result: Any) -> None:
            if op.table.name == "memories" and op.action == "memory.delete":
                raise ClonestoreError("refusing the memory step")

    store = store_factory(plugins=[FailOnMemories()])
    user = new_user(store)
    new_voice_model(store, user)
    new_memory(store, user)
    refused(store, lambda: store.users.delete(user.id), ClonestoreError)
    assert store.users.get(user.id) == user


def test_concurrent_turns_lose_no_update(store: Store) -> None:
    """Turns added from several threads at once are all counted, with distinct indexes."""
    session = new_session(store, new_user(store))
    threads, per_thread = 4, 8
    errors: list[BaseException] = []

    def add_turns() -> None:
        try:
            for _ in range(per_thread):
                store.sessions.add_turn(session.id, llm_latency_ms=10, llm_cost=Decimal("0.01"))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=add_turns) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    total = threads * per_thread
    stored = store.sessions.get(session.id)
    assert stored.total_turns == total
    assert stored.total_latency_ms == 10 * total
    assert stored.total_cost == Decimal("0.01") * total
    indexes = sorted(t.turn_index for t in store.turns.find_many(where={"session_id": session.id}))
    assert indexes == list(range(1, total + 1))


def test_concurrent_activations_leave_one_active_model(store: Store) -> None:
    """Concurrent activations of one user's models leave exactly one of the activated active."""
    user = new_user(store)
    models = [new_voice_model(store, user, name=f"v{i}") for i in range(4)]
    errors: list[BaseException] = []
    activated: set[str] = set()

    def activate(model_id: str) -> None:
        for _ in range(3):
            try:
                store.voice_models.activate(model_id)
                activated.add(model_id)
            except Conflict:
                pass  # a lost race may be reported; it must leave nothing half done
            except BaseException as exc:
                errors.append(exc)

    workers = [threading.Thread(target=activate, args=(m.id,)) for m in models]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    assert activated
    active = [m.id for m in store.voice_models.find_many(where={"user_id": user.id}) if m.is_active]
    assert len(active) == 1
    assert active[0] in activated


def test_uncommitted_writes_are_invisible_to_other_threads(store: Store) -> None:
    """Another thread never sees a transaction's writes that are later rolled back."""
    ready, done = threading.Event(), threading.Event()
    seen: list[int] = []

    def reader() -> None:
        ready.wait(timeout=30)
        seen.append(store.users.count())
        done.set()

    worker = threading.Thread(target=reader)
    worker.start()
    with aborted(store.transaction()):
        new_user(store)
        ready.set()
        # A backend may make the reader wait for this transaction (memory:// does).
        done.wait(timeout=0.2)
    worker.join(timeout=30)
    assert seen == [0]
    assert store.users.count() == 0
