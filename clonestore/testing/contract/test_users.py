"""Contract: the generic repository operations, shown on users, and the user domain
(case-insensitive emails, cascading soft delete that restore undoes exactly)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

import attrs
import pytest

from clonestore import AlreadyExists, Conflict, NotFound, Store, User, ValidationError
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import (
    ids,
    missing_id,
    new_document,
    new_face_model,
    new_memory,
    new_user,
    new_voice_model,
    nothing_written,
    unique_email,
)

# ----------------------------------------------------------------------------- create / get


def test_create_sets_system_fields_and_defaults(store: Store) -> None:
    """create() sets a UUID id, version 1, equal UTC timestamps and the documented defaults."""
    user = store.users.create(email="ada@example.com", name="Ada")
    assert str(uuid.UUID(user.id)) == user.id
    assert user.version == 1
    assert user.created_at == user.updated_at
    assert user.created_at.utcoffset() == timedelta(0)
    assert user.deleted_at is None
    assert user.subscription_tier == "free"
    assert user.personality_traits == ()
    assert user.settings == {}


def test_get_returns_the_created_record_exactly(store: Store) -> None:
    """get() returns a record equal, field for field, to the one create() returned."""
    created = store.users.create(
        email="Grace@Example.com",
        name="Grace Hopper",
        personality_traits=["precise", "witty", "precise"],
        subscription_tier="enterprise",
        settings={"lang": "en", "volume": 0.8, "beta": True, "n": 3, "nested": {"a": [1, None]}},
    )
    assert store.users.get(created.id) == created


def test_get_missing_raises_not_found(store: Store) -> None:
    """get() of an id no row has raises NotFound, which is also a KeyError."""
    with pytest.raises(NotFound):
        store.users.get(missing_id())
    with pytest.raises(KeyError):
        store.users.get(missing_id())


def test_get_accepts_uuid_objects(store: Store) -> None:
    """get() accepts a uuid.UUID as well as its string."""
    user = new_user(store)
    assert store.users.get(uuid.UUID(user.id)) == user  # type: ignore[arg-type]


def test_get_or_none(store: Store) -> None:
    """get_or_none() returns the live record, or None for a missing or deleted one."""
    user = new_user(store)
    gone = new_user(store)
    store.users.delete(gone.id)
    assert store.users.get_or_none(user.id) == user
    assert store.users.get_or_none(gone.id) is None
    assert store.users.get_or_none(missing_id()) is None


def test_find_one_returns_first_match_in_creation_order(store_factory: StoreFactory) -> None:
    """find_one() returns the earliest created live match, or None."""
    clock = FrozenClock(step=1)
    store = store_factory(clock=clock)
    first = new_user(store, name="Twin")
    new_user(store, name="Twin")
    assert store.users.find_one(name="Twin") == first
    assert store.users.find_one(name="Nobody") is None
    store.users.delete(first.id)
    assert store.users.find_one(name="Twin") != first


def test_count_and_exists(store: Store) -> None:
    """count() and exists() see live records matching the lookups only."""
    a = new_user(store, subscription_tier="pro")
    new_user(store, subscription_tier="pro")
    new_user(store, subscription_tier="free")
    assert store.users.count() == 3
    assert store.users.count({"subscription_tier": "pro"}) == 2
    assert store.users.exists(subscription_tier="free")
    assert not store.users.exists(subscription_tier="enterprise")
    store.users.delete(a.id)
    assert store.users.count({"subscription_tier": "pro"}) == 1
    assert store.users.count({"subscription_tier": "pro"}, with_deleted=True) == 2
    assert store.users.exists(id=a.id) is False


# ----------------------------------------------------------------------------- emails


def test_find_by_email_ignores_case(store: Store) -> None:
    """find_by_email() matches any case; the email is kept as given."""
    user = new_user(store, email="Ada.Lovelace@Example.COM")
    assert store.users.find_by_email("ada.lovelace@example.com") == user
    assert store.users.find_by_email("ADA.LOVELACE@EXAMPLE.COM") == user
    assert store.users.get(user.id).email == "Ada.Lovelace@Example.COM"
    assert store.users.find_by_email("ada@example.com") is None


def test_find_by_email_casefolds_sharp_s(store: Store) -> None:
    """find_by_email() follows str.casefold(): 'ß' matches 'SS' and 'ss'."""
    user = new_user(store, email="straße@example.com")
    assert store.users.find_by_email("STRASSE@EXAMPLE.COM") == user
    assert store.users.find_by_email("strasse@example.com") == user


def test_find_by_email_skips_deleted_users(store: Store) -> None:
    """find_by_email() does not return a soft-deleted user."""
    user = new_user(store, email="gone@example.com")
    store.users.delete(user.id)
    assert store.users.find_by_email("gone@example.com") is None


def test_email_is_unique_ignoring_case(store: Store) -> None:
    """Creating a user whose email differs only in case raises AlreadyExists."""
    new_user(store, email="ada@example.com")
    with nothing_written(store), pytest.raises(AlreadyExists):
        new_user(store, email="ADA@example.com")


def test_email_is_unique_under_casefold(store: Store) -> None:
    """'STRASSE@…' is taken once 'straße@…' is (casefold, not lower)."""
    new_user(store, email="straße@example.com")
    with nothing_written(store), pytest.raises(AlreadyExists):
        new_user(store, email="STRASSE@example.com")


def test_deleted_user_email_can_be_reused(store: Store) -> None:
    """A soft-deleted user's email is free for a new user."""
    old = new_user(store, email="ada@example.com")
    store.users.delete(old.id)
    new = new_user(store, email="Ada@Example.com")
    assert store.users.find_by_email("ada@example.com") == new


def test_update_email_to_a_taken_one_raises_already_exists(store: Store) -> None:
    """update() to an email another live user has raises AlreadyExists, changing nothing."""
    new_user(store, email="ada@example.com")
    grace = new_user(store, email="grace@example.com")
    with nothing_written(store), pytest.raises(AlreadyExists):
        store.users.update(grace.id, email="ADA@EXAMPLE.COM")


# ----------------------------------------------------------------------------- create_many


def test_create_many_stores_every_row(store: Store) -> None:
    """create_many() stores and returns every row, each with its own id."""
    rows = [{"email": unique_email(), "name": f"U{i}"} for i in range(5)]
    users = store.users.create_many(rows)
    assert [u.name for u in users] == [f"U{i}" for i in range(5)]
    assert len(set(ids(users))) == 5
    for user in users:
        assert store.users.get(user.id) == user


def test_create_many_is_all_or_none_on_conflict(store: Store) -> None:
    """create_many() with a row clashing with another row of the batch writes nothing."""
    new_user(store, email="taken@example.com")
    rows = [
        {"email": unique_email(), "name": "A"},
        {"email": "b@example.com", "name": "B"},
        {"email": "B@EXAMPLE.COM", "name": "B again"},
    ]
    with nothing_written(store), pytest.raises(AlreadyExists):
        store.users.create_many(rows)
    rows = [{"email": unique_email(), "name": "C"}, {"email": "Taken@example.com", "name": "T"}]
    with nothing_written(store), pytest.raises(AlreadyExists):
        store.users.create_many(rows)


def test_create_many_is_all_or_none_on_invalid_row(store: Store) -> None:
    """create_many() with one invalid row raises ValidationError and writes nothing."""
    rows = [{"email": unique_email(), "name": "A"}, {"email": "not-an-email", "name": "B"}]
    with nothing_written(store), pytest.raises(ValidationError):
        store.users.create_many(rows)


def test_create_many_of_nothing(store: Store) -> None:
    """create_many([]) returns [] and writes nothing."""
    with nothing_written(store):
        assert store.users.create_many([]) == []


def test_create_many_refuses_a_single_mapping(store: Store) -> None:
    """create_many() given one mapping instead of an iterable of them raises ValidationError."""
    with nothing_written(store), pytest.raises(ValidationError):
        store.users.create_many({"email": unique_email(), "name": "A"})  # type: ignore[dict-item]


# ----------------------------------------------------------------------------- update


def test_update_changes_fields_and_bumps_version(store_factory: StoreFactory) -> None:
    """update() changes the given fields, increments version and moves updated_at only."""
    clock = FrozenClock()
    store = store_factory(clock=clock)
    user = new_user(store, name="Ada")
    clock.advance(5)
    updated = store.users.update(user.id, name="Ada L.", settings={"x": 1})
    assert (updated.name, updated.settings, updated.version) == ("Ada L.", {"x": 1}, 2)
    assert updated.created_at == user.created_at
    assert updated.updated_at == clock.now
    assert store.users.get(user.id) == updated


def test_update_with_current_expected_version(store: Store) -> None:
    """update(expected_version=current) applies the change."""
    user = new_user(store)
    updated = store.users.update(user.id, expected_version=1, name="New")
    assert updated.version == 2
    assert store.users.update(user.id, expected_version=2, name="Newer").version == 3


def test_update_with_stale_expected_version_raises_conflict(store: Store) -> None:
    """update() with a stale expected_version raises Conflict and changes nothing."""
    user = new_user(store)
    store.users.update(user.id, name="Changed")
    with nothing_written(store), pytest.raises(Conflict):
        store.users.update(user.id, expected_version=1, name="Lost update")
    assert store.users.get(user.id).name == "Changed"


def test_update_without_changes_checks_version(store: Store) -> None:
    """update() with no changes returns the record unchanged, or Conflict if stale."""
    user = new_user(store)
    with nothing_written(store):
        assert store.users.update(user.id) == user
        assert store.users.update(user.id, expected_version=1) == user
    with pytest.raises(Conflict):
        store.users.update(user.id, expected_version=2)


def test_update_missing_or_deleted_raises_not_found(store: Store) -> None:
    """update() of a missing or soft-deleted record raises NotFound."""
    user = new_user(store)
    store.users.delete(user.id)
    with nothing_written(store):
        with pytest.raises(NotFound):
            store.users.update(missing_id(), name="X")
        with pytest.raises(NotFound):
            store.users.update(user.id, name="X")
        with pytest.raises(NotFound):
            store.users.update(user.id, expected_version=2, name="X")


def test_update_many_changes_live_matches_only(store: Store) -> None:
    """update_many() changes every live match, bumps versions and returns how many."""
    a = new_user(store, subscription_tier="free")
    b = new_user(store, subscription_tier="free")
    c = new_user(store, subscription_tier="pro")
    d = new_user(store, subscription_tier="free")
    store.users.delete(d.id)
    assert store.users.update_many({"subscription_tier": "free"}, subscription_tier="pro") == 2
    for user in (a, b):
        assert store.users.get(user.id).subscription_tier == "pro"
        assert store.users.get(user.id).version == 2
    assert store.users.get(c.id).version == 1
    deleted = store.users.find_many(where={"id": d.id}, with_deleted=True)[0]
    assert deleted.subscription_tier == "free"
    assert store.users.update_many({"name": "nobody"}, name="X") == 0


def test_update_many_needs_a_change(store: Store) -> None:
    """update_many() without changes raises ValidationError."""
    new_user(store)
    with nothing_written(store), pytest.raises(ValidationError):
        store.users.update_many({})


def test_update_many_all_or_none_on_conflict(store: Store) -> None:
    """update_many() that would give two live users one email changes nothing."""
    new_user(store, name="A")
    new_user(store, name="A")
    with nothing_written(store), pytest.raises(AlreadyExists):
        store.users.update_many({"name": "A"}, email="same@example.com")


# ----------------------------------------------------------------------------- delete / restore


def test_delete_is_soft(store: Store) -> None:
    """delete() hides the user from reads; with_deleted still sees it, deleted_at set."""
    user = new_user(store)
    store.users.delete(user.id)
    with pytest.raises(NotFound):
        store.users.get(user.id)
    assert store.users.count() == 0
    assert store.users.count(with_deleted=True) == 1
    assert store.users.find_many() == []
    (hidden,) = store.users.find_many(with_deleted=True)
    assert hidden.id == user.id
    assert hidden.deleted_at is not None
    assert hidden.version == 2


def test_delete_twice_raises_not_found(store: Store) -> None:
    """delete() of an already deleted (or missing) user raises NotFound."""
    user = new_user(store)
    store.users.delete(user.id)
    with nothing_written(store):
        with pytest.raises(NotFound):
            store.users.delete(user.id)
        with pytest.raises(NotFound):
            store.users.delete(missing_id())


def test_restore_brings_back_a_deleted_user(store: Store) -> None:
    """restore() makes a soft-deleted user live again, with a new version."""
    user = new_user(store)
    store.users.delete(user.id)
    restored = store.users.restore(user.id)
    assert restored.deleted_at is None
    assert restored.version == 3
    assert store.users.get(user.id) == restored


def test_restore_of_live_or_missing_raises_not_found(store: Store) -> None:
    """restore() of a live or missing user raises NotFound."""
    user = new_user(store)
    with nothing_written(store):
        with pytest.raises(NotFound):
            store.users.restore(user.id)
        with pytest.raises(NotFound):
            store.users.restore(missing_id())


def test_restore_after_email_reuse_raises_already_exists(store: Store) -> None:
    """restore() of a user whose email was taken meanwhile raises AlreadyExists."""
    old = new_user(store, email="ada@example.com")
    store.users.delete(old.id)
    new_user(store, email="ADA@example.com")
    with nothing_written(store), pytest.raises(AlreadyExists):
        store.users.restore(old.id)
    assert store.users.get_or_none(old.id) is None


def test_hard_delete_removes_for_good(store: Store) -> None:
    """hard_delete() removes the row: not even with_deleted sees it; restore is NotFound."""
    user = new_user(store)
    other = new_user(store)
    store.users.hard_delete(user.id)
    assert store.users.find_many(with_deleted=True) == [other]
    with pytest.raises(NotFound):
        store.users.restore(user.id)
    with pytest.raises(NotFound):
        store.users.hard_delete(user.id)


def test_hard_delete_of_soft_deleted_user(store: Store) -> None:
    """hard_delete() also removes a soft-deleted user."""
    user = new_user(store)
    store.users.delete(user.id)
    store.users.hard_delete(user.id)
    assert store.users.count(with_deleted=True) == 0


# ----------------------------------------------------------------------------- cascade


def _owned(store: Store, user: User) -> dict[str, Any]:
    return {
        "voice": new_voice_model(store, user),
        "face": new_face_model(store, user),
        "document": new_document(store, user),
        "memory": new_memory(store, user),
    }


_REPO = {
    "voice": "voice_models",
    "face": "face_models",
    "document": "documents",
    "memory": "memories",
}


def test_user_delete_cascades_to_models_documents_memories(store: Store) -> None:
    """Soft-deleting a user soft-deletes their voice/face models, documents and memories."""
    user = new_user(store)
    other = new_user(store)
    mine = _owned(store, user)
    theirs = _owned(store, other)
    store.users.delete(user.id)
    for key, record in mine.items():
        repo = getattr(store, _REPO[key])
        assert repo.get_or_none(record.id) is None, key
        (hidden,) = repo.find_many(where={"id": record.id}, with_deleted=True)
        assert hidden.deleted_at is not None
    for key, record in theirs.items():
        assert getattr(store, _REPO[key]).get(record.id) == record


def test_user_restore_undoes_the_cascade_exactly(store: Store) -> None:
    """Restoring a user brings back what the cascade removed, and nothing deleted before."""
    user = new_user(store)
    kept = _owned(store, user)
    earlier = _owned(store, user)
    for key, record in earlier.items():
        getattr(store, _REPO[key]).delete(record.id)
    store.users.delete(user.id)
    store.users.restore(user.id)
    for key, record in kept.items():
        restored = getattr(store, _REPO[key]).get(record.id)
        assert restored.deleted_at is None
        assert restored.version == record.version + 2
    for key, record in earlier.items():
        repo = getattr(store, _REPO[key])
        assert repo.get_or_none(record.id) is None, key
        assert repo.count(where={"id": record.id}, with_deleted=True) == 1


def test_owned_rows_need_a_live_owner(store: Store) -> None:
    """Creating a model, document or memory for a missing or deleted user raises NotFound."""
    gone = new_user(store)
    store.users.delete(gone.id)
    ghost = attrs.evolve(cast(Any, new_user(store)), id=missing_id())
    for owner in (gone, ghost):
        with nothing_written(store):
            with pytest.raises(NotFound):
                new_voice_model(store, owner)
            with pytest.raises(NotFound):
                new_face_model(store, owner)
            with pytest.raises(NotFound):
                new_document(store, owner)
            with pytest.raises(NotFound):
                new_memory(store, owner)


def test_restore_of_cascaded_child_needs_live_owner(store: Store) -> None:
    """A row hidden by its user's deletion cannot be restored while the user is deleted."""
    user = new_user(store)
    document = new_document(store, user)
    store.users.delete(user.id)
    with nothing_written(store), pytest.raises(NotFound):
        store.documents.restore(document.id)
