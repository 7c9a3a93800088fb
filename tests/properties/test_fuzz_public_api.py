"""A fuzz target over the public API: every repository driven with hostile values on
memory://, SQLite, PostgreSQL and MariaDB in lockstep.

Each example starts from a user, a session and a memory, then makes a few calls drawn
at random (create, update, get, find_many, count, delete, restore, hard_delete and the
domain operations) whose arguments mix valid values with hostile ones: NUL and lone
surrogates, integers past 64 bits, NaN and infinities, money with seven places, naive
datetimes, JSON nested past the limit or with non-string keys, bytes, wrong types,
unknown fields, huge vectors, ids that are not ids. Every call must succeed or raise a
clonestore error (a raw Python or driver exception fails the test), the same outcome on
every backend (value or error class), and a call that raised must have written nothing;
after every call all four backends hold the same rows.

The suite runs a short, bounded run (``CLONESTORE_FUZZ_EXAMPLES``, default 15). A long
run, documented in the README::

    CLONESTORE_FUZZ_EXAMPLES=5000 python -m pytest --timeout=0 \
        tests/properties/test_fuzz_public_api.py
"""

from __future__ import annotations

import math
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clonestore
from clonestore.query import TRUE, OrderBy
from clonestore.testing import strategies as values
from clonestore.testing.differential import Stores, canon_row

EXAMPLES = int(os.environ.get("CLONESTORE_FUZZ_EXAMPLES", "15"))

#: Values every field may be given: valid ones of each kind, and hostile ones.
hostile = st.one_of(
    values.text,
    values.bad_text,
    values.int64,
    values.out_of_range_ints,
    values.finite_floats,
    values.non_finite,
    values.money,
    values.bad_money,
    values.aware_datetimes,
    values.naive_datetimes,
    values.json_values,
    values.bad_json,
    st.just(values.deep_json(100)),  # past the limit; Hypothesis must still print it
    st.sampled_from([None, True, b"bytes", object, [1, "a"], {"k": {1, 2}}, (), "x" * 70_000]),
    st.sampled_from([[0.5] * 20_000, [math.nan, 1.0], ["1.0"], [10**400 // 10**300]]),
    st.sampled_from(["00000000-0000-4000-8000-00000000dead", "", " ", "../../etc"]),
)

#: Field names: every column of the domain tables, and ones no table has.
FIELDS = sorted(
    {
        "email", "name", "personality_traits", "subscription_tier", "settings", "provider",
        "model_id", "sample_paths", "is_active", "metadata", "filename", "file_type",
        "file_size", "status", "tags", "text_content", "vector_ids", "content",
        "memory_type", "importance", "embedding", "session_id", "user_id", "state",
        "user_transcript", "llm_response", "asr_latency_ms", "llm_latency_ms", "llm_cost",
        "tts_cost", "ended_at", "started_at", "id", "version", "created_at", "deleted_at",
        "no_such_field", "email__in", "tags__overlap", "created_at__gte", "name__startswith",
    }
)
fields = st.dictionaries(st.sampled_from(FIELDS), hostile, max_size=3)

#: Every repository of a user's rows (the one list: clonestore.repositories.Repositories).
REPOSITORIES = list(clonestore.repositories.REPOSITORIES)
METHODS = ["create", "update", "get", "find_many", "count", "delete", "restore", "hard_delete",
           "update_many", "exists", "page"]
DOMAIN = ["add_turn", "update_state", "end", "add", "similar", "search_by_tags",
          "update_status", "activate", "find_by_email", "user_statistics", "export_user",
          "erase_user"]

#: What a create needs to have a chance to succeed, per repository (hostile fields override).
_BASE: dict[str, dict[str, str]] = {
    "users": {"email": "fuzz@example.com", "name": "Fuzz"},
    "voice_models": {"name": "voice", "provider": "p"},
    "face_models": {"name": "face", "provider": "p"},
    "sessions": {},
    "documents": {"filename": "f.txt"},
    "memories": {"content": "c"},
    "turns": {},
}

calls = st.lists(
    st.tuples(
        st.sampled_from(REPOSITORIES),
        st.sampled_from(METHODS + DOMAIN),
        fields,
        st.sampled_from(["user", "session", "memory", "hostile"]),
        hostile,
    ),
    min_size=1,
    max_size=4,
)


def _target(ids: dict[str, str], which: str, value: Any) -> Any:
    return value if which == "hostile" else ids[which]


def _call(store: clonestore.Store, ids: dict[str, str], call: tuple[Any, ...]) -> Any:
    """One public call of the generated kind (its result, for comparison)."""
    name, method, given, which, value = call
    repo = getattr(store, name)
    target = _target(ids, which, value)
    owner = {"user_id": ids["user"]} if name != "users" else {}
    if name == "turns":
        owner = {"session_id": ids["session"]}
    if method == "create":
        return repo.create(**{**_BASE[name], **owner, **given})
    if method == "update":
        return repo.update(target, **given)
    if method == "get":
        return repo.get(target)
    if method == "find_many":
        return repo.find_many(where=given, order_by="id", limit=5)
    if method == "count":
        return repo.count(where=given)
    if method == "exists":
        return repo.exists(**given)
    if method == "page":
        return repo.page(where=given, order_by="id", size=2).items
    if method in ("delete", "restore", "hard_delete"):
        return getattr(repo, method)(target)
    if method == "update_many":
        return repo.update_many(given, all=False, **given)
    if method == "add_turn":
        return store.sessions.add_turn(ids["session"], **given)
    if method == "update_state":
        return store.sessions.update_state(target, value)
    if method == "end":
        return store.sessions.end(target)
    if method == "add":
        return store.memories.add(ids["user"], given.get("content", "c"), value, **{
            k: v for k, v in given.items() if k != "content"})
    if method == "similar":
        return store.memories.similar(ids["user"], value, limit=3)
    if method == "search_by_tags":
        return store.documents.search_by_tags(ids["user"], value)
    if method == "update_status":
        return store.documents.update_status(target, value)
    if method == "activate":
        return store.voice_models.activate(target)
    if method == "find_by_email":
        return store.users.find_by_email(value)
    if method == "user_statistics":
        return store.sessions.user_statistics(target)
    if method == "export_user":
        return store.export_user(target)
    return store.erase_user(target)


def _snapshot(store: clonestore.Store) -> dict[str, list[Any]]:
    return {name: [canon_row(r) for r in store.backend.select(spec, TRUE, [OrderBy("id")])]
            for name, spec in store.tables.items()}


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(calls=calls)
def test_hostile_calls_give_one_typed_outcome_everywhere(
    differential_stores: Stores, calls: list[tuple[Any, ...]]
) -> None:
    """Hostile arguments to every repository: success or a clonestore error, the same on
    memory://, SQLite, PostgreSQL and MariaDB, nothing written by a call that raised, and
    the same rows everywhere after each call."""
    stores = differential_stores
    stores.reset()
    user = stores.apply(lambda s: s.users.create(email="owner@example.com", name="Owner"))
    session = stores.apply(lambda s: s.sessions.create(user_id=user.id))
    memory = stores.apply(lambda s: s.memories.add(user.id, "m", [1.0, 0.0],
                                                   session_id=session.id))
    ids = {"user": user.id, "session": session.id, "memory": memory.id}
    for call in calls:
        before = {name: _snapshot(store) for name, store in stores}
        outcomes: dict[str, str] = {}

        def run(
            store: clonestore.Store,
            call: tuple[Any, ...] = call,
            outcomes: dict[str, str] = outcomes,
        ) -> Any:
            try:
                return _call(store, ids, call)
            except clonestore.ClonestoreError as exc:
                outcomes[store.url] = type(exc).__name__
                raise

        stores.apply(run)
        if outcomes:  # the call raised (everywhere, as apply checked): nothing written
            for name, store in stores:
                assert _snapshot(store) == before[name], f"{name}: {call[:2]} wrote and raised"
        stores.assert_same_tables()

