"""Contract: find_many filters (every lookup operator), ordering, limit and offset."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from clonestore import Store, VoiceModel
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import (
    id_sequence,
    ids,
    new_document,
    new_memory,
    new_user,
    new_voice_model,
)


def _models(store: Store) -> list[VoiceModel]:
    """Voice models with known names, statuses and scores (one score is NULL)."""
    user = new_user(store)
    spec = [
        ("alpha", "ready", 0.9),
        ("beta", "ready", None),
        ("gamma", "training", 0.2),
        ("delta", "failed", 0.5),
        ("epsilon", "ready", 0.5),
    ]
    return [
        new_voice_model(store, user, name=name, status=status, quality_score=score)
        for name, status, score in spec
    ]


def _names(records: list[Any]) -> list[str]:
    return [r.name for r in records]


def test_find_many_without_arguments_is_creation_order(store_factory: StoreFactory) -> None:
    """find_many() returns live records in creation order."""
    store = store_factory(clock=FrozenClock(step=1))
    models = _models(store)
    assert store.voice_models.find_many() == models


def test_creation_order_ties_break_by_id(store_factory: StoreFactory) -> None:
    """Records created at the same instant come in id order, not insertion order."""
    store = store_factory(clock=FrozenClock(), id_factory=id_sequence(9, 5, 7, 1, 3))
    users = [new_user(store, name=f"U{i}") for i in range(5)]
    assert ids(store.users.find_many()) == sorted(ids(users))


def test_find_many_eq_and_ne(store_factory: StoreFactory) -> None:
    """eq matches equal values; ne matches different non-NULL values only."""
    store = store_factory(clock=FrozenClock(step=1))
    _models(store)
    repo = store.voice_models
    assert _names(repo.find_many(where={"status": "ready"})) == ["alpha", "beta", "epsilon"]
    assert _names(repo.find_many(where={"status__eq": "failed"})) == ["delta"]
    assert _names(repo.find_many(where={"quality_score__ne": 0.5})) == ["alpha", "gamma"]


def test_find_many_ordered_comparisons(store_factory: StoreFactory) -> None:
    """lt, lte, gt and gte compare numbers and never match NULL."""
    store = store_factory(clock=FrozenClock(step=1))
    _models(store)
    repo = store.voice_models
    assert _names(repo.find_many(where={"quality_score__lt": 0.5})) == ["gamma"]
    assert _names(repo.find_many(where={"quality_score__lte": 0.5})) == [
        "gamma",
        "delta",
        "epsilon",
    ]
    assert _names(repo.find_many(where={"quality_score__gt": 0.5})) == ["alpha"]
    assert _names(repo.find_many(where={"quality_score__gte": 0.5})) == [
        "alpha",
        "delta",
        "epsilon",
    ]
    assert _names(repo.find_many(where={"name__gt": "delta"})) == ["gamma", "epsilon"]


def test_find_many_datetime_comparisons(store_factory: StoreFactory) -> None:
    """Datetime lookups compare instants to the microsecond."""
    clock = FrozenClock(step=0.000001)
    store = store_factory(clock=clock)
    users = [new_user(store) for _ in range(4)]
    middle = users[1].created_at
    assert middle - users[0].created_at == timedelta(microseconds=1)
    assert store.users.find_many(where={"created_at__gt": middle}) == users[2:]
    assert store.users.find_many(where={"created_at__gte": middle}) == users[1:]
    assert store.users.find_many(where={"created_at__lt": middle}) == users[:1]
    assert store.users.find_many(where={"created_at": middle}) == [users[1]]


def test_find_many_in_and_not_in(store_factory: StoreFactory) -> None:
    """in matches listed values; not_in matches unlisted non-NULL values; empty lists work."""
    store = store_factory(clock=FrozenClock(step=1))
    _models(store)
    repo = store.voice_models
    assert _names(repo.find_many(where={"status__in": ["failed", "training"]})) == [
        "gamma",
        "delta",
    ]
    assert _names(repo.find_many(where={"quality_score__not_in": [0.5, 0.9]})) == ["gamma"]
    assert repo.find_many(where={"status__in": []}) == []
    assert len(repo.find_many(where={"status__not_in": []})) == 5


def test_find_many_isnull(store_factory: StoreFactory) -> None:
    """isnull=True matches NULL, False non-NULL; field=None means isnull=True."""
    store = store_factory(clock=FrozenClock(step=1))
    _models(store)
    repo = store.voice_models
    assert _names(repo.find_many(where={"quality_score__isnull": True})) == ["beta"]
    assert _names(repo.find_many(where={"quality_score": None})) == ["beta"]
    assert len(repo.find_many(where={"quality_score__isnull": False})) == 4
    assert len(repo.find_many(where={"quality_score__ne": None})) == 4


def test_find_many_id_in(store_factory: StoreFactory) -> None:
    """id__in returns exactly the listed records."""
    store = store_factory(clock=FrozenClock(step=1))
    models = _models(store)
    wanted = [models[3].id, models[0].id]
    assert {m.id for m in store.voice_models.find_many(where={"id__in": wanted})} == set(wanted)


def test_find_many_list_contains_and_overlap(store_factory: StoreFactory) -> None:
    """contains needs every given item; overlap needs at least one; order is free."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    a = new_document(store, user, tags=["x", "y"])
    b = new_document(store, user, tags=["y", "z"])
    c = new_document(store, user, tags=[])
    repo = store.documents
    assert repo.find_many(where={"tags__contains": ["y"]}) == [a, b]
    assert repo.find_many(where={"tags__contains": ["y", "x"]}) == [a]
    assert repo.find_many(where={"tags__overlap": ["x", "z"]}) == [a, b]
    assert repo.find_many(where={"tags__overlap": ["q"]}) == []
    assert repo.find_many(where={"tags__contains": []}) == [a, b, c]
    assert repo.find_many(where={"tags__overlap": []}) == []


def test_list_lookups_count_a_row_once_when_its_items_repeat(
    store_factory: StoreFactory,
) -> None:
    """A row whose list repeats wanted items is one row to offsets, pages and counts."""
    # SQLite 3.51 rewrote overlap's EXISTS into a join that listed it once per item.
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    a = new_document(store, user, tags=["a", "a", "b", "a"])
    b = new_document(store, user, tags=["a"])
    repo = store.documents
    for where in ({"tags__overlap": ["a", "b"]}, {"tags__contains": ["a"]}):
        assert repo.find_many(where=where) == [a, b]
        assert repo.find_many(where=where, offset=1) == [b]
        assert repo.find_many(where=where, offset=2) == []
        assert repo.find_many(where=where, limit=1, offset=1) == [b]
        assert repo.count(where=where) == 2
        first = repo.page(where=where, size=1)
        assert first.items == [a]
        assert repo.page(where=where, size=1, cursor=first.next_cursor).items == [b]


def test_find_many_text_patterns(store_factory: StoreFactory) -> None:
    """contains, startswith and endswith on text are literal and case-sensitive."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    for name in ("Hello world", "hello there", "say hello", "50% off", "5000 off", "a_b", "axb"):
        new_voice_model(store, user, name=name)
    repo = store.voice_models
    assert _names(repo.find_many(where={"name__startswith": "hello"})) == ["hello there"]
    assert _names(repo.find_many(where={"name__endswith": "hello"})) == ["say hello"]
    assert _names(repo.find_many(where={"name__contains": "llo"})) == [
        "Hello world",
        "hello there",
        "say hello",
    ]
    assert _names(repo.find_many(where={"name__contains": "H"})) == ["Hello world"]
    assert _names(repo.find_many(where={"name__contains": "%"})) == ["50% off"]
    assert _names(repo.find_many(where={"name__startswith": "50%"})) == ["50% off"]
    assert _names(repo.find_many(where={"name__contains": "_"})) == ["a_b"]
    assert _names(repo.find_many(where={"name__endswith": "_b"})) == ["a_b"]


def test_find_many_email_lookups_casefold(store_factory: StoreFactory) -> None:
    """eq, ne, in and not_in on emails compare casefolded forms."""
    store = store_factory(clock=FrozenClock(step=1))
    ada = new_user(store, email="Ada@Example.com")
    max_ = new_user(store, email="maß@example.com")
    assert store.users.find_many(where={"email": "ADA@EXAMPLE.COM"}) == [ada]
    assert store.users.find_many(where={"email__in": ["MASS@example.com"]}) == [max_]
    assert store.users.find_many(where={"email__ne": "ada@example.com"}) == [max_]
    assert store.users.find_many(where={"email__not_in": ["ada@EXAMPLE.com"]}) == [max_]


def test_find_many_several_lookups_all_hold(store_factory: StoreFactory) -> None:
    """Several lookups combine with AND."""
    store = store_factory(clock=FrozenClock(step=1))
    _models(store)
    found = store.voice_models.find_many(where={"status": "ready", "quality_score__gte": 0.5})
    assert _names(found) == ["alpha", "epsilon"]


def test_find_many_order_by(store_factory: StoreFactory) -> None:
    """order_by sorts ascending, '-field' descending; ties fall back to id."""
    store = store_factory(clock=FrozenClock(step=1))
    _models(store)
    repo = store.voice_models
    assert _names(repo.find_many(order_by="name")) == [
        "alpha",
        "beta",
        "delta",
        "epsilon",
        "gamma",
    ]
    assert _names(repo.find_many(order_by="-name")) == [
        "gamma",
        "epsilon",
        "delta",
        "beta",
        "alpha",
    ]
    by_status = repo.find_many(order_by=["status", "-name"])
    assert _names(by_status) == ["delta", "epsilon", "beta", "alpha", "gamma"]


def test_find_many_nulls_last_ascending_first_descending(store_factory: StoreFactory) -> None:
    """NULLs sort after every value ascending and before every value descending."""
    store = store_factory(clock=FrozenClock(step=1))
    _models(store)
    repo = store.voice_models
    ascending = repo.find_many(order_by=["quality_score", "name"])
    assert _names(ascending) == ["gamma", "delta", "epsilon", "alpha", "beta"]
    descending = repo.find_many(order_by=["-quality_score", "name"])
    assert _names(descending) == ["beta", "alpha", "delta", "epsilon", "gamma"]


def test_find_many_orders_text_by_code_point(store_factory: StoreFactory) -> None:
    """Text sorts by code point: upper case before lower case, accents and emoji after."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    names = ["é", "b", "Z", "a", "ä", "B", "😀", "ab", "A", "z", "ß", "Ω", "1"]
    for name in names:
        new_voice_model(store, user, name=name)
    assert _names(store.voice_models.find_many(order_by="name")) == sorted(names)
    assert _names(store.voice_models.find_many(order_by="-name")) == sorted(names, reverse=True)


def test_find_many_orders_by_bool(store_factory: StoreFactory) -> None:
    """Booleans sort False before True."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    models = [new_voice_model(store, user, name=n) for n in ("a", "b", "c")]
    store.voice_models.activate(models[1].id)
    assert _names(store.voice_models.find_many(order_by=["-is_active", "name"])) == ["b", "a", "c"]
    assert _names(store.voice_models.find_many(order_by=["is_active", "name"])) == ["a", "c", "b"]


def test_find_many_limit_and_offset(store_factory: StoreFactory) -> None:
    """limit and offset slice the ordered result; 0 and past-the-end work."""
    store = store_factory(clock=FrozenClock(step=1))
    models = _models(store)
    repo = store.voice_models
    assert repo.find_many(limit=2) == models[:2]
    assert repo.find_many(limit=2, offset=2) == models[2:4]
    assert repo.find_many(offset=3) == models[3:]
    assert repo.find_many(limit=0) == []
    assert repo.find_many(offset=10) == []


def test_find_many_with_deleted(store_factory: StoreFactory) -> None:
    """with_deleted=True includes soft-deleted records, in the same order."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    memories = [new_memory(store, user, content=f"m{i}") for i in range(3)]
    store.memories.delete(memories[1].id)
    assert ids(store.memories.find_many()) == [memories[0].id, memories[2].id]
    assert ids(store.memories.find_many(with_deleted=True)) == ids(memories)
    deleted_only = store.memories.find_many(where={"deleted_at__isnull": False}, with_deleted=True)
    assert ids(deleted_only) == [memories[1].id]


def test_text_equality_is_exact(store_factory: StoreFactory) -> None:
    """Text equality compares code points: case, trailing spaces and composition all count."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    names = ["Ada", "ada", "ada ", "é", "e\u0301", "straße", "strasse"]
    for name in names:
        new_voice_model(store, user, name=name)
    for name in names:
        assert _names(store.voice_models.find_many(where={"name": name})) == [name], repr(name)
    assert _names(store.voice_models.find_many(where={"name__in": ["ada", "é"]})) == ["ada", "é"]
    assert len(store.voice_models.find_many(where={"name__ne": "ada"})) == len(names) - 1
