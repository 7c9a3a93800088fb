"""Contract: what callers may pass — types, fields, lookups and arguments.

Wrong types, unknown fields, fields the store sets itself, unknown lookup
operators and lookups that do not apply to a field's kind all raise
ValidationError before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from clonestore import Store, ValidationError
from clonestore.testing.contract._builders import (
    new_document,
    new_face_model,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    raises,
    refused,
    unique_email,
)

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def test_wrong_types_are_refused(store: Store) -> None:
    """A value of the wrong type raises ValidationError naming the field."""
    user = new_user(store)
    session = new_session(store, user)
    cases: dict[str, Callable[[], object]] = {
        "name": lambda: new_user(store, name=123),
        "email": lambda: new_user(store, email=b"ada@example.com"),
        "personality_traits": lambda: new_user(store, personality_traits="curious"),
        "settings": lambda: new_user(store, settings={1, 2}),
        "user_id": lambda: new_voice_model(store, user, user_id=12345),
        "quality_score": lambda: new_voice_model(store, user, quality_score="0.5"),
        "size_bytes": lambda: new_document(store, user, size_bytes=1.5),
        "tags": lambda: new_document(store, user, tags=["ok", 3]),
        "uploaded_at": lambda: new_document(store, user, uploaded_at=1_700_000_000),
        "embedding": lambda: new_memory(store, user, embedding="0.1,0.2"),  # type: ignore[arg-type]
        "importance": lambda: new_memory(store, user, importance=Decimal("0.5")),
        "interrupted": lambda: store.sessions.add_turn(session.id, interrupted=1),
        "llm_cost": lambda: store.sessions.add_turn(session.id, llm_cost=0.25),
        "asr_latency_ms": lambda: store.sessions.add_turn(session.id, asr_latency_ms="10"),
        "metadata": lambda: store.sessions.add_turn(session.id, metadata={"when": NOW}),
    }
    for field, action in cases.items():
        error = refused(store, action, what=field)
        assert error.field == field, (field, error.field)


def test_ids_must_be_short_printable_strings(store: Store) -> None:
    """Bad ids (empty, overlong, control characters) are refused on reads and writes."""
    user = new_user(store)
    for bad in ("", "x" * 129, str(uuid.uuid4()) + "\n", "\t" + str(uuid.uuid4()), 42, None):
        for what, action in {
            "get": lambda b=bad: store.users.get(b),
            "update": lambda b=bad: store.users.update(b, name="X"),
            "delete": lambda b=bad: store.users.delete(b),
            "owner": lambda b=bad: new_document(store, user, user_id=b),
        }.items():
            refused(store, action, what=f"{what} {bad!r}")


def test_unknown_fields_are_refused(store: Store) -> None:
    """A field the entity does not have raises ValidationError naming it."""
    user = new_user(store)
    cases: dict[str, Callable[[], object]] = {
        "create": lambda: new_user(store, nickname="Ada"),
        "create_many": lambda: store.users.create_many(
            [{"email": unique_email(), "name": "A"}, {"email": unique_email(), "name": "B", "x": 1}]
        ),
        "update": lambda: store.users.update(user.id, nickname="Ada"),  # type: ignore[call-arg]
        "update_many": lambda: store.users.update_many({}, nickname="Ada"),
        "memory": lambda: new_memory(store, user, mood="happy"),
    }
    for what, action in cases.items():
        error = refused(store, action, what=what)
        assert error.field in ("nickname", "x", "mood"), error.field


def test_system_fields_cannot_be_given_at_creation(store: Store) -> None:
    """Fields only the store sets (versions, states, totals, keys) are refused."""
    user = new_user(store)
    voice = new_voice_model(store, user)
    session = new_session(store, user)
    cases: dict[str, Callable[[], object]] = {
        "users.version": lambda: new_user(store, version=7),
        "users.email_key": lambda: new_user(store, email_key="x@example.com"),
        "voice.is_active": lambda: new_voice_model(store, user, is_active=True),
        "face.deleted_by_cascade": lambda: new_face_model(store, user, deleted_by_cascade=None),
        "session.state": lambda: new_session(store, user, state="speaking"),
        "session.ended_at": lambda: new_session(store, user, ended_at=NOW),
        "session.total_turns": lambda: new_session(store, user, total_turns=3),
        "session.total_cost": lambda: new_session(store, user, total_cost=Decimal(1)),
        "document.status": lambda: new_document(store, user, status="completed"),
        "document.chunk_count": lambda: new_document(store, user, chunk_count=3),
        "document.vector_ids": lambda: new_document(store, user, vector_ids=["v"]),
        "document.processed_at": lambda: new_document(store, user, processed_at=NOW),
        "document.error_message": lambda: new_document(store, user, error_message="x"),
        "turn.user_id": lambda: store.sessions.add_turn(session.id, user_id=user.id),
        "turn.turn_index": lambda: store.sessions.add_turn(session.id, turn_index=1),
        "create_many version": lambda: store.voice_models.create_many(
            [{"user_id": user.id, "name": "v", "provider": "p", "version": 2}]
        ),
    }
    for what, action in cases.items():
        refused(store, action, what=what)
    assert store.voice_models.get(voice.id) == voice


def test_system_and_create_only_fields_cannot_be_updated(store: Store) -> None:
    """update() refuses fields the store sets and fields fixed at creation."""
    user = new_user(store)
    voice = new_voice_model(store, user)
    session = new_session(store, user)
    turn = store.sessions.add_turn(session.id, asr_latency_ms=5)
    document = new_document(store, user)
    cases: dict[str, Callable[[], object]] = {
        "update_many id": lambda: store.users.update_many({}, id=str(uuid.uuid4())),
        "user version": lambda: store.users.update(user.id, version=9),  # type: ignore[call-arg]
        "user created_at": lambda: store.users.update(user.id, created_at=NOW),  # type: ignore[call-arg]
        "user deleted_at": lambda: store.users.update(user.id, deleted_at=NOW),  # type: ignore[call-arg]
        "user email_key": lambda: store.users.update(user.id, email_key="a@b.cd"),  # type: ignore[call-arg]
        "voice user_id": lambda: store.voice_models.update(voice.id, user_id=user.id),  # type: ignore[call-arg]
        "voice is_active": lambda: store.voice_models.update(voice.id, is_active=True),  # type: ignore[call-arg]
        "session state": lambda: store.sessions.update(session.id, state="listening"),  # type: ignore[call-arg]
        "session started_at": lambda: store.sessions.update(session.id, started_at=NOW),  # type: ignore[call-arg]
        "session total_turns": lambda: store.sessions.update(session.id, total_turns=0),  # type: ignore[call-arg]
        "turn latency": lambda: store.turns.update(turn.id, asr_latency_ms=1),  # type: ignore[call-arg]
        "turn session_id": lambda: store.turns.update(turn.id, session_id=session.id),  # type: ignore[call-arg]
        "document status": lambda: store.documents.update(document.id, status="completed"),  # type: ignore[call-arg]
        "document uploaded_at": lambda: store.documents.update(document.id, uploaded_at=NOW),  # type: ignore[call-arg]
        "update_many version": lambda: store.users.update_many({}, version=1),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


def test_unknown_lookup_operators_are_refused(store: Store) -> None:
    """A lookup with an operator outside the documented set raises ValidationError."""
    new_user(store)
    for key in ("name__like", "name__ilike", "name__regex", "name__iexact", "created_at__range"):
        with pytest.raises(ValidationError):
            store.users.find_many(where={key: "x"})
    with pytest.raises(ValidationError):
        store.users.count({"name__icontains": "x"})
    with pytest.raises(ValidationError):
        store.users.exists(name__between="x")


def test_lookups_on_unknown_fields_are_refused(store: Store) -> None:
    """A lookup or ordering on a field the entity lacks raises ValidationError."""
    new_user(store)
    with pytest.raises(ValidationError):
        store.users.find_many(where={"nickname": "x"})
    with pytest.raises(ValidationError):
        store.users.find_one(nickname__contains="x")
    with pytest.raises(ValidationError):
        store.users.find_many(order_by="nickname")
    with pytest.raises(ValidationError):
        store.users.page(order_by=["-nickname"])


def test_lookups_on_wrong_kinds_are_refused(store: Store) -> None:
    """Operators that do not apply to a field's kind raise ValidationError."""
    user = new_user(store)
    new_document(store, user, tags=["a"])
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "json compared": ("users", {"settings": {}}),
        "json ordered": ("users", {"settings__gt": 1}),
        "json contains": ("users", {"settings__contains": "a"}),
        "list ordered": ("documents", {"tags__lt": ["a"]}),
        "list startswith": ("documents", {"tags__startswith": "a"}),
        "list equality": ("documents", {"tags": ["a"]}),
        "text overlap": ("users", {"name__overlap": ["a"]}),
        "int contains": ("documents", {"size_bytes__contains": 1}),
        "bool ordered": ("voice_models", {"is_active__gt": False}),
        "vector compared": ("memories", {"embedding": [1.0]}),
        "datetime startswith": ("users", {"created_at__startswith": "2024"}),
    }
    for what, (repo, where) in cases.items():
        raises(ValidationError, partial(getattr(store, repo).find_many, where=where), what)


def test_lookup_values_are_validated(store: Store) -> None:
    """Lookup values must suit the field: types, enums, None only with eq/ne/isnull."""
    user = new_user(store)
    cases = [
        ("users", {"subscription_tier": "gold"}),
        ("users", {"created_at__gte": "2024-01-01"}),
        ("users", {"name__lt": None}),
        ("users", {"name__in": "abc"}),
        ("users", {"name__in": [1, 2]}),
        ("users", {"deleted_at__isnull": "yes"}),
        ("users", {"id": ""}),
        ("documents", {"size_bytes__gt": True}),
        ("documents", {"size_bytes": 2**64}),
        ("documents", {"tags__contains": "a"}),
        ("voice_models", {"quality_score__lt": float("nan")}),
        ("voice_models", {"user_id__in": [user.id, "no\npe"]}),
    ]
    for repo, where in cases:
        raises(
            ValidationError,
            partial(getattr(store, repo).find_many, where=where),
            repr(where),
        )


def test_lookup_values_may_lie_outside_a_fields_range(store: Store) -> None:
    """A filter value outside a field's allowed range is a fine question, not an error."""
    user = new_user(store)
    document = new_document(store, user, size_bytes=0)
    assert store.documents.find_many(where={"size_bytes__gt": -1}) == [document]
    assert store.voice_models.find_many(where={"quality_score__gt": 2.0}) == []
    assert store.users.find_many(where={"name": ""}) == []


def test_find_arguments_are_validated(store: Store) -> None:
    """limit, offset, where and order_by of the wrong shape raise ValidationError."""
    new_user(store)
    bad: list[dict[str, Any]] = [
        {"limit": -1},
        {"limit": 1.5},
        {"limit": True},
        {"offset": -1},
        {"offset": "1"},
        {"where": [("name", "x")]},
        {"where": "name=x"},
        {"order_by": ["-"]},
        {"order_by": [""]},
        {"order_by": [1]},
        {"order_by": "settings"},
        {"order_by": "personality_traits"},
    ]
    for kwargs in bad:
        raises(ValidationError, partial(store.users.find_many, **kwargs), repr(kwargs))
    with pytest.raises(ValidationError):
        store.memories.find_many(order_by="embedding")


def test_expected_version_must_be_a_positive_int(store: Store) -> None:
    """update(expected_version=...) refuses zero, negatives and non-integers."""
    user = new_user(store)
    for bad in (0, -1, 1.0, "1"):
        bad_version: Any = bad
        refused(
            store,
            partial(store.users.update, user.id, expected_version=bad_version, name="X"),
            what=repr(bad),
        )
