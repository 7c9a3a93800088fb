"""Contract: memories (add, exact cosine and L2 similarity)."""

from __future__ import annotations

import array
import math
from functools import partial
from typing import Any

import numpy as np
import pytest

from clonestore import NotFound, ScoredMemory, Store, ValidationError
from clonestore.testing import StoreFactory
from clonestore.testing.contract._builders import (
    id_sequence,
    missing_id,
    new_memory,
    new_session,
    new_user,
    raises,
    refused,
    typed,
)


def test_add_memory(store: Store) -> None:
    """add() stores content, embedding (as floats) and optional fields, read back equal."""
    user = new_user(store)
    session = new_session(store, user)
    memory = store.memories.add(
        user.id,
        "Ada prefers tea to coffee",
        [0.25, -1, 3.5],
        memory_type="preference",
        importance=0.9,
        session_id=session.id,
        tags=["drinks"],
        metadata={"source": "turn 3"},
    )
    assert memory.embedding == (0.25, -1.0, 3.5)
    assert (memory.memory_type, memory.importance, memory.session_id) == (
        "preference",
        0.9,
        session.id,
    )
    assert store.memories.get(memory.id) == memory
    default = new_memory(store, user)
    assert (default.memory_type, default.importance) == ("fact", 0.0)


def _scores(results: list[ScoredMemory]) -> list[tuple[str, Any]]:
    return [(r.memory.content, r.score) for r in results]


def test_similar_cosine_exact(store: Store) -> None:
    """similar() ranks by cosine similarity, best first, with exact scores."""
    user = new_user(store)
    for content, vector in [
        ("same", [1.0, 0.0]),
        ("diagonal", [1.0, 1.0]),
        ("orthogonal", [0.0, 2.0]),
        ("opposite", [-3.0, 0.0]),
        ("scaled", [5.0, 0.0]),
        ("mixed", [3.0, -4.0]),
    ]:
        new_memory(store, user, embedding=vector, content=content)
    results = store.memories.similar(user.id, [2.0, 0.0], limit=10)
    contents = [r.memory.content for r in results]
    assert set(contents[:2]) == {"same", "scaled"}
    assert contents[2:] == ["diagonal", "mixed", "orthogonal", "opposite"]
    expected = {
        "same": 1.0,
        "scaled": 1.0,
        "diagonal": 1 / math.sqrt(2),
        "mixed": 0.6,
        "orthogonal": 0.0,
        "opposite": -1.0,
    }
    for content, score in _scores(results):
        assert score == pytest.approx(expected[content], abs=1e-12), content


def test_similar_l2_exact(store: Store) -> None:
    """similar(metric='l2') ranks by Euclidean distance, nearest first, with exact scores."""
    user = new_user(store)
    for content, vector in [
        ("origin", [0.0, 0.0, 0.0]),
        ("unit", [1.0, 0.0, 0.0]),
        ("far", [3.0, 4.0, 12.0]),
        ("near", [1.0, 2.0, 2.0]),
    ]:
        new_memory(store, user, embedding=vector, content=content)
    results = store.memories.similar(user.id, [0.0, 0.0, 0.0], metric="l2", limit=4)
    assert _scores(results) == [("origin", 0.0), ("unit", 1.0), ("near", 3.0), ("far", 13.0)]
    results = store.memories.similar(user.id, [1.0, 2.0, 2.0], metric="l2", limit=2)
    assert _scores(results) == [("near", 0.0), ("unit", pytest.approx(math.sqrt(8)))]


def test_similar_limit_and_ties_by_id(store_factory: StoreFactory) -> None:
    """similar() returns at most limit results; equal scores come in id order."""
    store = store_factory(id_factory=id_sequence(90, 40, 70, 10, 50))
    user = new_user(store)
    memories = [new_memory(store, user, embedding=[1.0, 1.0], content=f"m{i}") for i in range(4)]
    results = store.memories.similar(user.id, [2.0, 2.0], limit=3)
    assert [r.memory.id for r in results] == sorted(m.id for m in memories)[:3]
    assert all(r.score == pytest.approx(1.0) for r in results)


def test_similar_considers_only_the_users_live_same_dimension_memories(store: Store) -> None:
    """similar() skips other users' memories, deleted ones, other dimensions, zero vectors."""
    user = new_user(store)
    other = new_user(store)
    kept = new_memory(store, user, embedding=[1.0, 0.0], content="kept")
    new_memory(store, other, embedding=[1.0, 0.0], content="theirs")
    gone = new_memory(store, user, embedding=[1.0, 0.0], content="gone")
    store.memories.delete(gone.id)
    new_memory(store, user, embedding=[1.0, 0.0, 0.0], content="3d")
    new_memory(store, user, embedding=[0.0, 0.0], content="zero")
    assert [r.memory.id for r in store.memories.similar(user.id, [1.0, 0.0])] == [kept.id]
    l2 = store.memories.similar(user.id, [1.0, 0.0], metric="l2")
    assert [r.memory.content for r in l2] == ["kept", "zero"]


def test_similar_validates_its_arguments(store: Store) -> None:
    """similar() refuses unknown metrics, bad limits, bad and zero (cosine) query vectors."""
    user = new_user(store)
    new_memory(store, user)
    bad: list[dict[str, Any]] = [
        {"embedding": [1.0, 0.0], "metric": "dot"},
        {"embedding": [1.0, 0.0], "limit": -1},
        {"embedding": [1.0, 0.0], "limit": 2.5},
        {"embedding": [0.0, 0.0]},
        {"embedding": []},
        {"embedding": [math.nan, 1.0]},
        {"embedding": "1,0"},
    ]
    for kwargs in bad:
        raises(ValidationError, partial(store.memories.similar, user.id, **kwargs), repr(kwargs))


def test_similar_with_limit_zero_returns_nothing(store: Store) -> None:
    """similar(limit=0) and nearest(limit=0) return [] (its other arguments still checked)."""
    user = new_user(store)
    new_memory(store, user, embedding=[1.0, 0.0])
    assert store.memories.similar(user.id, [1.0, 0.0], limit=0) == []
    assert store.memories.nearest([1.0, 0.0], limit=0, metric="l2") == []
    raises(ValidationError, partial(store.memories.similar, user.id, [0.0, 0.0], limit=0))


def test_vectors_are_taken_in_every_float_form(store: Store) -> None:
    """Vectors in every float form (numpy, array, memoryview...) are taken, read back float32."""
    user = new_user(store)
    values = [0.1, -2.5, 1 / 3]
    rounded = tuple(float(x) for x in np.asarray(values, dtype=np.float32))
    forms: dict[str, Any] = {
        "list": list(values),
        "tuple": tuple(values),
        "float64 array": np.asarray(values),
        "float32 array": np.asarray(values, dtype=np.float32),
        "numpy scalars": [np.float64(x) for x in values],
        "float32 scalars": [np.float32(x) for x in values],
        "array('d')": array.array("d", values),
        "array('f')": array.array("f", values),
        "memoryview": memoryview(array.array("d", values)),
        "strided view": np.asarray([values, values]).T[:, 0],
    }
    for what, form in forms.items():
        memory = store.memories.add(user.id, what, form)
        assert typed(memory.embedding) == typed(rounded), what
        assert typed(store.memories.get(memory.id).embedding) == typed(rounded), what
    half = store.memories.add(user.id, "float16", np.asarray([0.5, 2.0], dtype=np.float16))
    assert typed(half.embedding) == typed((0.5, 2.0))
    for what, form in forms.items():
        found = store.memories.similar(user.id, form, limit=len(forms))
        assert len(found) == len(forms), what
        assert all(r.score == pytest.approx(1.0, abs=1e-12) for r in found), what


def test_vectors_are_rounded_to_float32(store: Store) -> None:
    """Embedding items are stored as the nearest float32, read back so; larger ones refused."""
    user = new_user(store)
    values = [0.1, 1 / 3, 3.4e38, -2.5, 1e20, 123456789.123456789, 2.0**-50, -(2.0**-49)]
    expected = [float(x) for x in np.asarray(values, dtype=np.float32)]
    memory = new_memory(store, user, embedding=values)
    assert typed(list(memory.embedding or ())) == typed(expected)
    assert typed(list(store.memories.get(memory.id).embedding or ())) == typed(expected)
    for big in (3.5e38, -1e39, 1.7976931348623157e308):
        refused(store, partial(new_memory, store, user, embedding=[1.0, big]), what=str(big))


def test_tiny_vector_items_are_stored_as_zero(store: Store) -> None:
    """Items below 2**-50 in magnitude (and -0.0) are stored and queried as 0.0."""
    user = new_user(store)
    below = float(np.nextafter(np.float32(2.0**-50), np.float32(0.0)))  # largest flushed
    values = [1.0, 2.0**-50, below, -below, 1e-33, -1e-33, 1e-40, -1e-46, -0.0, 0.5]
    expected = [1.0, 2.0**-50, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    memory = new_memory(store, user, embedding=values)
    assert typed(list(memory.embedding or ())) == typed(expected)
    stored = list(store.memories.get(memory.id).embedding or ())
    assert typed(stored) == typed(expected)
    assert all(math.copysign(1.0, x) == 1.0 for x in stored if x == 0.0), stored  # not -0.0
    many = store.memories.create_many([{"user_id": user.id, "content": "m", "embedding": values}])
    assert typed(list(store.memories.get(many[0].id).embedding or ())) == typed(expected)
    store.memories.update(memory.id, embedding=[1e-33, 1.0, *values[2:]])
    assert typed(list(store.memories.get(memory.id).embedding or ())[:2]) == typed([0.0, 1.0])
    # A query is flushed as stored vectors are: the same results and scores as without
    # its tiny items; one left with no other item is a zero vector.
    for metric in ("cosine", "l2", "ip"):
        flushed = store.memories.similar(user.id, expected, limit=5, metric=metric)
        got = store.memories.similar(user.id, values, limit=5, metric=metric)
        assert [(r.memory.id, r.score) for r in got] == [
            (r.memory.id, r.score) for r in flushed
        ], metric  # fmt: skip
    refused(store, partial(store.memories.similar, user.id, [1e-33] * len(values)))


def test_memories_need_a_live_user(store: Store) -> None:
    """add() for a missing user raises NotFound and writes nothing."""
    refused(store, lambda: store.memories.add(missing_id(), "x", [1.0]), NotFound)


def test_memory_update_and_soft_delete(store: Store) -> None:
    """Memories support update, soft delete and restore."""
    user = new_user(store)
    memory = new_memory(store, user)
    updated = store.memories.update(memory.id, importance=0.1, embedding=[0.0, 1.0])
    assert (updated.importance, updated.embedding) == (0.1, (0.0, 1.0))
    store.memories.delete(memory.id)
    assert store.memories.similar(user.id, [0.0, 1.0]) == []
    store.memories.restore(memory.id)
    assert [r.memory.id for r in store.memories.similar(user.id, [0.0, 1.0])] == [memory.id]


def test_vectors_longer_than_the_store_keeps_are_refused(store: Store) -> None:
    """A vector one past the store's limit is a ValidationError, nothing written; the limit fits."""
    # Limit: max_vector_dimensions (smallest declared, else the column's 16,384). Via add,
    # create_many, update and similar; a vector of exactly the limit is stored, read back and found.
    limit = store.max_vector_dimensions or 16_384
    assert 1 <= limit <= 16_384
    user = new_user(store)
    kept = new_memory(store, user, embedding=[0.5] * 4)
    too_long = [0.25] * (limit + 1)
    cases = {
        "add": lambda: store.memories.add(user.id, "long", too_long),
        "create_many": lambda: store.memories.create_many(
            [{"user_id": user.id, "content": "ok", "embedding": [1.0]},
             {"user_id": user.id, "content": "long", "embedding": too_long}]
        ),
        "update": lambda: store.memories.update(kept.id, embedding=too_long),
        "similar": lambda: store.memories.similar(user.id, too_long),
    }
    for what, action in cases.items():
        error = refused(store, action, what=what)
        assert error.field == "embedding", what
    longest = store.memories.add(user.id, "longest", [0.25] * limit)
    assert len(store.memories.get(longest.id).embedding or ()) == limit
    found = store.memories.similar(user.id, [0.25] * limit, limit=1)
    assert [r.memory.id for r in found] == [longest.id]


def test_a_memory_without_an_embedding_is_never_recalled(store: Store) -> None:
    """similar and nearest never return a memory without an embedding."""
    user = new_user(store)
    bare = store.memories.add(user.id, "bare")
    store.memories.add(user.id, "with", [1.0, 0.0])
    for metric in ("cosine", "l2", "ip"):
        found = store.memories.similar(user.id, [1.0, 0.0], limit=10, metric=metric)
        assert [m.memory.content for m in found] == ["with"], metric
        nearest = store.memories.nearest([1.0, 0.0], limit=10, metric=metric)
        assert bare.id not in [m.memory.id for m in nearest], metric
    store.memories.update(bare.id, embedding=[0.0, 1.0])
    assert {m.memory.id for m in store.memories.similar(user.id, [1.0, 1.0])} >= {bare.id}
    store.memories.update(bare.id, embedding=None)
    assert bare.id not in [m.memory.id for m in store.memories.similar(user.id, [1.0, 1.0])]
    raises(ValidationError, lambda: store.memories.similar(user.id, None))  # type: ignore[arg-type]


def test_a_memorys_session_is_one_of_its_users_sessions(store: Store) -> None:
    """A memory's session_id must be one of its user's sessions, else ValidationError, no write."""
    # Through the store, a user's view (for_user) and create_many alike.
    a, b = new_user(store), new_user(store)
    a_session, b_session = new_session(store, a), new_session(store, b)
    view = store.for_user(b.id)
    cases = {
        "another user's": lambda: store.memories.add(b.id, "x", [1.0], session_id=a_session.id),
        "none at all": lambda: store.memories.add(b.id, "x", [1.0], session_id=missing_id()),
        "through a view": lambda: view.memories.add(b.id, "x", [1.0], session_id=a_session.id),
        "create_many": lambda: store.memories.create_many(
            [{"user_id": b.id, "content": "ok", "session_id": b_session.id},
             {"user_id": b.id, "content": "x", "session_id": a_session.id}]
        ),
    }
    for what, action in cases.items():
        error = refused(store, action, what=what)
        assert error.field == "session_id", what
    kept = view.memories.add(b.id, "mine", [1.0], session_id=b_session.id)
    assert store.memories.get(kept.id).session_id == b_session.id
