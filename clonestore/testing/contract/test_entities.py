"""Contract: every entity repository (users, voice_models, face_models, sessions, turns,
documents, memories) offers the same generic operations with the same meaning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clonestore import NotFound, Store, ValidationError
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import (
    missing_id,
    new_document,
    new_face_model,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    refused,
)

#: repository -> (builder of one record, a field update() may change, a value for it)
ENTITIES: dict[str, tuple[Callable[[Store], Any], str, Any]] = {
    "users": (lambda store: new_user(store), "name", "Renamed"),
    "voice_models": (lambda store: new_voice_model(store, new_user(store)), "status", "ready"),
    "face_models": (lambda store: new_face_model(store, new_user(store)), "name", "Face 2"),
    "sessions": (
        lambda store: new_session(store, new_user(store)),
        "metadata",
        {"topic": "tea"},
    ),
    "turns": (
        lambda store: store.sessions.add_turn(new_session(store, new_user(store)).id),
        "llm_response",
        "Hello!",
    ),
    "documents": (lambda store: new_document(store, new_user(store)), "tags", ("a", "b")),
    "memories": (lambda store: new_memory(store, new_user(store)), "importance", 0.75),
}
SOFT = {"users", "voice_models", "face_models", "documents", "memories"}


@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_entity_reads(store_factory: StoreFactory, entity: str) -> None:
    """get, get_or_none, find_one, find_many, page, count and exists agree on a record."""
    store = store_factory(clock=FrozenClock(step=1))
    build, _, _ = ENTITIES[entity]
    repo = getattr(store, entity)
    first, second = build(store), build(store)
    assert repo.get(first.id) == first
    assert repo.get_or_none(second.id) == second
    assert repo.find_one(id=second.id) == second
    assert repo.find_many(where={"id__in": [first.id, second.id]}) == [first, second]
    both = {"id__in": [first.id, second.id]}
    page = repo.page(where=both, size=1)
    assert page.items == [first]
    assert repo.page(where=both, size=1, cursor=page.next_cursor).items == [second]
    assert repo.count(where={"id": first.id}) == 1
    assert repo.exists(id=first.id)
    with pytest.raises(NotFound):
        repo.get(missing_id())


@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_entity_update(store_factory: StoreFactory, entity: str) -> None:
    """update() changes a field, bumps version and updated_at, and checks expected_version."""
    clock = FrozenClock()
    store = store_factory(clock=clock)
    build, field, value = ENTITIES[entity]
    repo = getattr(store, entity)
    record = build(store)
    clock.advance(1)
    updated = repo.update(record.id, expected_version=record.version, **{field: value})
    assert getattr(updated, field) == value
    assert updated.version == record.version + 1
    assert updated.updated_at == clock.now
    assert repo.get(record.id) == updated
    assert repo.update_many({"id": record.id}, **{field: value}) == 1
    assert repo.get(record.id).version == record.version + 2
    refused(store, lambda: repo.update(record.id, nonexistent_field=1))


@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_entity_delete_restore_hard_delete(store: Store, entity: str) -> None:
    """delete() hides soft-deletable records (restore brings them back) and removes others."""
    build, _, _ = ENTITIES[entity]
    repo = getattr(store, entity)
    record = build(store)
    repo.delete(record.id)
    assert repo.get_or_none(record.id) is None
    if entity in SOFT:
        assert repo.count(where={"id": record.id}, with_deleted=True) == 1
        assert repo.restore(record.id).deleted_at is None
        repo.hard_delete(record.id)
    else:
        assert repo.count(where={"id": record.id}, with_deleted=True) == 0
        with pytest.raises(ValidationError):
            repo.restore(record.id)
    assert repo.count(where={"id": record.id}, with_deleted=True) == 0
    refused(store, lambda: repo.hard_delete(record.id), NotFound)
    refused(store, lambda: repo.delete(record.id), NotFound)
