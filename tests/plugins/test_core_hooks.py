"""The core behaviour the plugins rely on: failures reported outside every transaction,
and a read fetched by a plugin never repeated."""

from __future__ import annotations

import pytest
from clonestore_ratelimit import Policy, RateLimitPlugin

from clonestore import AlreadyExists, RateLimited, hookimpl

from .conftest import rolled_back


class FailureSpy:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []

    @hookimpl
    def clonestore_write_failed(self, store, op, error):
        self.seen.append((op.action, type(error).__name__, store.in_transaction))


def test_write_failed_runs_outside_every_transaction(store_factory, clock):
    """clonestore_write_failed runs once per failure, after the outermost transaction ended."""
    spy = FailureSpy()
    limiter = RateLimitPlugin(tiers={"free": {"*": Policy(0, 60)}}, enforce={"document.*": "d"})
    store = store_factory(plugins=[spy, limiter], clock=clock)
    user = store.users.create(email="ada@example.com", name="Ada")
    with pytest.raises(AlreadyExists):
        store.users.create(email="ada@example.com", name="Dup")
    assert spy.seen == [("user.create", "AlreadyExists", False)]
    with rolled_back(store):
        with pytest.raises(AlreadyExists):
            store.users.create(email="ada@example.com", name="Dup")
        assert len(spy.seen) == 1  # not yet: the transaction is open
    assert spy.seen[1:] == [("user.create", "AlreadyExists", False)]
    # A refusal inside a repository operation's own transaction (documents.create
    # checks the owner and inserts atomically) is reported after it too.
    with store.context(actor_id="someone"), pytest.raises(RateLimited):
        store.documents.create(user_id=user.id, filename="x", uploaded_at=clock.now)
    assert spy.seen[2:] == [("document.create", "RateLimited", False)]


def test_a_fetched_read_is_not_repeated(store_factory):
    """When a read plugin fetched and passed, the fetched result is the answer."""
    calls = []

    class Passer:
        @hookimpl
        def clonestore_read(self, store, op, fetch):
            fetch()
            return None

    store = store_factory(plugins=[Passer()])
    real_get = store.backend.get
    store.backend.get = lambda table, id: calls.append(id) or real_get(table, id)
    try:
        assert store.users.get_or_none("00000000-0000-4000-8000-000000000000") is None
    finally:
        del store.backend.get
    assert len(calls) == 1
