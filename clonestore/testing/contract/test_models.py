"""Contract: voice and face models (at most one active per user)."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import pytest

import clonestore
from clonestore import AlreadyExists, NotFound, Store, User
from clonestore.testing import StoreFactory
from clonestore.testing.contract._builders import (
    missing_id,
    new_face_model,
    new_user,
    new_voice_model,
    refused,
)

KINDS = {"voice_models": new_voice_model, "face_models": new_face_model}


def _active(store: Store, repo_name: str, user: User) -> list[str]:
    models = getattr(store, repo_name).find_many(where={"user_id": user.id})
    return [m.id for m in models if m.is_active]


def test_new_models_are_inactive(store: Store) -> None:
    """A new voice or face model is inactive and training, and reads back equal."""
    user = new_user(store)
    for repo_name, build in KINDS.items():
        model = build(store, user, quality_score=0.75, settings={"speed": 1.1})
        assert (model.is_active, model.status) == (False, "training")
        assert getattr(store, repo_name).get(model.id) == model
        assert getattr(store, repo_name).active_for(user.id) is None


def test_activate_keeps_at_most_one_active_per_user(store: Store) -> None:
    """activate() makes the model the user's only active one; other users are untouched."""
    user = new_user(store)
    other = new_user(store)
    for repo_name, build in KINDS.items():
        repo = getattr(store, repo_name)
        first, second, third = (build(store, user, name=n) for n in ("a", "b", "c"))
        theirs = build(store, other)
        repo.activate(theirs.id)
        activated = repo.activate(first.id)
        assert activated.is_active
        assert activated.version == first.version + 1
        assert _active(store, repo_name, user) == [first.id]
        repo.activate(second.id)
        assert _active(store, repo_name, user) == [second.id]
        assert repo.active_for(user.id) == repo.get(second.id)
        assert not repo.get(first.id).is_active
        assert not repo.get(third.id).is_active
        assert repo.active_for(other.id) == repo.get(theirs.id)


def test_activate_twice_is_harmless(store: Store) -> None:
    """Activating the active model again leaves it the only active one."""
    user = new_user(store)
    for repo_name, build in KINDS.items():
        repo = getattr(store, repo_name)
        model = build(store, user)
        repo.activate(model.id)
        assert repo.activate(model.id).is_active
        assert _active(store, repo_name, user) == [model.id]


def test_voice_and_face_activation_are_independent(store: Store) -> None:
    """Activating a face model does not deactivate the user's voice model."""
    user = new_user(store)
    voice = new_voice_model(store, user)
    face = new_face_model(store, user)
    store.voice_models.activate(voice.id)
    store.face_models.activate(face.id)
    assert store.voice_models.active_for(user.id) == store.voice_models.get(voice.id)
    assert store.face_models.active_for(user.id) == store.face_models.get(face.id)


def test_deactivate(store: Store) -> None:
    """deactivate() leaves the user without an active model of that kind."""
    user = new_user(store)
    for repo_name, build in KINDS.items():
        repo = getattr(store, repo_name)
        model = build(store, user)
        repo.activate(model.id)
        assert not repo.deactivate(model.id).is_active
        assert repo.active_for(user.id) is None
        assert _active(store, repo_name, user) == []
        refused(store, partial(repo.deactivate, missing_id()), NotFound)


def test_activate_missing_or_deleted_model_raises_not_found(store: Store) -> None:
    """activate() of a missing or soft-deleted model raises NotFound."""
    user = new_user(store)
    for repo_name, build in KINDS.items():
        repo = getattr(store, repo_name)
        model = build(store, user)
        repo.delete(model.id)
        refused(store, partial(repo.activate, model.id), NotFound)
        refused(store, partial(repo.activate, missing_id()), NotFound)


def test_deleted_active_model_is_not_active_for(store: Store) -> None:
    """A deleted active model is not active; restoring it once another is raises AlreadyExists."""
    user = new_user(store)
    repo = store.voice_models
    old = new_voice_model(store, user)
    repo.activate(old.id)
    repo.delete(old.id)
    assert repo.active_for(user.id) is None
    new = new_voice_model(store, user)
    repo.activate(new.id)
    assert repo.active_for(user.id) == repo.get(new.id)
    refused(store, lambda: repo.restore(old.id), AlreadyExists)


def test_models_update_soft_delete_and_restore(store: Store) -> None:
    """Models support the generic update, soft delete and restore."""
    user = new_user(store)
    for repo_name, build in KINDS.items():
        repo = getattr(store, repo_name)
        model = build(store, user)
        updated = repo.update(model.id, status="ready", quality_score=0.9)
        assert (updated.status, updated.quality_score) == ("ready", 0.9)
        repo.delete(model.id)
        assert repo.get_or_none(model.id) is None
        assert repo.restore(model.id).status == "ready"
        with pytest.raises(NotFound):
            repo.restore(model.id)


def test_activation_overtaken_midway_leaves_one_active(store_factory: StoreFactory) -> None:
    """An activation that another one overtakes midway still ends with one active model."""
    race: dict[str, Any] = {"armed": False}

    class Overtake:
        @clonestore.hookimpl
        def clonestore_before_write(self, store: Store, op: clonestore.Operation) -> None:
            if op.action == "voice_model.deactivate" and race["armed"]:
                race["armed"] = False
                rival = threading.Thread(target=store.voice_models.activate, args=(race["b"],))
                race["rival"] = rival
                rival.start()
                # Let the rival finish first where the backend allows it; memory://
                # serialises transactions, so there it runs after this one.
                rival.join(timeout=0.5)

    store = store_factory(plugins=[Overtake()])
    user = new_user(store)
    a, b = new_voice_model(store, user, name="a"), new_voice_model(store, user, name="b")
    store.voice_models.activate(a.id)
    race.update(armed=True, b=b.id)
    store.voice_models.activate(a.id)
    race["rival"].join(timeout=30)
    assert _active(store, "voice_models", user) in ([a.id], [b.id])
