"""Contract: memories (add, exact cosine and L2 similarity)."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

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
    assert (default.memory_type, default.importance) == ("fact", 0.5)


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
        {"embedding": [1.0, 0.0], "limit": 0},
        {"embedding": [1.0, 0.0], "limit": 2.5},
        {"embedding": [0.0, 0.0]},
        {"embedding": []},
        {"embedding": [math.nan, 1.0]},
        {"embedding": "1,0"},
    ]
    for kwargs in bad:
        raises(ValidationError, partial(store.memories.similar, user.id, **kwargs), repr(kwargs))


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
