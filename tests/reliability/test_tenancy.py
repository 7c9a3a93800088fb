"""Tenancy: ``store.for_user(a)`` reads and changes only user a's rows, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clonestore
from clonestore import NotFound, ValidationError
from clonestore.testing.contract._builders import (
    new_document,
    new_face_model,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    snapshot,
)

OTHER_ROW_CALLS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "users.get": lambda v, b: v.users.get(b["user"]),
    "users.update": lambda v, b: v.users.update(b["user"], name="x"),
    "users.delete": lambda v, b: v.users.delete(b["user"]),
    "users.restore": lambda v, b: v.users.restore(b["deleted_doc_user"]),
    "users.hard_delete": lambda v, b: v.users.hard_delete(b["user"]),
    "voice_models.get": lambda v, b: v.voice_models.get(b["voice"]),
    "voice_models.activate": lambda v, b: v.voice_models.activate(b["voice"]),
    "voice_models.deactivate": lambda v, b: v.voice_models.deactivate(b["voice"]),
    "voice_models.active_for": lambda v, b: v.voice_models.active_for(b["user"]),
    "face_models.update": lambda v, b: v.face_models.update(b["face"], name="x"),
    "face_models.activate": lambda v, b: v.face_models.activate(b["face"]),
    "face_models.hard_delete": lambda v, b: v.face_models.hard_delete(b["face"]),
    "sessions.get": lambda v, b: v.sessions.get(b["session"]),
    "sessions.update_state": lambda v, b: v.sessions.update_state(b["session"], "listening"),
    "sessions.add_turn": lambda v, b: v.sessions.add_turn(b["session"], llm_latency_ms=1),
    "sessions.end": lambda v, b: v.sessions.end(b["session"]),
    "sessions.get_with_turns": lambda v, b: v.sessions.get_with_turns(b["session"]),
    "sessions.user_statistics": lambda v, b: v.sessions.user_statistics(b["user"]),
    "sessions.hard_delete": lambda v, b: v.sessions.hard_delete(b["session"]),
    "sessions.create(voice)": lambda v, b: v.sessions.create(voice_model_id=b["voice"]),
    "turns.get": lambda v, b: v.turns.get(b["turn"]),
    "turns.create": lambda v, b: v.turns.create(session_id=b["session"]),
    "turns.hard_delete": lambda v, b: v.turns.hard_delete(b["turn"]),
    "documents.update_status": lambda v, b: v.documents.update_status(b["doc"], "processing"),
    "documents.set_vector_ids": lambda v, b: v.documents.set_vector_ids(b["doc"], ["v"]),
    "documents.delete": lambda v, b: v.documents.delete(b["doc"]),
    "documents.restore": lambda v, b: v.documents.restore(b["deleted_doc"]),
    "documents.search_by_tags": lambda v, b: v.documents.search_by_tags(b["user"], ["t"]),
    "documents.create": lambda v, b: v.documents.create(user_id=b["user"], filename="f"),
    "memories.get": lambda v, b: v.memories.get(b["memory"]),
    "memories.update": lambda v, b: v.memories.update(b["memory"], content="x"),
    "memories.similar": lambda v, b: v.memories.similar(b["user"], [1.0, 0.0]),
    "memories.add": lambda v, b: v.memories.add(b["user"], "x", [1.0]),
    "memories.for_owner": lambda v, b: v.memories.for_owner(b["user"]),
    "export_user": lambda v, b: v.export_user(b["user"]),
    "erase_user": lambda v, b: v.erase_user(b["user"]),
}


def _populate(store: clonestore.Store, user: clonestore.User) -> dict[str, Any]:
    session = new_session(store, user)
    turn = store.sessions.add_turn(session.id, llm_latency_ms=5)
    deleted_doc = new_document(store, user, tags=["t"])
    store.documents.delete(deleted_doc.id)
    return {
        "user": user.id,
        "voice": new_voice_model(store, user).id,
        "face": new_face_model(store, user).id,
        "session": session.id,
        "turn": turn.id,
        "doc": new_document(store, user, tags=["t"]).id,
        "deleted_doc": deleted_doc.id,
        "memory": new_memory(store, user).id,
    }


@pytest.fixture
def two_users(store: clonestore.Store) -> tuple[dict[str, Any], dict[str, Any]]:
    a, b = new_user(store), new_user(store)
    rows_a, rows_b = _populate(store, a), _populate(store, b)
    gone = new_user(store)
    store.users.delete(gone.id)
    rows_b["deleted_doc_user"] = gone.id
    return rows_a, rows_b


@pytest.mark.parametrize("call", sorted(OTHER_ROW_CALLS))
def test_another_users_row_is_not_found(
    store: clonestore.Store, two_users: tuple[dict[str, Any], dict[str, Any]], call: str
) -> None:
    """Every operation through A's view on B's row (or naming B) is NotFound and changes nothing."""
    a, b = two_users
    before = snapshot(store)
    with pytest.raises(NotFound):
        OTHER_ROW_CALLS[call](store.for_user(a["user"]), b)
    assert snapshot(store) == before


def test_lists_and_counts_see_only_own_rows(
    store: clonestore.Store, two_users: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """find_many/find_one/page/count/exists/update_many through a view see only the owner's rows."""
    a, b = two_users
    view = store.for_user(a["user"])
    assert [u.id for u in view.users.find_many()] == [a["user"]]
    assert view.users.count(with_deleted=True) == 1
    for name in ("voice_models", "face_models", "sessions", "turns", "memories"):
        repo = getattr(view, name)
        assert {r.user_id for r in repo.find_many(with_deleted=name != "turns")} == {a["user"]}
        assert repo.count() == 1
        assert repo.page(size=10).items == repo.find_many()
        assert not repo.exists(user_id=b["user"])
        assert repo.find_one(user_id=b["user"]) is None
    assert view.documents.count(with_deleted=True) == 2
    assert view.documents.update_many(None, all=True, filename="renamed") == 1
    assert store.documents.get(b["doc"]).filename == "notes.txt"
    assert view.memories.update_many({"user_id": b["user"]}, content="x") == 0


def test_own_rows_work_through_the_view(
    store: clonestore.Store, two_users: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """The owner's rows behave through the view exactly as through the store."""
    a, _ = two_users
    view = store.for_user(a["user"])
    assert view.voice_models.activate(a["voice"]).is_active
    assert view.voice_models.active_for(a["user"]).id == a["voice"]
    turn = view.sessions.add_turn(a["session"], llm_latency_ms=7)
    assert turn.user_id == a["user"]
    assert view.sessions.get(a["session"]).total_latency_ms == 12
    assert view.documents.restore(a["deleted_doc"]).deleted_at is None
    assert view.memories.similar(a["user"], [1.0, 0.0])[0].memory.id == a["memory"]
    assert view.export_user()["user"]["id"] == a["user"]
    session = view.sessions.create(voice_model_id=a["voice"])
    assert session.user_id == a["user"]


def test_create_forces_the_owner(
    store: clonestore.Store, two_users: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """create without user_id uses the owner; another user's id is NotFound; users: Validation."""
    a, b = two_users
    view = store.for_user(a["user"])
    assert view.documents.create(filename="f").user_id == a["user"]
    assert view.memories.create_many([{"content": "c", "embedding": [1.0]}])[0].user_id == a["user"]
    with pytest.raises(NotFound):
        view.memories.create_many([{"user_id": b["user"], "content": "c", "embedding": [1.0]}])
    with pytest.raises(ValidationError):
        view.users.create(email="new@example.com", name="New")
    for not_an_id in ("", "x" * 129, "a\nb"):  # ids are 1..128 characters, no control characters
        with pytest.raises(ValidationError):
            store.for_user(not_an_id)


OPERATIONS = st.sampled_from([
    "get", "update", "delete", "restore", "hard_delete", "find", "count", "update_many",
])
TABLES = st.sampled_from(["users", "voice_models", "face_models", "sessions", "documents",
                          "memories", "turns"])


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(OPERATIONS, TABLES, st.booleans()), min_size=1, max_size=12))
def test_random_operations_never_touch_another_user(
    store: clonestore.Store, two_users: tuple[dict[str, Any], dict[str, Any]],
    steps: list[tuple[str, str, bool]],
) -> None:
    """Random operations through A's view never change or reveal B's rows."""
    a, b = two_users
    keys = {"users": "user", "voice_models": "voice", "face_models": "face",
            "sessions": "session", "documents": "doc", "memories": "memory", "turns": "turn"}
    before = _rows_of(store, b["user"])
    view = store.for_user(a["user"])
    for op, table, aim_at_b in steps:
        repo = getattr(view, table)
        target = (b if aim_at_b else a)[keys[table]]
        try:
            if op == "get":
                result = [repo.get(target)]
            elif op == "find":
                result = repo.find_many(with_deleted=table != "turns")
            elif op == "count":
                result = []
                repo.count(where={"id": target})
                assert repo.count(where={"id": b[keys[table]]}) == 0
            elif op == "update_many":
                result = []
                if table not in ("turns", "sessions"):
                    repo.update_many({"id": target}, **_change(table))
            elif op == "update":
                result = [repo.update(target, **_change(table))] if table != "turns" else []
            else:
                getattr(repo, op)(target)
                result = []
        except (NotFound, ValidationError, clonestore.AlreadyExists):
            continue
        assert all(_owner(table, r) == a["user"] for r in result)
    assert _rows_of(store, b["user"]) == before


def _change(table: str) -> dict[str, Any]:
    return {"users": {"name": "z"}, "documents": {"filename": "z"},
            "memories": {"content": "z"}}.get(table, {"name": "z"} if "models" in table else {})


def _owner(table: str, record: Any) -> str:
    return str(record.id if table == "users" else record.user_id)


def _rows_of(store: clonestore.Store, user_id: str) -> dict[str, list[Any]]:
    rows = snapshot(store)
    return {
        name: [r for r in table if user_id in (r.get("user_id"), r.get("id"))]
        for name, table in rows.items()
    }
