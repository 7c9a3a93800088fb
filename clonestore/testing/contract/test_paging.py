"""Contract: keyset pages (page/next_cursor) walk exactly what find_many returns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from clonestore import Page, Store, ValidationError, VoiceModel
from clonestore.repositories import MAX_PAGE_SIZE
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import (
    id_sequence,
    ids,
    new_session,
    new_user,
    new_voice_model,
)


def walk(repo: Any, size: int, **kwargs: Any) -> list[Page[Any]]:
    """Every page of ``repo.page(...)``, following next_cursor to the end."""
    pages = []
    cursor = None
    while True:
        page = repo.page(size=size, cursor=cursor, **kwargs)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 1000, "next_cursor never ran out"


def _flat(pages: list[Page[Any]]) -> list[Any]:
    return [item for page in pages for item in page.items]


def _scored_models(store: Store, scores: list[float | None]) -> list[VoiceModel]:
    user = new_user(store)
    return [
        new_voice_model(store, user, name=f"m{i}", quality_score=score)
        for i, score in enumerate(scores)
    ]


def test_page_walks_every_record_once(store_factory: StoreFactory) -> None:
    """Following next_cursor visits every record once, in find_many order."""
    store = store_factory(clock=FrozenClock(step=1))
    users = [new_user(store, name=f"U{i}") for i in range(7)]
    pages = walk(store.users, size=2)
    assert [len(p.items) for p in pages] == [2, 2, 2, 1]
    assert _flat(pages) == users == store.users.find_many()


def test_page_last_full_page_has_no_cursor(store: Store) -> None:
    """When the records fill the last page exactly, it has no next_cursor."""
    for _ in range(4):
        new_user(store)
    pages = walk(store.users, size=2)
    assert [len(p.items) for p in pages] == [2, 2]
    assert pages[-1].next_cursor is None


def test_page_of_nothing(store: Store) -> None:
    """A page over no records is empty, without a cursor."""
    page = store.users.page()
    assert page.items == []
    assert page.next_cursor is None


def test_page_ties_break_by_id(store_factory: StoreFactory) -> None:
    """Records with equal sort values (same instant) page in id order, none lost."""
    store = store_factory(clock=FrozenClock(), id_factory=id_sequence(8, 3, 6, 1, 7, 2, 5, 4))
    users = [new_user(store) for _ in range(8)]
    for size in (1, 3, 5):
        assert ids(_flat(walk(store.users, size=size))) == sorted(ids(users))


def test_page_ties_on_a_field(store_factory: StoreFactory) -> None:
    """Paging by a field with many equal values visits each record once, ties by id."""
    store = store_factory(clock=FrozenClock(step=1))
    models = _scored_models(store, [0.5, 0.1, 0.5, 0.5, 0.1, 0.5, 0.9])
    expected = store.voice_models.find_many(order_by="quality_score")
    assert sorted(ids(expected)) == sorted(ids(models))
    for size in (1, 2, 3):
        pages = walk(store.voice_models, size=size, order_by="quality_score")
        assert _flat(pages) == expected


@pytest.mark.parametrize("order_by", ["quality_score", "-quality_score"])
def test_page_across_nulls(store_factory: StoreFactory, order_by: Any) -> None:
    """Pages over a field with NULLs match find_many (NULLs last ascending, first descending)."""
    store = store_factory(clock=FrozenClock(step=1))
    _scored_models(store, [None, 0.3, None, 0.7, 0.3, None, 1.0, 0.0])
    expected = store.voice_models.find_many(order_by=order_by)
    scores = [m.quality_score for m in expected]
    if order_by.startswith("-"):
        assert scores[:3] == [None, None, None]
    else:
        assert scores[-3:] == [None, None, None]
    for size in (1, 2, 3, 4):
        assert _flat(walk(store.voice_models, size=size, order_by=order_by)) == expected


def test_page_descending(store_factory: StoreFactory) -> None:
    """Pages ordered by '-created_at' come newest first."""
    store = store_factory(clock=FrozenClock(step=1))
    users = [new_user(store) for _ in range(5)]
    assert _flat(walk(store.users, size=2, order_by="-created_at")) == users[::-1]


def test_page_on_several_fields(store_factory: StoreFactory) -> None:
    """Pages on a mixed-direction multi-field ordering match find_many."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    for i, (status, score) in enumerate(
        [("ready", 0.5), ("failed", None), ("ready", 0.9), ("training", 0.5), ("ready", None)] * 2
    ):
        new_voice_model(store, user, name=f"v{i}", status=status, quality_score=score)
    order = ["status", "-quality_score"]
    expected = store.voice_models.find_many(order_by=order)
    for size in (1, 2, 4):
        assert _flat(walk(store.voice_models, size=size, order_by=order)) == expected


def test_page_by_text_code_point(store_factory: StoreFactory) -> None:
    """Pages ordered by a text field follow code point order across non-ASCII text."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    names = ["é", "e", "E", "😀", "z", "ä", "Ä", "a"]
    for name in names:
        new_voice_model(store, user, name=name)
    pages = walk(store.voice_models, size=3, order_by="name")
    assert [m.name for m in _flat(pages)] == sorted(names)


def test_page_by_decimal_and_microsecond_datetimes(store_factory: StoreFactory) -> None:
    """Cursors keep Decimal values and microseconds exactly."""
    store = store_factory(clock=FrozenClock(step=0.000001))
    user = new_user(store)
    session = new_session(store, user)
    costs = ["0.000001", "0.000002", "10", "9.999999", "0.000001", "2.5"]
    for cost in costs:
        store.sessions.add_turn(session.id, llm_cost=Decimal(cost))
    by_cost = store.turns.find_many(order_by="llm_cost")
    assert [t.llm_cost for t in by_cost] == sorted(Decimal(c) for c in costs)
    assert _flat(walk(store.turns, size=2, order_by="llm_cost")) == by_cost
    by_time = store.turns.find_many(order_by="-created_at")
    assert _flat(walk(store.turns, size=1, order_by="-created_at")) == by_time


def test_page_with_where_and_with_deleted(store_factory: StoreFactory) -> None:
    """Pages honour where and with_deleted like find_many."""
    store = store_factory(clock=FrozenClock(step=1))
    users = [new_user(store, subscription_tier=("pro" if i % 2 else "free")) for i in range(7)]
    store.users.delete(users[1].id)
    live_pro = store.users.find_many(where={"subscription_tier": "pro"})
    assert _flat(walk(store.users, size=2, where={"subscription_tier": "pro"})) == live_pro
    every = store.users.find_many(with_deleted=True)
    assert len(every) == 7
    assert _flat(walk(store.users, size=3, with_deleted=True)) == every


def test_page_is_stable_under_deletes(store_factory: StoreFactory) -> None:
    """Deleting records already seen does not make the next page skip any."""
    store = store_factory(clock=FrozenClock(step=1))
    users = [new_user(store) for _ in range(6)]
    first = store.users.page(size=2)
    for user in first.items:
        store.users.delete(user.id)
    second = store.users.page(size=2, cursor=first.next_cursor)
    assert second.items == users[2:4]


def test_page_cursor_from_another_ordering_is_refused(store: Store) -> None:
    """A cursor made for one ordering raises ValidationError under another."""
    for _ in range(3):
        new_user(store)
    cursor = store.users.page(size=1, order_by="name").next_cursor
    assert cursor is not None
    with pytest.raises(ValidationError):
        store.users.page(size=1, order_by="-name", cursor=cursor)
    with pytest.raises(ValidationError):
        store.users.page(size=1, cursor=cursor)


def test_page_cursor_from_another_table_ordering_is_refused(store: Store) -> None:
    """A cursor of one repository's ordering is refused by another whose columns differ."""
    user = new_user(store)
    new_voice_model(store, user)
    new_voice_model(store, user)
    cursor = store.voice_models.page(size=1, order_by="quality_score").next_cursor
    with pytest.raises(ValidationError):
        store.users.page(size=1, cursor=cursor)


@pytest.mark.parametrize("cursor", ["", "garbage", "!!!", "W10", "eyJ4IjoxfQ", 42])
def test_page_garbage_cursor_is_refused(store: Store, cursor: Any) -> None:
    """A cursor that no page made raises ValidationError."""
    new_user(store)
    with pytest.raises(ValidationError):
        store.users.page(cursor=cursor)


@pytest.mark.parametrize("size", [0, -1, MAX_PAGE_SIZE + 1, 2.5, True, "10"])
def test_page_size_must_be_sane(store: Store, size: Any) -> None:
    """page(size=...) outside 1..MAX_PAGE_SIZE, or not an int, raises ValidationError."""
    with pytest.raises(ValidationError):
        store.users.page(size=size)
