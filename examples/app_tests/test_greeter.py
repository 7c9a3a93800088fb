"""Tests of the greeter app on in-memory storage: the ``clonestore_store`` fixture comes
from clonestore's pytest plugin, active wherever clonestore is installed; there is no
conftest and nothing to set up. Each test gets a fresh, empty store."""

from __future__ import annotations

import pytest
from greeter import EmailTaken, greeting, rename, roll_call, sign_up

from clonestore import Conflict, NotFound, Store


def test_a_new_user_is_greeted_in_their_language(clonestore_store: Store) -> None:
    """Signing up stores the user; greeting finds them by email in their language."""
    sign_up(clonestore_store, "ada@example.com", "Ada", language="fr")
    assert greeting(clonestore_store, "ada@example.com") == "Bonjour, Ada!"


def test_emails_match_in_any_letter_case(clonestore_store: Store) -> None:
    """Greeting and sign-up treat emails case-insensitively, as the store does."""
    sign_up(clonestore_store, "Grace@Example.com", "Grace")
    assert greeting(clonestore_store, "GRACE@example.COM") == "Hello, Grace!"
    with pytest.raises(EmailTaken):
        sign_up(clonestore_store, "grace@example.com", "Impostor")


def test_every_test_starts_with_an_empty_store(clonestore_store: Store) -> None:
    """Nothing from other tests is visible: each test gets a fresh, empty store."""
    assert clonestore_store.users.count() == 0
    assert clonestore_store.health()["ok"] is True


def test_unknown_people_and_languages_are_refused(clonestore_store: Store) -> None:
    """Greeting someone who never signed up is NotFound; an unknown language is refused."""
    with pytest.raises(NotFound):
        greeting(clonestore_store, "nobody@example.com")
    with pytest.raises(ValueError, match="klingon"):
        sign_up(clonestore_store, "worf@example.com", "Worf", language="klingon")


def test_rename_changes_the_greeting_and_detects_races(clonestore_store: Store) -> None:
    """A rename shows in the next greeting; one made from a stale read raises Conflict."""
    ada = sign_up(clonestore_store, "ada@example.com", "Ada")
    rename(clonestore_store, "ada@example.com", "Countess Lovelace")
    assert greeting(clonestore_store, "ada@example.com") == "Hello, Countess Lovelace!"
    with pytest.raises(Conflict):
        clonestore_store.users.update(ada.id, expected_version=ada.version, name="Stale")


def test_roll_call_greets_everyone_by_name(clonestore_store: Store) -> None:
    """roll_call lists every user's greeting, ordered by name."""
    sign_up(clonestore_store, "kenji@example.com", "Kenji", language="ja")
    sign_up(clonestore_store, "ada@example.com", "Ada")
    assert roll_call(clonestore_store) == ["Hello, Ada!", "こんにちは, Kenji!"]
