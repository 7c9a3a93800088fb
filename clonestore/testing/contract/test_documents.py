"""Contract: documents (the processing workflow, vector ids, tag search)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from clonestore import Document, InvalidTransition, NotFound, Store, User, ValidationError
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import (
    missing_id,
    new_document,
    new_user,
    refused,
)

#: The workflow as documented (README, "The document workflow").
WORKFLOW = {
    "pending": {"processing", "completed", "failed"},
    "processing": {"completed", "failed"},
    "failed": {"processing"},
    "completed": set(),
}
PATHS = {
    "pending": [],
    "processing": ["processing"],
    "completed": ["processing", "completed"],
    "failed": ["processing", "failed"],
}


def _document_in(store: Store, user: User, status: str) -> Document:
    document = new_document(store, user)
    for step in PATHS[status]:
        extra: dict[str, Any] = {"error_message": "boom"} if step == "failed" else {}
        document = store.documents.update_status(document.id, step, **extra)
    assert document.status == status
    return document


def test_new_document_defaults(store_factory: StoreFactory) -> None:
    """A new document is pending, uploaded now, with no chunks, vectors or error."""
    clock = FrozenClock()
    store = store_factory(clock=clock)
    document = new_document(store, new_user(store), text_content="Hello")
    assert document.status == "pending"
    assert document.uploaded_at == clock.now
    assert (document.chunk_count, document.vector_ids, document.error_message) == (0, (), None)
    assert document.processed_at is None
    assert store.documents.get(document.id) == document


def test_document_workflow_success(store_factory: StoreFactory) -> None:
    """pending -> processing -> completed sets processed_at and chunk_count."""
    clock = FrozenClock()
    store = store_factory(clock=clock)
    document = new_document(store, new_user(store))
    processing = store.documents.update_status(document.id, "processing")
    assert processing.status == "processing"
    assert processing.processed_at is None
    clock.advance(12)
    done = store.documents.update_status(document.id, "completed", chunk_count=42)
    assert (done.status, done.chunk_count, done.processed_at) == ("completed", 42, clock.now)
    assert done.version == document.version + 2
    assert store.documents.get(document.id) == done


def test_document_workflow_failure_and_retry(store: Store) -> None:
    """processing -> failed keeps error_message; a retry (failed -> processing) clears it."""
    document = new_document(store, new_user(store))
    store.documents.update_status(document.id, "processing")
    failed = store.documents.update_status(document.id, "failed", error_message="OCR timeout")
    assert (failed.status, failed.error_message) == ("failed", "OCR timeout")
    retry = store.documents.update_status(document.id, "processing")
    assert (retry.status, retry.error_message) == ("processing", None)
    assert store.documents.update_status(document.id, "completed").status == "completed"


def test_every_documented_status_move_is_allowed(store: Store) -> None:
    """Each move of the documented workflow succeeds."""
    user = new_user(store)
    for source, targets in WORKFLOW.items():
        for target in sorted(targets):
            document = _document_in(store, user, source)
            extra: dict[str, Any] = {"error_message": "x"} if target == "failed" else {}
            assert store.documents.update_status(document.id, target, **extra).status == target


def test_every_other_status_move_raises_invalid_transition(store: Store) -> None:
    """Each move outside the workflow (self-moves included) raises InvalidTransition."""
    user = new_user(store)
    for source, targets in WORKFLOW.items():
        document = _document_in(store, user, source)
        for target in sorted(set(WORKFLOW) - targets):
            refused(
                store,
                partial(store.documents.update_status, document.id, target),
                InvalidTransition,
                what=f"{source} -> {target}",
            )


def test_update_status_validates_its_arguments(store: Store) -> None:
    """update_status() refuses unknown statuses, misplaced extras and missing documents."""
    document = _document_in(store, new_user(store), "processing")
    cases: dict[str, Callable[[], object]] = {
        "unknown status": lambda: store.documents.update_status(document.id, "archived"),
        "message when completing": lambda: store.documents.update_status(
            document.id, "completed", error_message="x"
        ),
        "chunks when failing": lambda: store.documents.update_status(
            document.id, "failed", chunk_count=1
        ),
        "negative chunks": lambda: store.documents.update_status(
            document.id, "completed", chunk_count=-1
        ),
        "NUL message": lambda: store.documents.update_status(
            document.id, "failed", error_message="\x00"
        ),
    }
    for what, action in cases.items():
        refused(store, action, what=what)
    refused(store, lambda: store.documents.update_status(missing_id(), "processing"), NotFound)


def test_deleted_document_cannot_move(store: Store) -> None:
    """update_status() of a soft-deleted document raises NotFound."""
    document = new_document(store, new_user(store))
    store.documents.delete(document.id)
    refused(store, lambda: store.documents.update_status(document.id, "processing"), NotFound)


def test_set_vector_ids(store: Store) -> None:
    """set_vector_ids() replaces the ids, keeping order and duplicates."""
    document = new_document(store, new_user(store))
    first = store.documents.set_vector_ids(document.id, ["v2", "v1", "v2"])
    assert first.vector_ids == ("v2", "v1", "v2")
    assert first.version == document.version + 1
    second = store.documents.set_vector_ids(document.id, [])
    assert store.documents.get(document.id).vector_ids == () == second.vector_ids
    refused(store, lambda: store.documents.set_vector_ids(document.id, "v1"))
    refused(store, lambda: store.documents.set_vector_ids(document.id, [1]))  # type: ignore[list-item]
    refused(store, lambda: store.documents.set_vector_ids(missing_id(), ["v"]), NotFound)


def test_search_by_tags_any_and_all(store_factory: StoreFactory) -> None:
    """search_by_tags() finds the user's live documents with any, or all, of the tags."""
    store = store_factory(clock=FrozenClock(step=1))
    user = new_user(store)
    other = new_user(store)
    a = new_document(store, user, tags=["python", "db"])
    b = new_document(store, user, tags=["db"])
    c = new_document(store, user, tags=["python", "db", "ml"])
    new_document(store, user, tags=[])
    gone = new_document(store, user, tags=["python"])
    store.documents.delete(gone.id)
    new_document(store, other, tags=["python", "db"])
    search = store.documents.search_by_tags
    assert search(user.id, ["python"]) == [a, c]
    assert search(user.id, ["python", "ml"], match="any") == [a, c]
    assert search(user.id, ["db", "python"], match="all") == [a, c]
    assert search(user.id, ["db"], match="all") == [a, b, c]
    assert search(user.id, ["ml", "nope"], match="all") == []
    assert search(user.id, ["nope"]) == []
    with pytest.raises(ValidationError):
        search(user.id, ["db"], match="some")


def test_tags_are_case_sensitive(store: Store) -> None:
    """Tag search compares tags exactly, case included."""
    user = new_user(store)
    document = new_document(store, user, tags=["Python"])
    assert store.documents.search_by_tags(user.id, ["python"]) == []
    assert store.documents.search_by_tags(user.id, ["Python"]) == [document]
