"""Read-through caching of get(id): served from L1, invalidated only after commit."""

from __future__ import annotations

import threading
import time

import pytest
from clonestore_cache import NOTIFIED_L1_TTL, UNNOTIFIED_L1_TTL, CachePlugin

import clonestore
from clonestore.query import Cond
from clonestore.spi import capabilities_of

from .conftest import rolled_back


@pytest.fixture
def store(store_factory, clock):
    return store_factory(plugins=["cache"], clock=clock)


def _behind_the_back(store, user_id, **changes):
    """Change a row without the store knowing (as another program would)."""
    store.backend.update(store.tables["users"], Cond("id", "eq", user_id), changes)


def test_get_is_served_from_memory_after_the_first_read(store):
    """A second get(id) is answered by L1, not the backend."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    _behind_the_back(store, user.id, name="changed elsewhere")
    assert store.users.get(user.id).name == "Ada"
    stats = store.cache.stats()["entity"]
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)


def test_cached_rows_are_copies(store):
    """Mutating a record's JSON field does not change what the cache serves next."""
    user = store.users.create(email="ada@example.com", name="Ada", settings={"a": [1]})
    store.users.get(user.id).settings["a"].append(2)
    store.users.get(user.id).settings["b"] = 1
    assert store.users.get(user.id).settings == {"a": [1]}


def test_a_committed_write_invalidates(store):
    """After update, delete, restore and hard_delete commit, get(id) sees the change."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    store.users.update(user.id, name="Ada L")
    assert store.users.get(user.id).name == "Ada L"
    store.users.delete(user.id)
    assert store.users.get_or_none(user.id) is None
    store.users.restore(user.id)
    assert store.users.get(user.id).version == 4
    store.users.hard_delete(user.id)
    assert store.users.get_or_none(user.id) is None


def test_a_write_by_filter_invalidates_its_table(store):
    """update_many (no single key) drops every cached row of the table."""
    a = store.users.create(email="a@example.com", name="A")
    b = store.users.create(email="b@example.com", name="B")
    store.users.get(a.id), store.users.get(b.id)
    assert store.users.update_many({"name__in": ["A", "B"]}, subscription_tier="pro") == 2
    assert {store.users.get(a.id).subscription_tier, store.users.get(b.id).subscription_tier} == {
        "pro"
    }


def test_a_rolled_back_write_changes_nothing_in_the_cache(store):
    """Inside a transaction that rolls back, the write neither invalidates nor fills the cache."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    with rolled_back(store):
        store.users.update(user.id, name="never")
        assert store.users.get(user.id).name == "never"  # the transaction sees its write
    assert store.users.get(user.id).name == "Ada"
    stats = store.cache.stats()["entity"]
    assert (stats.hits, stats.misses) == (1, 1)  # served from L1: nothing was invalidated


def test_invalidation_waits_for_the_outermost_commit(store):
    """A row written in a transaction is invalidated when the outermost block commits."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    with store.transaction():
        with store.transaction():
            store.users.update(user.id, name="Ada L")
        assert store.cache.stats()["entity"].entries == 1
    assert store.cache.stats()["entity"].entries == 0
    assert store.users.get(user.id).name == "Ada L"


def test_concurrent_misses_read_the_backend_once(store):
    """Eight threads getting the same uncached row cause one backend read."""
    user = store.users.create(email="ada@example.com", name="Ada")
    backend = store.backend
    real_get = backend.get
    calls = []

    def slow_get(table, id):
        calls.append(id)
        time.sleep(0.2)
        return real_get(table, id)

    backend.get = slow_get
    try:
        names = []
        threads = [
            threading.Thread(target=lambda: names.append(store.users.get(user.id).name))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        del backend.get
    assert names == ["Ada"] * 8
    assert calls == [user.id]


def test_a_missing_row_is_read_once(store):
    """get_or_none of a missing id reads the backend once, and caches nothing."""
    backend = store.backend
    real_get = backend.get
    calls = []
    backend.get = lambda table, id: calls.append(id) or real_get(table, id)
    try:
        assert store.users.get_or_none("00000000-0000-4000-8000-000000000000") is None
    finally:
        del backend.get
    assert len(calls) == 1
    assert store.cache.stats()["entity"].entries == 0


def test_stores_of_one_database_in_one_process_invalidate_each_other(store_factory, clock):
    """A write committed through one store invalidates another store's cache at once."""
    url = store_factory.url if store_factory.url != "memory://" else "memory://shared-cache"
    first = clonestore.open(url, plugins=["cache"], clock=clock)
    second = clonestore.open(url, plugins=["cache"], clock=clock)
    try:
        user = first.users.create(email="ada@example.com", name="Ada")
        assert second.users.get(user.id).name == "Ada"
        first.users.update(user.id, name="Ada L")
        assert second.users.get(user.id).name == "Ada L"
    finally:
        first.users.hard_delete(user.id)
        first.close()
        second.close()


def test_unnotified_staleness_is_bounded_by_the_l1_ttl(store_factory, clock):
    """Without notifications, a change made elsewhere is seen once the L1 time to live passes."""
    store = store_factory(plugins=[CachePlugin(l1_ttl=2, listen=False)], clock=clock)
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    _behind_the_back(store, user.id, name="elsewhere")
    clock.advance(1.9)
    assert store.users.get(user.id).name == "Ada"
    clock.advance(0.1)
    assert store.users.get(user.id).name == "elsewhere"


def test_default_l1_ttl_depends_on_what_can_notify(store_factory):
    """A backend with listen_notify (memory://, PostgreSQL) keeps rows 60 s in L1, others 2 s."""
    store = store_factory(plugins=["cache"])
    notified = "listen_notify" in capabilities_of(store.backend)
    assert notified == (store.backend.name in ("memory", "postgresql"))
    assert store.cache.l1_ttl == (NOTIFIED_L1_TTL if notified else UNNOTIFIED_L1_TTL)
    assert (NOTIFIED_L1_TTL, UNNOTIFIED_L1_TTL) == (60.0, 2.0)


def test_erase_user_drops_the_users_cached_rows(store):
    """erase_user removes the user's cached rows (and their owned rows) from L1."""
    user = store.users.create(email="ada@example.com", name="Ada")
    other = store.users.create(email="bob@example.com", name="Bob")
    store.users.get(user.id), store.users.get(other.id)
    store.erase_user(user.id)
    assert store.users.get_or_none(user.id) is None
    assert store.cache.stats()["entity"].entries == 1
