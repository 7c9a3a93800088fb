"""Hostile input to every public repository method: only clonestore errors, nothing written
on refusal, SQL-looking text stored verbatim when valid. On the backend matrix."""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clonestore
from clonestore import ClonestoreError
from clonestore.repositories import REPOSITORIES
from clonestore.testing.contract._builders import (
    new_document,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    snapshot,
)
from tests.strategies import bad_json, bad_text, deep_json, naive_datetimes, non_finite

SQL_TEXT = ["'; DROP TABLE users; --", "%", "_", "\\", "'", '"', "a%b_c\\d", "' OR '1'='1",
            "Robert'); DROP TABLE sessions;--", "\\'; --", "%%__\\\\"]

#: A well-formed id that names no row.
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
hostile = st.one_of(
    st.sampled_from(SQL_TEXT),
    bad_text,
    bad_json,
    non_finite,
    naive_datetimes,
    st.sampled_from([
        None, True, 0, -1, 2**70, -(2**70), 1.5, b"bytes", object(), (), [], {}, {1, 2},
        Decimal("NaN"), Decimal("-1"), Decimal("1e40"), "x" * 300, "y" * 10_001, "z" * 100_001,
        ["t"] * 10_001, [[["deep"]]], deep_json(200), {"k": deep_json(50)}, [None], [1, "a"],
        {"id__in": "x"}, datetime.now(), float("inf"), "not-an-id",
        UNKNOWN_ID,
    ]),
)

FIELDS = sorted({f for spec in clonestore.records.TABLES.values() for f in spec.by_name}
                | {"unknown", "id__nope", "name__icontains", "email__in", "tags__overlap",
                   "created_at__gte", "__class__", "where", "expected_version"})

#: Every public repository method (generic and domain), by "table.method".
METHODS = sorted(
    f"{table}.{name}"
    for table, cls in REPOSITORIES.items()
    for name, member in inspect.getmembers(cls, inspect.isfunction)
    if not name.startswith("_") and name != "scoped"
)


@pytest.fixture
def rows(store: clonestore.Store) -> dict[str, str]:
    """One live row of each kind, whose ids the calls may aim at."""
    user = new_user(store)
    session = new_session(store, user)
    return {
        "user": user.id,
        "voice": new_voice_model(store, user).id,
        "session": session.id,
        "turn": store.sessions.add_turn(session.id).id,
        "doc": new_document(store, user).id,
        "memory": new_memory(store, user).id,
    }


def _arguments(data: st.DataObject, rows: dict[str, str], fn: Callable[..., Any]) -> tuple:
    values = st.one_of(hostile, st.sampled_from(sorted(rows.values())))
    signature = inspect.signature(fn).parameters.values()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in signature if p.default is p.empty and p.kind in positional]
    optional = [p.name for p in signature if p.default is not p.empty]
    takes_fields = any(p.kind is p.VAR_KEYWORD for p in signature)
    args = [data.draw(values) for _ in required]
    taken = {p.name for p in required}
    names = optional + ([f for f in FIELDS if f not in taken] if takes_fields else [])
    kwargs = data.draw(st.dictionaries(st.sampled_from(names), values, max_size=4)) if names else {}
    return args, kwargs


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_calls_raise_only_clonestore_errors(
    store: clonestore.Store, rows: dict[str, str], data: st.DataObject
) -> None:
    """Any public repository method called with hostile arguments either works or raises a
    clonestore error having written nothing."""
    table, method = data.draw(st.sampled_from(METHODS)).split(".")
    fn = getattr(getattr(store, table), method)
    args, kwargs = _arguments(data, rows, fn)
    before = snapshot(store)
    try:
        fn(*args, **kwargs)
    except ClonestoreError:
        assert snapshot(store) == before, f"{table}.{method} failed but wrote"


@given(values=st.lists(st.sampled_from(SQL_TEXT), min_size=1, max_size=3).map("".join))
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_sql_looking_text_is_stored_verbatim(store: clonestore.Store, values: str) -> None:
    """SQL-looking text is stored and matched literally (LIKE metacharacters too)."""
    user = store.users.create(email=f"{len(store.users.find_many())}@example.com",
                              name=values, personality_traits=[values])
    doc = new_document(store, user, filename=values, tags=[values])
    assert store.users.get(user.id).name == values
    assert store.users.get(user.id).personality_traits == (values,)
    assert store.documents.get(doc.id).filename == values
    assert [u.id for u in store.users.find_many(where={"name": values})] == [user.id]
    assert [d.id for d in store.documents.search_by_tags(user.id, [values])] == [doc.id]
    assert store.users.count() == len(store.users.find_many())


def test_every_method_is_covered() -> None:
    """The hostile-call test draws from every public method of every repository."""
    assert {"users.find_by_email", "sessions.add_turn", "documents.update_status",
            "memories.similar", "voice_models.activate", "turns.create_many"} <= set(METHODS)


def _is_id(value: Any) -> bool:
    """Whether ``value`` is a well-formed id (1 to 128 characters, no control characters, no
    lone surrogates): SQL-looking text is one since ids are the caller's to choose."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 128
        and not any(unicodedata.category(c) in ("Cc", "Cs") for c in value)
    )


@pytest.mark.parametrize("call", ["export_user", "erase_user", "for_user"])
@given(value=hostile)
@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_store_level_calls_refuse_hostile_ids(store: clonestore.Store, call: str,
                                              value: Any) -> None:
    """Store-level calls taking a user id refuse hostile ids with a clonestore error
    (a well-formed id naming no user gives for_user a view that sees and changes nothing)."""
    before = snapshot(store)
    if call == "for_user" and _is_id(value):
        view = store.for_user(value)  # views are cheap: no read until used
        assert view.users.count() == 0
        with pytest.raises(clonestore.NotFound):
            view.users.get(value)
    else:
        with pytest.raises(ClonestoreError):
            getattr(store, call)(value)
    assert snapshot(store) == before


@pytest.mark.parametrize("call", [
    lambda s, r: s.documents.create_many(float("nan")),
    lambda s, r: s.turns.create_many([{1: "x"}]),
    lambda s, r: s.turns.create_many(7),
    lambda s, r: s.sessions.update_state(r["session"], ["idle"]),
    lambda s, r: s.memories.page(order_by=float("nan")),
    lambda s, r: s.memories.update_many({1: "non-string key"}, content="x"),
], ids=["create_many-nan", "turns-int-keys", "turns-int", "state-list", "order-nan",
        "where-int-key"])
def test_found_cases_are_validation_errors(
    store: clonestore.Store, rows: dict[str, str], call: Callable[..., Any]
) -> None:
    """Inputs that once escaped as TypeError/AttributeError are ValidationErrors now."""
    before = snapshot(store)
    with pytest.raises(clonestore.ValidationError):
        call(store, rows)
    assert snapshot(store) == before
