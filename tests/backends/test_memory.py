"""Behaviour specific to the memory:// backend: pages read from ordered indexes."""

from __future__ import annotations

import random
from typing import Any

import pytest
from clonestore_memory._queries import ordered

import clonestore
from clonestore.query import parse_order, parse_where
from clonestore.records import TABLES
from clonestore.testing import FrozenClock


def _table(store: clonestore.Store, name: str) -> Any:
    return store.backend._table(TABLES[name])  # type: ignore[attr-defined]


def _fill(store: clonestore.Store) -> list[str]:
    rng = random.Random(7)
    clock = store.clock
    users = []
    for n in range(40):
        if rng.random() < 0.5:
            clock.advance(1)  # type: ignore[attr-defined]
        user = store.users.create(email=f"u{n}@example.com", name=f"U{n}")
        users.append(user.id)
        for _ in range(rng.randrange(3)):
            store.memories.add(user.id, "m", [1.0, float(n)])
    for user_id in rng.sample(users, 8):
        store.users.delete(user_id)
    return users


def test_pages_in_every_shape_read_an_ordered_index_and_equal_a_sort() -> None:
    """Default-order pages (all rows, one owner's, descending, with a cursor) come from an
    ordered index and equal filtering then sorting every row."""
    store = clonestore.open("memory://", clock=FrozenClock(step=0.0))
    users = _fill(store)
    cases = [
        ("users", {}, None),
        ("users", {}, "-created_at"),
        ("memories", {"user_id": users[5]}, None),
        ("memories", {"user_id": users[9]}, "-created_at"),
        ("users", {"name__startswith": "U1"}, None),
        ("users", {"name__startswith": "U2"}, ["-created_at", "-id"]),
    ]
    for table_name, where, order_by in cases:
        spec = TABLES[table_name]
        table = _table(store, table_name)
        order = parse_order(spec, order_by)
        repo = getattr(store, table_name)
        seen: list[str] = []
        page = repo.page(where=where, order_by=order_by, size=3)
        while True:
            seen += [r.id for r in page.items]
            if page.next_cursor is None:
                break
            page = repo.page(where=where, order_by=order_by, size=3, cursor=page.next_cursor)
        expr = parse_where(spec, {**where, "deleted_at__isnull": True})
        expected = [r["id"] for r in ordered(table.matching(expr), order, None)]
        assert seen == expected, (table_name, where, order_by)
        assert table.read_ordered(expr, order, 3) is not None, (table_name, where, order_by)


def test_rolled_back_rows_leave_the_ordered_index() -> None:
    """A row inserted in a transaction that rolls back is not in any later page."""
    store = clonestore.open("memory://")
    store.users.create(email="kept@example.com", name="Kept")

    def create_then_fail() -> None:
        with store.transaction():
            store.users.create(email="gone@example.com", name="Gone")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert [u.email for u in store.users.page(size=10).items] == ["kept@example.com"]
    assert len(_table(store, "users").ordered[0].keys) == 1


def test_soft_deleted_rows_leave_live_indexes_and_restore_brings_them_back() -> None:
    """Soft delete removes a row from the live-rows index; restore puts it back."""
    store = clonestore.open("memory://")
    user = store.users.create(email="a@example.com", name="A")
    index = _table(store, "users").ordered[0]
    store.users.delete(user.id)
    assert len(index.keys) == 0
    assert store.users.page().items == []
    store.users.restore(user.id)
    assert len(index.keys) == 1
    assert [u.id for u in store.users.page().items] == [user.id]


def test_text_search_keeps_no_tokens_of_rows_gone() -> None:
    """memory:// keeps text search tokens only of stored rows: an update, a rollback and an
    erasure drop them (erased text leaves the process's index too)."""
    with clonestore.open("memory://") as store:
        user = store.users.create(email="t@example.com", name="T")
        kept = store.memories.add(user.id, "secret plan")
        changed = store.memories.add(user.id, "old plan")
        try:
            with store.transaction():
                store.memories.add(user.id, "rolled back plan")
                assert len(store.memories.search("plan")) == 3
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        store.memories.update(changed.id, content="new plan")
        table = store.backend._db.tables["memories"]  # type: ignore[attr-defined]
        (tokens,) = table.text_tokens.values()
        assert set(tokens) == {kept.id}
        assert len(store.memories.search("plan")) == 2
        assert set(tokens) == {kept.id, changed.id}
        store.erase_user(user.id)
        assert tokens == {}
