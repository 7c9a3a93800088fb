"""Contract: the relations of the original schema hold in the storage itself (foreign
keys, ``TableSpec.foreign_keys``). Rows written through the SPI cannot point at nothing,
a row others point at cannot be removed under them, and removing a session unlinks
its memories; the core still removes what points at a row itself, so plugins see it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import clonestore
from clonestore import ForeignKeyViolation, Store
from clonestore.query import Cond
from clonestore.spi import PRIMARY_KEY, Row
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

#: The relations the original schema has, as (table, columns, referenced table).
RELATIONS = (
    ("voice_models", ("user_id",), "users"),
    ("face_models", ("user_id",), "users"),
    ("sessions", ("user_id",), "users"),
    ("turns", ("user_id",), "users"),
    ("turns", ("session_id",), "sessions"),
    ("documents", ("user_id",), "users"),
    ("memories", ("user_id",), "users"),
    ("memories", ("session_id",), "sessions"),
)


def _everything(store: Store) -> dict[str, Row]:
    """One user with one row in every table that points at something; their stored rows."""
    user = new_user(store)
    session = new_session(store, user)
    made: dict[str, Any] = {
        "users": user,
        "voice_models": new_voice_model(store, user),
        "face_models": new_face_model(store, user),
        "sessions": session,
        "turns": store.sessions.add_turn(session.id, llm_cost=Decimal("0.5")),
        "documents": new_document(store, user),
        "memories": new_memory(store, user, session_id=session.id),
    }
    rows: dict[str, Row] = {}
    for name, rec in made.items():
        row = store.backend.get(store.tables[name], rec.id)
        assert row is not None
        rows[name] = row
    return rows


def test_schema_declares_the_relations_of_the_original(store: Store) -> None:
    """Every relation of the original schema is a foreign key of the store's tables."""
    declared = {
        (name, fk.columns, fk.references): fk.on_delete
        for name, spec in store.tables.items()
        for fk in spec.foreign_keys
    }
    for relation in RELATIONS:
        assert relation in declared, relation
    assert declared[("memories", ("session_id",), "sessions")] == "set_null"


@pytest.mark.parametrize("relation", RELATIONS, ids=lambda r: f"{r[0]}.{r[1][0]}")
def test_insert_pointing_at_nothing_is_refused(
    store: Store, relation: tuple[str, tuple[str, ...], str]
) -> None:
    """An SPI insert naming a missing user or session is ForeignKeyViolation, nothing written."""
    # The same for upsert and insert_many.
    table, (column,), _ = relation
    rows = _everything(store)
    spec = store.tables[table]
    # New ids and turn numbers: the rows clash with no unique constraint (an engine may
    # report either violation first).
    orphan = {**rows[table], "id": missing_id(), column: missing_id()}
    fine = {**rows[table], "id": missing_id()}
    if "turn_index" in spec.by_name:
        orphan["turn_index"], fine["turn_index"] = 98, 99
    backend = store.backend
    refused(store, lambda: backend.insert(spec, orphan), ForeignKeyViolation, f"{table} insert")
    refused(
        store,
        lambda: backend.insert_many(spec, [fine, orphan]),
        ForeignKeyViolation,
        f"{table} insert_many",
    )
    refused(
        store,
        lambda: backend.upsert(spec, PRIMARY_KEY, orphan, {}),
        ForeignKeyViolation,
        f"{table} upsert",
    )


def test_update_pointing_at_nothing_is_refused(store: Store) -> None:
    """An SPI update pointing a row at a missing row is ForeignKeyViolation, nothing changed."""
    # A memory's session or a row's owner; setting the nullable session to None is fine.
    rows = _everything(store)
    backend = store.backend
    memories, memory = store.tables["memories"], rows["memories"]
    by_id = Cond("id", "eq", memory["id"])
    for column in ("session_id", "user_id"):
        refused(
            store,
            functools.partial(backend.update, memories, by_id, {column: missing_id()}),
            ForeignKeyViolation,
            f"memories.{column}",
        )
    (changed,) = backend.update(memories, by_id, {"session_id": None})
    assert changed["session_id"] is None


def test_removing_a_referenced_row_is_refused(store: Store) -> None:
    """An SPI delete of a referenced user or session is ForeignKeyViolation, nothing removed."""
    # A user who still has rows, or a session that still has turns.
    rows = _everything(store)
    backend = store.backend
    for table in ("users", "sessions"):
        where = Cond("id", "eq", rows[table]["id"])
        refused(
            store,
            functools.partial(backend.delete, store.tables[table], where),
            ForeignKeyViolation,
            f"delete from {table}",
        )


def test_removing_a_session_unlinks_its_memories(store: Store) -> None:
    """An SPI delete of a session without turns sets its memories' session_id to None."""
    # The original schema's onDelete: SetNull; the memories stay.
    user = new_user(store)
    session = new_session(store, user)
    linked = new_memory(store, user, session_id=session.id)
    backend = store.backend
    assert backend.delete(store.tables["sessions"], Cond("id", "eq", session.id)) == 1
    row = backend.get(store.tables["memories"], linked.id)
    assert row is not None
    assert row["session_id"] is None


def test_soft_deleted_rows_may_be_pointed_at(store: Store) -> None:
    """A soft-deleted user is still a row: what it hid points at it, and restore brings it back."""
    rows = _everything(store)
    user_id = rows["users"]["id"]
    store.users.delete(user_id)
    assert store.users.restore(user_id).id == user_id
    assert store.memories.get(rows["memories"]["id"]).session_id == rows["sessions"]["id"]


def _seen(store_factory: Callable[..., Store]) -> tuple[Store, list[tuple[str, str]]]:
    """A store whose plugin records (action, table) of every write it sees."""
    seen: list[tuple[str, str]] = []

    class Recorder:
        @clonestore.hookimpl
        def clonestore_after_write(
            self, store: Store, op: clonestore.Operation, result: Any
        ) -> None:
            seen.append((op.action, op.table.name))

    return store_factory(plugins=[Recorder()]), seen


def test_deleting_a_session_walks_its_rows_itself(store_factory: Callable[..., Store]) -> None:
    """sessions.delete removes the turns and unlinks the memories through the core first."""
    # Plugins see each write and the memory's version goes up, before the engine could act.
    store, seen = _seen(store_factory)
    user = new_user(store)
    session = new_session(store, user)
    store.sessions.add_turn(session.id)
    linked = new_memory(store, user, session_id=session.id)
    seen.clear()
    store.sessions.delete(session.id)
    assert ("turn.hard_delete", "turns") in seen
    assert ("memory.session_deleted", "memories") in seen
    assert seen[-1] == ("session.hard_delete", "sessions")
    kept = store.memories.get(linked.id)
    assert kept.session_id is None
    assert kept.version == linked.version + 1


def test_erasing_a_user_with_linked_memories_removes_everything(
    store_factory: Callable[..., Store],
) -> None:
    """erase_user removes every row of the user through the core, table by table, the user last."""
    # Their memories point at their sessions; another user's rows stay.
    store, seen = _seen(store_factory)
    rows = _everything(store)
    other = _everything(store)
    seen.clear()
    removed = store.erase_user(rows["users"]["id"])
    assert all(removed[name] == 1 for name in rows), removed
    assert {table for _, table in seen} >= set(rows)
    assert seen[-1] == ("user.erase_user", "users")
    for name, row in other.items():
        assert store.backend.get(store.tables[name], row["id"]) == row
