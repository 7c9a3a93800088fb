"""Contract: the error classes, each raised for its failure on every backend; opening
with a bad scheme or plugin; using a closed store; health."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import clonestore
from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    Conflict,
    InvalidTransition,
    NotFound,
    RateLimited,
    StorageUnavailable,
    Store,
    ValidationError,
)
from clonestore.spi import Column, TableSpec
from clonestore.testing import StoreFactory
from clonestore.testing.contract._builders import missing_id, new_session, new_user, raises


def test_error_hierarchy() -> None:
    """Every error is a ClonestoreError and also the builtin it resembles."""
    for cls in (
        ValidationError,
        NotFound,
        AlreadyExists,
        Conflict,
        InvalidTransition,
        RateLimited,
        ConfigurationError,
        StorageUnavailable,
        BackendError,
    ):
        assert issubclass(cls, ClonestoreError), cls
    assert issubclass(ValidationError, ValueError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(NotFound, KeyError)
    assert issubclass(StorageUnavailable, ConnectionError)
    original = OSError("driver said no")
    error = BackendError("wrapped", orig=original)
    assert error.orig is original
    assert str(NotFound("no user with id x")) == "no user with id x"
    assert ValidationError("too long", field="name").field == "name"
    assert RateLimited("slow down", retry_after=2.5).retry_after == 2.5


def test_each_failure_raises_its_error_class(store: Store) -> None:
    """Each failure raises its own error class, and every one is a ClonestoreError."""
    user = new_user(store, email="one@example.com")
    session = new_session(store, user)
    store.users.update(user.id, name="v2")
    failures: dict[type[ClonestoreError], Callable[[], object]] = {
        ValidationError: lambda: new_user(store, name=""),
        NotFound: lambda: store.users.get(missing_id()),
        AlreadyExists: lambda: new_user(store, email="ONE@example.com"),
        Conflict: lambda: store.users.update(user.id, expected_version=1, name="stale"),
        InvalidTransition: lambda: store.sessions.update_state(session.id, "speaking"),
    }
    for cls, action in failures.items():
        with pytest.raises(cls) as caught:
            action()
        assert isinstance(caught.value, ClonestoreError)
        assert type(caught.value).__module__ == "clonestore.errors", type(caught.value)
        assert str(caught.value)


def test_unknown_scheme_raises_configuration_error() -> None:
    """Opening a URL whose scheme no backend serves raises ConfigurationError."""
    for url in ("nosuchengine://somewhere/db", "not a url", ""):
        with pytest.raises(ConfigurationError):
            clonestore.open(url)


def test_unknown_plugin_raises_configuration_error(store_factory: StoreFactory) -> None:
    """Opening a store with a plugin name nobody installed raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        store_factory(plugins=["no-such-plugin-installed"])


def test_closed_store_refuses_work(store_factory: StoreFactory) -> None:
    """After close(), reads, writes and transactions raise ClonestoreError."""
    store = store_factory()
    user = new_user(store)
    store.close()
    assert store.closed
    actions = {
        "get": lambda: store.users.get(user.id),
        "find_many": lambda: store.users.find_many(),
        "count": lambda: store.users.count(),
        "create": lambda: new_user(store),
        "update": lambda: store.users.update(user.id, name="x"),
        "delete": lambda: store.users.delete(user.id),
        "transaction": lambda: store.transaction().__enter__(),
    }
    for what, action in actions.items():
        raises(ClonestoreError, action, f"{what} on a closed store")


def test_close_is_idempotent_and_context_manager_closes(store_factory: StoreFactory) -> None:
    """close() may be called twice; leaving a with block closes the store."""
    store = store_factory()
    store.close()
    store.close()
    assert store.closed
    with store_factory() as other:
        new_user(other)
    assert other.closed


def test_health_of_open_and_closed_store(store_factory: StoreFactory) -> None:
    """health() reports ok with the backend's name, and never raises, even once closed."""
    store = store_factory()
    health = store.health()
    assert health["ok"] is True
    assert health["backend"] == store.backend.name
    store.close()
    assert isinstance(store.health()["ok"], bool)


def test_storage_failures_are_clonestore_errors(store: Store) -> None:
    """A storage failure (a table never created) raises a ClonestoreError, not a driver's."""
    never_created = TableSpec(
        name="contract_never_created",
        columns=(Column(name="id", kind="id"), Column(name="label", kind="text")),
    )
    with pytest.raises(ClonestoreError):
        store.backend.insert(never_created, {"id": missing_id(), "label": "x"})
