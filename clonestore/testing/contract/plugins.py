"""Contract: the built-in plugins keep their own promises on the backend under test.

The cache, rate-limit and audit plugins store what they keep in tables of the
backend (through the SPI), so a backend that passes the SPI tests must also
carry them: exact limits under racing callers, an audit chain that verifies
and holds exactly the committed writes, a read-through cache invalidated by
committed writes and untouched by rolled-back ones.
"""

from __future__ import annotations

import importlib.metadata
import threading
from datetime import UTC, datetime
from typing import Final

from clonestore import Store
from clonestore.spi import Cond
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import aborted, new_user, race

#: Racing callers, calls each, and the limit they share.
THREADS: Final = 6
CALLS: Final = 10
LIMIT: Final = 25

#: The start of a rate-limit window, so every call falls in one.
WINDOW_START: Final = datetime(2030, 1, 1, 12, tzinfo=UTC)


def _behind_the_back(store: Store, user_id: str, name: str) -> None:
    """Change a user's row without the store knowing (as another program would)."""
    store.backend.update(store.tables["users"], Cond("id", "eq", user_id), {"name": name})


def test_plugin_ratelimit_admits_exactly_the_limit_under_races(
    store_factory: StoreFactory,
) -> None:
    """Racing rate-limit checks admit exactly the limit, each remaining count once."""
    store = store_factory(plugins=["ratelimit"], clock=FrozenClock(WINDOW_START))
    algorithms = ("fixed_window", "sliding_window", "token_bucket")
    seen: dict[str, list[int]] = {a: [] for a in algorithms}
    lock = threading.Lock()

    def call(_: int) -> None:
        for _ in range(CALLS):
            for algorithm in algorithms:
                decision = store.ratelimit.check_and_increment(
                    "racer", algorithm, LIMIT, 3600, algorithm=algorithm
                )
                if decision.allowed:
                    with lock:
                        seen[algorithm].append(decision.remaining)

    errors = race(THREADS, call)
    assert not errors, errors
    for algorithm in algorithms:
        assert sorted(seen[algorithm]) == list(range(LIMIT)), algorithm


def test_plugin_audit_chain_holds_exactly_the_committed_writes(
    store_factory: StoreFactory,
) -> None:
    """The audit log holds exactly the committed writes, and its hash chain verifies."""
    plugin: object = "audit"
    if "append_only" not in store_factory().backend.capabilities:
        # The guarded plugin needs append_only (its own kit test); the chain does not.
        (entry,) = importlib.metadata.entry_points(group="clonestore", name="audit")
        plugin = type(entry.load())(guard=False)
    store = store_factory(plugins=[plugin])
    user = new_user(store)
    store.users.update(user.id, name="Grace")
    with aborted(store.transaction()):
        store.users.update(user.id, name="never")
    store.users.update(user.id, name="Hopper")
    actions = [(e.action, e.result) for e in reversed(store.audit.find(limit=100))]
    assert actions == [
        ("user.create", "success"),
        ("user.update", "success"),
        ("user.update", "success"),
    ]
    report = store.audit.verify()
    assert (report.ok, report.checked, report.reason) == (True, 3, None)


def test_plugin_cache_invalidates_on_commit_only(store_factory: StoreFactory) -> None:
    """A cached get(id) is invalidated by a committed write, not by a rolled-back one."""
    store = store_factory(plugins=["cache"])
    user = new_user(store, name="Ada")
    assert store.users.get(user.id).name == "Ada"
    _behind_the_back(store, user.id, "changed elsewhere")
    assert store.users.get(user.id).name == "Ada"  # served from the cache
    with aborted(store.transaction()):
        store.users.update(user.id, name="never")
    assert store.users.get(user.id).name == "Ada"  # a rollback invalidates nothing
    store.users.update(user.id, name="Grace")
    assert store.users.get(user.id).name == "Grace"
