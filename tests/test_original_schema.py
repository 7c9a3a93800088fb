"""The original documents' fields, Specialization and SetNull (issue 10, part C.6-8),
on every backend of the matrix."""

from __future__ import annotations

import pytest

import clonestore
from clonestore import AlreadyExists, ValidationError
from clonestore.testing.contract._builders import (
    new_document,
    new_face_model,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    nothing_written,
)


def test_sessions_keep_their_providers_and_may_start_idle(store: clonestore.Store) -> None:
    """llm_provider/tts_provider are stored; state="idle" is accepted at create, others not."""
    user = new_user(store)
    session = store.sessions.create(
        user_id=user.id, llm_provider="gemini-flash", tts_provider="xtts-v2", state="idle"
    )
    stored = store.sessions.get(session.id)
    assert (stored.llm_provider, stored.tts_provider, stored.state) == (
        "gemini-flash",
        "xtts-v2",
        "idle",
    )
    assert store.sessions.update(session.id, llm_provider="gpt-4o").llm_provider == "gpt-4o"
    with nothing_written(store), pytest.raises(ValidationError, match="update_state"):
        store.sessions.create(user_id=user.id, state="speaking")


def test_documents_may_be_created_pending(store: clonestore.Store) -> None:
    """status="pending" is accepted at create; another status is refused."""
    user = new_user(store)
    document = new_document(store, user, status="pending")
    assert store.documents.get(document.id).status == "pending"
    with nothing_written(store), pytest.raises(ValidationError, match="update_status"):
        new_document(store, user, status="completed")


def test_model_paths_and_resolution_are_stored(store: clonestore.Store) -> None:
    """Voice models keep model_path; face models keep a {width, height} resolution."""
    user = new_user(store)
    voice = new_voice_model(store, user, model_path="gs://bucket/voice")
    face = new_face_model(store, user, resolution={"width": 512, "height": 512})
    assert store.voice_models.get(voice.id).model_path == "gs://bucket/voice"
    assert store.face_models.get(face.id).resolution == {"width": 512, "height": 512}
    updated = store.face_models.update(face.id, resolution={"width": 1024, "height": 768})
    assert store.face_models.get(face.id).resolution == updated.resolution
    for bad in ({"width": 512}, {"width": 0, "height": 1}, {"width": 1.5, "height": 2}, [1, 2]):
        with nothing_written(store), pytest.raises(ValidationError, match="resolution"):
            store.face_models.update(face.id, resolution=bad)


def test_settings_and_metadata_must_be_json_objects(store: clonestore.Store) -> None:
    """A list (or any non-object) for settings or metadata is a ValidationError."""
    user = new_user(store)
    with nothing_written(store), pytest.raises(ValidationError, match="settings"):
        new_user(store, settings=["a"])
    with nothing_written(store), pytest.raises(ValidationError, match="settings"):
        store.users.update(user.id, settings=[1])
    with nothing_written(store), pytest.raises(ValidationError, match="metadata"):
        new_session(store, user, metadata="x")


def test_specializations_have_unique_names(store: clonestore.Store) -> None:
    """store.specializations creates, finds by name and refuses a taken name."""
    coach = store.specializations.create(
        name="coach", description="A fitness coach", model_path="gs://models/coach"
    )
    assert store.specializations.get(coach.id) == coach
    assert store.specializations.find_by_name("coach") == coach
    assert store.specializations.find_by_name("Coach") is None
    with nothing_written(store), pytest.raises(AlreadyExists, match="name already used"):
        store.specializations.create(name="coach", model_path="gs://other")
    with nothing_written(store), pytest.raises(ValidationError, match="model_path"):
        store.specializations.create(name="tutor")
    store.specializations.delete(coach.id)
    assert store.specializations.count() == 0


def test_deleting_a_session_sets_its_memories_session_id_to_null(
    store: clonestore.Store,
) -> None:
    """delete (and hard_delete) of a session keeps its memories, deleted ones too,
    with session_id None; other sessions' memories are untouched."""
    user = new_user(store)
    doomed, kept = new_session(store, user), new_session(store, user)
    store.sessions.add_turn(doomed.id)
    live = new_memory(store, user, session_id=doomed.id)
    hidden = new_memory(store, user, session_id=doomed.id)
    store.memories.delete(hidden.id)
    other = new_memory(store, user, session_id=kept.id)
    store.sessions.delete(doomed.id)
    assert store.memories.get(live.id).session_id is None
    assert store.memories.get(live.id).version == live.version + 1
    (stored_hidden,) = store.memories.find_many({"id": hidden.id}, with_deleted=True)
    assert stored_hidden.session_id is None
    assert store.memories.get(other.id).session_id == kept.id
    assert store.turns.count(session_id=doomed.id) == 0
