"""What a new user hit on a clean clone (issue 10, part D), on every backend of the matrix."""

from __future__ import annotations

import pytest

import clonestore
from clonestore import AlreadyExists, ConfigurationError, ValidationError
from clonestore.testing.contract._builders import new_user, nothing_written

INT64_MAX = 2**63 - 1


def test_find_many_takes_the_keyword_lookups_find_one_takes(store: clonestore.Store) -> None:
    """find_many(name="A") filters like find_one(name="A"); with where too, both apply."""
    a = new_user(store, name="A")
    new_user(store, name="B")
    assert store.users.find_many(name="A") == [a] == [store.users.find_one(name="A")]
    assert store.users.find_many({"name": "A"}, subscription_tier="free") == [a]
    assert store.users.count(name="A") == 1
    with pytest.raises(ValidationError, match="name"):
        store.users.find_many({"name": "A"}, name="B")
    with pytest.raises(ValidationError, match="nickname"):
        store.users.find_many(nickname="A")


def test_update_refuses_id_with_a_typed_error(store: clonestore.Store) -> None:
    """update(id, id=...) is a ValidationError naming the field, not a TypeError."""
    user, other = new_user(store), new_user(store, name="Other")
    with nothing_written(store), pytest.raises(ValidationError) as error:
        store.users.update(user.id, id=other.id)
    assert error.value.field == "id"


def test_update_many_needs_a_filter_or_all(store: clonestore.Store) -> None:
    """update_many(None | {}, ...) changes nothing and says to pass all=True; all=True works."""
    new_user(store, name="A")
    new_user(store, name="B")
    for where in (None, {}):
        with nothing_written(store), pytest.raises(ValidationError, match="all=True"):
            store.users.update_many(where, name="x")
    with nothing_written(store), pytest.raises(ValidationError, match="all"):
        store.users.update_many(None, all="yes", name="x")
    assert store.users.update_many(None, all=True, name="x") == 2
    assert {u.name for u in store.users.find_many()} == {"x"}


@pytest.mark.parametrize("limit", [INT64_MAX + 1, -1])
def test_find_many_bounds_are_validated_alike(store: clonestore.Store, limit: int) -> None:
    """limit and offset outside 0..2**63-1 are a ValidationError on every backend."""
    new_user(store)
    with pytest.raises(ValidationError, match="limit"):
        store.users.find_many(limit=limit)
    with pytest.raises(ValidationError, match="offset"):
        store.users.find_many(offset=limit)


def test_find_many_takes_the_largest_bounds(store: clonestore.Store) -> None:
    """limit=2**63-1 returns every row and offset=2**63-1 none, on every backend."""
    user = new_user(store)
    assert store.users.find_many(limit=INT64_MAX) == [user]
    assert store.users.find_many(limit=INT64_MAX, offset=INT64_MAX) == []


def test_duplicate_email_names_the_email_field(store: clonestore.Store) -> None:
    """A taken email (on create, update and create_many) says email, not email_key."""
    new_user(store, email="ada@example.com")
    other = new_user(store, email="bob@example.com")
    attempts = {
        "create": lambda: store.users.create(email="ADA@example.com", name="Ada"),
        "update": lambda: store.users.update(other.id, email="Ada@Example.com"),
        "create_many": lambda: store.users.create_many([{"email": "ada@EXAMPLE.com", "name": "A"}]),
    }
    for what, attempt in attempts.items():
        with nothing_written(store), pytest.raises(AlreadyExists) as error:
            attempt()
        assert "email already used" in str(error.value), what
        assert "email_key" not in str(error.value), what


def test_plugins_may_be_one_comma_separated_string(clonestore_url: str) -> None:
    """open(url, plugins="cache") enables the cache; "cache, audit" enables both."""
    with clonestore.open(clonestore_url, plugins="cache") as store:
        assert store.cache is not None
    with clonestore.open(clonestore_url, plugins="cache, audit") as store:
        assert store.cache is not None
        assert store.audit is not None


def test_plugins_of_another_type_are_refused_clearly() -> None:
    """plugins=42 is a ConfigurationError saying what plugins takes."""
    with pytest.raises(ConfigurationError, match=r"plugins=\['cache'\]"):
        clonestore.open("memory://", plugins=42)  # type: ignore[arg-type]


def test_a_missing_service_names_its_plugin() -> None:
    """store.cache without the cache plugin is an AttributeError saying how to enable it."""
    with clonestore.open("memory://") as store:
        for name in ("cache", "ratelimit", "audit"):
            with pytest.raises(AttributeError, match=rf"plugins=\['{name}'\]"):
                getattr(store, name)
            assert not hasattr(store, name)
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            store.nope  # noqa: B018
