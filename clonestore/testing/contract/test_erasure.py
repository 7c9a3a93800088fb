"""Contract: export_user (everything about a user, JSON-ready) and erase_user
(right to be forgotten: nothing about the user is left)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from clonestore import NotFound, Store, User
from clonestore.testing.contract._builders import (
    missing_id,
    new_document,
    new_face_model,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    nothing_written,
    snapshot,
)


def _life(store: Store, user: User) -> dict[str, list[str]]:
    """Give ``user`` one of everything, some of it deleted."""
    voice = new_voice_model(store, user)
    face = new_face_model(store, user)
    document = new_document(store, user, tags=["cv"])
    old_document = new_document(store, user, filename="old.txt")
    store.documents.delete(old_document.id)
    memory = new_memory(store, user, metadata={"score": 1.5})
    session = new_session(store, user, voice_model_id=voice.id)
    turn = store.sessions.add_turn(session.id, user_transcript="hi", llm_cost=Decimal("0.25"))
    return {
        "voice_models": [voice.id],
        "face_models": [face.id],
        "documents": [document.id, old_document.id],
        "memories": [memory.id],
        "sessions": [session.id],
        "turns": [turn.id],
    }


def _rows_about(store: Store, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every stored row (any table, deleted or not) that is the user or belongs to them."""
    found = {}
    for name, rows in snapshot(store).items():
        mine = [r for r in rows if r["id"] == user_id or r.get("user_id") == user_id]
        if mine:
            found[name] = mine
    return found


def test_export_user_has_everything_json_ready(store: Store) -> None:
    """export_user() gives the user and all their rows, deleted ones too, as plain JSON data."""
    user = new_user(store, settings={"theme": "dark"}, personality_traits=["kind"])
    mine = _life(store, user)
    _life(store, new_user(store))
    export = store.export_user(user.id)
    text = json.dumps(export, allow_nan=False)
    data = json.loads(text)
    assert data["user"]["id"] == user.id
    assert data["user"]["email"] == user.email
    assert data["user"]["settings"] == {"theme": "dark"}
    assert data["user"]["personality_traits"] == ["kind"]
    assert data["user"]["created_at"] == user.created_at.isoformat()
    for table, wanted in mine.items():
        assert sorted(r["id"] for r in data[table]) == sorted(wanted), table
        assert all(r["user_id"] == user.id for r in data[table]), table
    deleted = [d for d in data["documents"] if d["deleted_at"] is not None]
    assert [d["filename"] for d in deleted] == ["old.txt"]
    assert data["turns"][0]["llm_cost"] == "0.250000"
    assert Decimal(data["sessions"][0]["total_cost"]) == Decimal("0.25")


def test_export_of_a_deleted_user(store: Store) -> None:
    """export_user() also exports a soft-deleted user and what the cascade hid."""
    user = new_user(store)
    mine = _life(store, user)
    store.users.delete(user.id)
    data = json.loads(json.dumps(store.export_user(user.id)))
    assert data["user"]["deleted_at"] is not None
    assert sorted(m["id"] for m in data["memories"]) == sorted(mine["memories"])


def test_export_of_missing_user_raises_not_found(store: Store) -> None:
    """export_user() of an unknown id raises NotFound."""
    with pytest.raises(NotFound):
        store.export_user(missing_id())


def test_erase_user_leaves_nothing(store: Store) -> None:
    """erase_user() leaves no row about the user in any table; other users keep theirs."""
    user = new_user(store)
    _life(store, user)
    other = new_user(store)
    _life(store, other)
    theirs = _rows_about(store, other.id)
    removed = store.erase_user(user.id)
    assert _rows_about(store, user.id) == {}
    assert _rows_about(store, other.id) == theirs
    assert removed["users"] == 1
    assert removed["documents"] == 2
    assert removed["turns"] == 1
    assert sum(removed.values()) == 1 + 1 + 1 + 2 + 1 + 1 + 1
    with pytest.raises(NotFound):
        store.users.get(user.id)
    with nothing_written(store), pytest.raises(NotFound):
        store.erase_user(user.id)


def test_erase_of_a_soft_deleted_user(store: Store) -> None:
    """erase_user() also erases a soft-deleted user and their hidden rows."""
    user = new_user(store)
    _life(store, user)
    store.users.delete(user.id)
    store.erase_user(user.id)
    assert _rows_about(store, user.id) == {}


def test_hard_delete_of_a_user_erases_them(store: Store) -> None:
    """users.hard_delete() removes the user and everything they own."""
    user = new_user(store)
    _life(store, user)
    store.users.hard_delete(user.id)
    assert _rows_about(store, user.id) == {}
    with pytest.raises(NotFound):
        store.users.hard_delete(user.id)


def test_erased_email_can_be_used_again(store: Store) -> None:
    """After erasure the user's email is free."""
    user = new_user(store, email="forget.me@example.com")
    store.erase_user(user.id)
    assert new_user(store, email="forget.me@example.com").id != user.id
