"""A tiny application that keeps its users in clonestore: sign up, greet, rename.

Its functions take the store they work on, so production code passes a store
opened on PostgreSQL or SQLite and the tests (``test_greeter.py``) pass the
``clonestore_store`` fixture: a fresh ``memory://`` store per test.
"""

from __future__ import annotations

from typing import Final

from clonestore import AlreadyExists, NotFound, Store, User

__all__ = ["GREETINGS", "EmailTaken", "greeting", "rename", "roll_call", "sign_up"]

#: How to say hello, by language code.
GREETINGS: Final = {"en": "Hello", "fr": "Bonjour", "de": "Hallo", "ja": "こんにちは"}


class EmailTaken(Exception):
    """Someone already signed up with this email (in any letter case)."""


def sign_up(store: Store, email: str, name: str, language: str = "en") -> User:
    """Register a user who wants to be greeted in ``language``."""
    if language not in GREETINGS:
        raise ValueError(f"no greeting in {language!r}")
    try:
        user: User = store.users.create(email=email, name=name, settings={"language": language})
    except AlreadyExists:
        raise EmailTaken(email) from None
    return user


def greeting(store: Store, email: str) -> str:
    """The greeting for the user with this email (any letter case)."""
    user = store.users.find_by_email(email)
    if user is None:
        raise NotFound(f"nobody signed up as {email}")
    return f"{GREETINGS[user.settings.get('language', 'en')]}, {user.name}!"


def rename(store: Store, email: str, name: str) -> User:
    """Change the name the user is greeted by; a concurrent rename wins or this raises Conflict."""
    user = store.users.find_by_email(email)
    if user is None:
        raise NotFound(f"nobody signed up as {email}")
    renamed: User = store.users.update(user.id, expected_version=user.version, name=name)
    return renamed


def roll_call(store: Store) -> list[str]:
    """Everyone's greeting, by name (code point order, as on every backend)."""
    return [greeting(store, user.email) for user in store.users.find_many(order_by="name")]
