"""Bulk work pauses the cyclic garbage collector (clonestore._collection)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from clonestore import Store, ValidationError


def _in_create_many() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "create_many" and "repositories" in frame.f_code.co_filename:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations of the collections that start inside a repository's create_many."""
    seen: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and _in_create_many():
            seen.append(info["generation"])

    gc.callbacks.append(note)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)


def test_create_many_runs_no_garbage_collection(store: Store, collections: list[int]) -> None:
    """create_many of 3,000 memories runs no collection until its end; the collector is on."""
    user = store.users.create(email="bulk@example.com", name="Bulk")
    rows = [{"user_id": user.id, "content": f"m{i}", "embedding": [float(i), 1.0, 2.0]}
            for i in range(3000)]  # fmt: skip
    assert gc.isenabled()
    store.memories.create_many(rows)
    assert len(collections) <= 1  # at most the one as the collector comes back (~10 without)
    assert gc.isenabled()
    assert store.memories.count() == 3000


def test_collector_comes_back_after_a_refused_create_many(store: Store) -> None:
    """A create_many refused mid-way re-enables the collector; one disabled stays so."""
    user = store.users.create(email="bulk@example.com", name="Bulk")
    bad = [{"user_id": user.id, "content": "m", "embedding": [1.0]}, {"user_id": user.id}]
    with pytest.raises(ValidationError):
        store.memories.create_many(bad)
    assert gc.isenabled()
    gc.disable()
    try:
        store.memories.create_many(bad[:1])
        assert not gc.isenabled()
    finally:
        gc.enable()
