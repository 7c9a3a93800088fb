"""Contract: lookups into JSON columns (``metadata__kind="a"``), one meaning everywhere.

JSON values compare as JSON: ``1`` is not ``"1"``, ``true`` is not ``1``, a missing
key is not ``null``; numbers compare by value (``1`` equals ``1.0``); ordering holds
between two numbers or two strings only, strings by code point. See
:mod:`clonestore._json_lookups`.
"""

from __future__ import annotations

from typing import Any

import pytest

from clonestore import Store
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import new_memory, new_session, new_user, refused

#: Metadata of the memories most tests search, by name (each memory's content).
DOCUMENTS: dict[str, dict[str, Any]] = {
    "str_a": {"kind": "a", "score": 3},
    "str_b": {"kind": "b", "score": 3.5},
    "int_1": {"kind": 1, "score": -2},
    "float_1": {"kind": 1.0, "score": 2.999},
    "str_1": {"kind": "1", "score": "3"},
    "true": {"kind": True, "score": True},
    "false": {"kind": False, "score": 0},
    "null": {"kind": None, "score": None},
    "empty": {},
    "list": {"kind": ["a"], "score": [3]},
    "object": {"kind": {"a": 1}, "score": {"v": 3}},
    "big": {"kind": 2**62, "score": 2**62 + 1},
}


def _memories(store: Store, documents: dict[str, dict[str, Any]] = DOCUMENTS) -> Store:
    user = new_user(store)
    for name, metadata in documents.items():
        new_memory(store, user, content=name, metadata=metadata)
    return store


def _found(store: Store, **where: Any) -> set[str]:
    return {m.content for m in store.memories.find_many(where=where)}


def _searched(store_factory: StoreFactory) -> Store:
    """A store holding one memory per entry of :data:`DOCUMENTS` (a helper, not a fixture:
    the async run of the kit takes the test functions alone)."""
    return _memories(store_factory(clock=FrozenClock(step=1)))


def test_json_key_equality_keeps_json_types(store_factory: StoreFactory) -> None:
    """A key equals a value only of the same JSON type ("1" is not 1, true is not 1; 1 is 1.0)."""
    searched = _searched(store_factory)
    assert _found(searched, metadata__kind="a") == {"str_a"}
    assert _found(searched, metadata__kind=1) == {"int_1", "float_1"}
    assert _found(searched, metadata__kind=1.0) == {"int_1", "float_1"}
    assert _found(searched, metadata__kind__eq="1") == {"str_1"}
    assert _found(searched, metadata__kind=True) == {"true"}
    assert _found(searched, metadata__kind=False) == {"false"}
    assert _found(searched, metadata__score=0) == {"false"}
    assert _found(searched, metadata__kind=2**62) == {"big"}
    assert _found(searched, metadata__score=2**62) == set()


def test_json_null_is_not_a_missing_key(store_factory: StoreFactory) -> None:
    """kind=None: a JSON null only; isnull=True: missing key only; isnull=False: key present."""
    # isnull=False matches every row that has the key, a null value included.
    searched = _searched(store_factory)
    assert _found(searched, metadata__kind=None) == {"null"}
    assert _found(searched, metadata__kind__isnull=True) == {"empty"}
    assert _found(searched, metadata__kind__isnull=False) == set(DOCUMENTS) - {"empty"}
    assert _found(searched, metadata__kind__ne=None) == set(DOCUMENTS) - {"empty", "null"}


def test_json_missing_key_satisfies_no_comparison(store_factory: StoreFactory) -> None:
    """ne and not_in hold for present values that differ, never for a missing key."""
    searched = _searched(store_factory)
    everyone_with_kind = set(DOCUMENTS) - {"empty"}
    assert _found(searched, metadata__kind__ne="a") == everyone_with_kind - {"str_a"}
    assert _found(searched, metadata__kind__ne=1) == everyone_with_kind - {"int_1", "float_1"}
    assert _found(searched, metadata__kind__not_in=["a", 1, None]) == everyone_with_kind - {
        "str_a",
        "int_1",
        "float_1",
        "null",
    }
    assert _found(searched, metadata__kind__not_in=[]) == everyone_with_kind
    assert _found(searched, metadata__nothing__ne="a") == set()


def test_json_in_matches_any_listed_value_by_json_type(store_factory: StoreFactory) -> None:
    """in holds when the value equals one item as JSON (types kept), also for long lists."""
    searched = _searched(store_factory)
    assert _found(searched, metadata__kind__in=["a", True, None]) == {"str_a", "true", "null"}
    assert _found(searched, metadata__kind__in=["1", False]) == {"str_1", "false"}
    assert _found(searched, metadata__kind__in=[]) == set()
    many = [f"k{i}" for i in range(40)] + [1.0, "b"]
    assert _found(searched, metadata__kind__in=many) == {"str_b", "int_1", "float_1"}
    assert _found(searched, metadata__kind__not_in=many) == set(DOCUMENTS) - {
        "str_b",
        "int_1",
        "float_1",
        "empty",
    }


def test_json_ordering_compares_numbers_with_numbers_only(store_factory: StoreFactory) -> None:
    """lt/lte/gt/gte hold between two numbers (never booleans, strings or null)."""
    searched = _searched(store_factory)
    assert _found(searched, metadata__score__gte=3) == {"str_a", "str_b", "big"}
    assert _found(searched, metadata__score__gt=3) == {"str_b", "big"}
    assert _found(searched, metadata__score__lte=3) == {"str_a", "float_1", "int_1", "false"}
    assert _found(searched, metadata__score__lt=0) == {"int_1"}
    assert _found(searched, metadata__score__gt=2.9995) == {"str_a", "str_b", "big"}
    assert _found(searched, metadata__score__gt=2**62) == {"big"}
    assert _found(searched, metadata__score__lt=2**62 + 1) == {
        "str_a",
        "str_b",
        "int_1",
        "float_1",
        "false",
    }


def test_json_strings_order_by_code_point(store_factory: StoreFactory) -> None:
    """Strings equal and order by code point, exactly, long ones too, and never match numbers."""
    # Case-, accent- and trailing-space-exact; escapes (quotes, backslashes, controls) included.
    words = ["B", "a", "ab", "a ", "é", "z", "😀", "\u00e9t\u00e9", "10", "9", "a\nb", "\x01",
             'q"uote', "back\\slash", "\u2028", "x" * 3000]  # fmt: skip
    store = _memories(store_factory(), {w: {"w": w} for w in words} | {"n": {"w": 5}})
    for bound in ("a", "B", "é", "9", "a ", "a\nb", 'q"uote', "x" * 2999 + "y"):
        assert _found(store, metadata__w__gt=bound) == {w for w in words if w > bound}, bound
        assert _found(store, metadata__w__lte=bound) == {w for w in words if w <= bound}, bound
    for word in words:
        assert _found(store, metadata__w=word) == {word}, word


def test_json_nested_keys_reach_objects_only(store_factory: StoreFactory) -> None:
    """a__b looks into the object under a; arrays are never indexed; a path via a scalar misses."""
    documents: dict[str, dict[str, Any]] = {
        "object": {"a": {"b": 1}},
        "deeper": {"a": {"b": {"c": "x"}}},
        "array": {"a": [{"b": 1}]},
        "indexed": {"a": [1, 2], "t": {"0": 1}},
        "scalar": {"a": "b"},
        "flat": {"b": 1},
    }
    store = _memories(store_factory(), documents)
    assert _found(store, metadata__a__b=1) == {"object"}
    assert _found(store, metadata__a__b__c="x") == {"deeper"}
    assert _found(store, metadata__a__b__isnull=False) == {"object", "deeper"}
    assert _found(store, metadata__a__0=1) == set()
    assert _found(store, metadata__t__0=1) == {"indexed"}
    assert _found(store, metadata__a__b__ne=2) == {"object", "deeper"}


def test_json_keys_with_any_characters(store_factory: StoreFactory) -> None:
    """Keys with any characters (quotes, dots, $, controls, non-ASCII...) match exactly, as data."""
    # Also backslashes and spaces; never read as path syntax.
    keys = ['a"b', "a\\b", "a.b", "$", "*", "[0]", "é k", "tab\t", "line\nbreak", "\x01", "'", "😀"]
    store = _memories(store_factory(), {f"m{i}": {k: i, "a": {k: i}} for i, k in enumerate(keys)})
    for i, key in enumerate(keys):
        assert _found(store, **{f"metadata__{key}": i}) == {f"m{i}"}, key
        assert _found(store, **{f"metadata__a__{key}__gte": i}) == {f"m{i}"}, key
        assert _found(store, **{f"metadata__a__{key}__lt": i}) == set(), key
        assert _found(store, metadata__has_key=key) == {f"m{i}"}, key
    assert _found(store, metadata__a__has_key="a.b") == {"m2"}
    assert _found(store, metadata__has_key="a") == {f"m{i}" for i in range(len(keys))}


def test_json_has_key_family(store_factory: StoreFactory) -> None:
    """has_key: key exists; has_keys: all exist; has_any_keys: one exists; nested keys by path."""
    searched = _searched(store_factory)
    store = searched
    everyone_with_kind = set(DOCUMENTS) - {"empty"}
    assert _found(store, metadata__has_key="kind") == everyone_with_kind
    assert _found(store, metadata__has_key="nothing") == set()
    assert _found(store, metadata__has_keys=["kind", "score"]) == everyone_with_kind
    assert _found(store, metadata__has_keys=[]) == set(DOCUMENTS)
    assert _found(store, metadata__has_any_keys=["nothing", "kind"]) == everyone_with_kind
    assert _found(store, metadata__has_any_keys=[]) == set()
    assert _found(store, metadata__kind__has_key="a") == {"object"}
    assert _found(store, metadata__has_key="a__b") == set()


def test_json_lookups_in_every_call(store_factory: StoreFactory) -> None:
    """find_one, count, exists, page, update_many, similar and nearest take JSON lookups."""
    searched = _searched(store_factory)
    memories = searched.memories
    user_id = memories.find_many()[0].user_id
    found = memories.find_one(metadata__kind="a")
    assert found is not None
    assert found.content == "str_a"
    assert memories.count(where={"metadata__kind": 1}) == 2
    assert memories.count(metadata__score__gt=3) == 2
    assert memories.exists(metadata__kind=False)
    assert not memories.exists(metadata__kind="zzz")
    first = memories.page(where={"metadata__kind__in": ["a", "b", 1]}, size=2)
    rest = memories.page(
        where={"metadata__kind__in": ["a", "b", 1]}, size=2, cursor=first.next_cursor
    )
    assert {m.content for m in [*first.items, *rest.items]} == {
        "str_a",
        "str_b",
        "int_1",
        "float_1",
    }
    assert memories.update_many({"metadata__score__gte": 3}, importance=0.75) == 3
    assert {m.content for m in memories.find_many(where={"importance": 0.75})} == {
        "str_a",
        "str_b",
        "big",
    }
    similar = memories.similar(user_id, [1.0, 0.0], limit=20, where={"metadata__kind": 1})
    assert {s.memory.content for s in similar} == {"int_1", "float_1"}
    nearest = memories.nearest([1.0, 0.0], limit=20, where={"metadata__kind__isnull": True})
    assert [s.memory.content for s in nearest] == ["empty"]


def test_json_lookups_on_any_json_column(store_factory: StoreFactory) -> None:
    """Every JSON column takes key lookups: a user's settings, a session's metadata."""
    store = store_factory()
    dark = new_user(store, settings={"theme": "dark", "ui": {"size": 14}})
    new_user(store, settings={"theme": "light", "ui": {"size": 12}})
    assert [u.id for u in store.users.find_many(where={"settings__theme": "dark"})] == [dark.id]
    assert [u.id for u in store.users.find_many(where={"settings__ui__size__gt": 13})] == [dark.id]
    session = new_session(store, dark, metadata={"channel": "voice"})
    new_session(store, dark, metadata={"channel": "text"})
    found = store.sessions.find_many(where={"metadata__channel": "voice"})
    assert [s.id for s in found] == [session.id]


@pytest.mark.parametrize(
    "where",
    [
        {"metadata__kind": {"a": 1}},
        {"metadata__kind": ["a"]},
        {"metadata__kind__in": [["a"]]},
        {"metadata__kind__in": "ab"},
        {"metadata__score__gt": True},
        {"metadata__score__gt": None},
        {"metadata__kind": float("nan")},
        {"metadata__kind": "a\x00"},
        {"metadata__kind": 2**64},
        {"metadata__in": [1]},
        {"metadata____kind": 1},
        {"metadata__kind__contains": "a"},
        {"metadata__has_key": ""},
        {"metadata__has_key": 1},
        {"metadata__has_keys": "kind"},
        {"metadata__kind__isnull": 1},
        {"metadata__kind\x00": 1},
        {"metadata__" + "__".join(["k"] * 40): 1},
    ],
    ids=repr,
)
def test_bad_json_lookups_are_refused_before_anything_is_written(
    store_factory: StoreFactory, where: dict[str, Any]
) -> None:
    """Bad key, lookup or value: ValidationError naming the lookup; update_many changes nothing."""
    searched = _searched(store_factory)
    error = refused(searched, lambda: searched.memories.update_many(where, importance=0.5))
    assert error.field == next(iter(where))
    refused(searched, lambda: searched.memories.find_many(where=where))
