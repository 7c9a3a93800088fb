"""Cache, rate limit and audit compose: any subset works on every backend, in a
documented order (audit outermost, cache innermost)."""

from __future__ import annotations

import itertools

import pytest
from clonestore_ratelimit import Policy, RateLimitPlugin

from clonestore import AlreadyExists, RateLimited

from .conftest import rolled_back

NAMES = ("cache", "ratelimit", "audit")
SUBSETS = [list(s) for n in range(len(NAMES) + 1) for s in itertools.combinations(NAMES, n)]


@pytest.mark.parametrize("plugins", SUBSETS, ids=lambda s: "+".join(s) or "none")
def test_every_subset_works(store_factory, clock, plugins):
    """Each subset of the plugins gives the same data, and each plugin does its part."""
    store = store_factory(plugins=plugins, clock=clock)
    assert {name for name in NAMES if name in store.services} == set(plugins)
    user = store.users.create(email="ada@example.com", name="Ada")
    assert store.users.get(user.id).name == "Ada"
    store.users.update(user.id, name="Ada L")
    assert store.users.get(user.id).name == "Ada L"
    with rolled_back(store):
        store.users.update(user.id, name="never")
    with pytest.raises(AlreadyExists):
        store.users.create(email="ADA@example.com", name="Dup")
    assert store.users.get(user.id).name == "Ada L"
    assert store.users.count() == 1
    if "cache" in plugins:
        store.cache.set_embedding("q", [1.0])
        assert store.cache.get_embedding("q") == [1.0]
        assert store.cache.stats()["entity"].hits >= 1
    if "ratelimit" in plugins:
        decisions = [store.ratelimit.check_and_increment(user.id, "chat", 1, 60) for _ in "ab"]
        assert [d.allowed for d in decisions] == [True, False]
    if "audit" in plugins:
        results = [(e.action, e.result) for e in reversed(store.audit.find())]
        assert results == [
            ("user.create", "success"),
            ("user.update", "success"),
            ("user.create", "failure"),
        ]
        assert store.audit.verify().ok
    exported = store.export_user(user.id)
    assert {"audit", "ratelimit", "cache"} & set(exported) == set(plugins)
    store.erase_user(user.id)
    assert store.users.get_or_none(user.id) is None


def _call_order(store, hook: str) -> list[str]:
    impls = getattr(store.hook, hook).get_hookimpls()
    names = [type(impl.plugin).__module__.split(".")[0] for impl in reversed(impls)]
    return [n.removeprefix("clonestore_") for n in names if n.startswith("clonestore_")]


@pytest.mark.parametrize("plugins", list(itertools.permutations(NAMES)), ids="+".join)
def test_order_is_the_same_whatever_the_registration_order(store_factory, plugins):
    """Audit runs first before a write and last after it; the cache is innermost."""
    limiter = RateLimitPlugin(enforce={"*": "writes"})
    store = store_factory(plugins=[limiter if p == "ratelimit" else p for p in plugins])
    assert _call_order(store, "clonestore_before_write") == ["audit", "ratelimit"]
    assert _call_order(store, "clonestore_after_write") == ["audit"]
    assert _call_order(store, "clonestore_write_failed") == ["audit"]
    assert _call_order(store, "clonestore_after_commit") == ["cache"]
    assert _call_order(store, "clonestore_read") == ["cache"]


@pytest.fixture
def composed(store_factory, clock):
    limiter = RateLimitPlugin(tiers={"free": {"*": Policy(2, 60)}}, enforce={"*": "writes"})
    return store_factory(plugins=["audit", limiter, "cache"], clock=clock)


def test_a_refused_write_is_audited_as_a_failure_and_changes_no_cache(composed):
    """A write refused by rate limiting: one failure row, no data change, the cache untouched."""
    store = composed
    user = store.users.create(email="ada@example.com", name="Ada")
    with store.context(actor_id=user.id, request_id="r-1"):
        store.users.update(user.id, name="A1")
        store.users.update(user.id, name="A2")
        assert store.users.get(user.id).name == "A2"  # cached
        before = store.cache.stats()["entity"]
        with pytest.raises(RateLimited):
            store.users.update(user.id, name="A3")
    assert store.users.get(user.id).name == "A2"
    after = store.cache.stats()["entity"]
    assert (after.hits, after.misses, after.entries) == (before.hits + 1, before.misses, 1)
    (failure,) = store.audit.find(result="failure")
    assert (failure.action, failure.error_type, failure.request_id) == (
        "user.update",
        "RateLimited",
        "r-1",
    )
    assert [e.result for e in store.audit.find(action="user.update")] == [
        "failure",
        "success",
        "success",
    ]
    assert store.audit.verify().ok


def test_a_rolled_back_write_leaves_no_cache_change_and_no_success_row(composed):
    """Rolled back: the cached row is still served, no success row, no quota used."""
    store = composed
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    with store.context(actor_id=user.id):
        with rolled_back(store):
            store.users.update(user.id, name="never")
        before = store.cache.stats()["entity"]
        assert store.users.get(user.id).name == "Ada"
        assert store.cache.stats()["entity"].hits == before.hits + 1
        assert [e.action for e in store.audit.find()] == ["user.create"]
        store.users.update(user.id, name="A1")
        store.users.update(user.id, name="A2")  # the rolled-back write used no quota
    assert store.audit.verify().ok
