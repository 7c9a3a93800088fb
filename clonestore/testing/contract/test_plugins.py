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
from clonestore.query import And, Cond
from clonestore.spi import capabilities_of
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import aborted, new_user, race, refused
from clonestore.testing.observable import audit_plugin

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


def _audit_plugin(store_factory: StoreFactory) -> object:
    """The audit plugin for the backend under test (see ``observable.audit_plugin``)."""
    return audit_plugin(store_factory().backend)


def test_plugin_audit_chain_holds_exactly_the_committed_writes(
    store_factory: StoreFactory,
) -> None:
    """The audit log holds exactly the committed writes, and its hash chain verifies."""
    store = store_factory(plugins=[_audit_plugin(store_factory)])
    user = new_user(store)
    store.users.update(user.id, name="Grace")
    with aborted(store.transaction()):
        store.users.update(user.id, name="never")
    # Entries are appended as the transaction commits: a rolled-back write must leave
    # neither its entry nor its change (else a committed change has no entry).
    assert store.users.get(user.id).name == "Grace"
    store.users.update(user.id, name="Hopper")
    actions = [(e.action, e.result) for e in reversed(store.audit.find(limit=100))]
    assert actions == [
        ("user.create", "success"),
        ("user.update", "success"),
        ("user.update", "success"),
    ]
    report = store.audit.verify()
    assert (report.ok, report.checked, report.reason) == (True, 3, None)


def _audited(store_factory: StoreFactory) -> Store:
    """A store with the audit plugin (unguarded where the backend has no append_only)."""
    (entry,) = importlib.metadata.entry_points(group="clonestore", name="audit")
    guard = "append_only" in capabilities_of(store_factory().backend)
    return store_factory(plugins=[type(entry.load())(guard=guard)])


def test_plugin_audit_keeps_one_chain_per_owner(store_factory: StoreFactory) -> None:
    """Interleaved writes of two users form two chains from 1 (and a system one); each verifies."""
    # All verify together; an erasure names the rows it redacted; the recorded head is reached.
    store = _audited(store_factory)
    ada, bob = new_user(store), new_user(store)
    store.users.update(ada.id, name="Ada L")
    store.users.update(bob.id, name="Bob B")
    store.audit.log("system.start")
    by_owner: dict[str, list[int]] = {}
    for entry in reversed(store.audit.find(limit=100)):
        by_owner.setdefault(entry.owner, []).append(entry.seq)
    assert by_owner == {ada.id: [1, 2], bob.id: [1, 2], "~system": [1]}
    assert store.audit.verify(ada.id).checked == 2
    recorded = store.audit.head()
    store.erase_user(bob.id)
    redactions = store.audit.find(action="audit.redact")
    assert [(e.owner, e.info["seqs"]) for e in redactions] == [(bob.id, [[1, 2]])]
    report = store.audit.verify(expect_head=recorded)
    assert (report.ok, report.reason) == (True, None)
    assert report.chains == 3


def test_plugin_audit_reports_a_redaction_no_erasure_made(store_factory: StoreFactory) -> None:
    """A row nulled behind the plugin's back fails verify(): no audit.redact entry names it."""
    # Personal fields and salt nulled; the append-only guard lets that through, as erasure needs it.
    store = _audited(store_factory)
    user = new_user(store)
    store.users.update(user.id, name="Grace")
    personal = ("actor_id", "subject_id", "ip_address", "user_agent", "changes", "details",
                "error_message", "salt")  # fmt: skip
    where = And((Cond("owner", "eq", user.id), Cond("seq", "eq", 2)))
    store.backend.update(store.tables["audit_entries"], where, dict.fromkeys(personal))
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)


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


def test_plugin_inputs_at_the_edges_are_validation_errors(store_factory: StoreFactory) -> None:
    """Magnitudes and nesting past a plugin's limits are a ValidationError naming the argument."""
    # Before any write; never OverflowError, RecursionError or BackendError. Cases: rate limit
    # beyond 10**12, window 10**12 s, cache ttl 10**20 s, audit statistics over 10**9 days,
    # audit details nested 5,000 deep or holding an integer beyond 64 bits.
    store = store_factory(plugins=["ratelimit", "cache", _audit_plugin(store_factory)])
    user = new_user(store)
    nested: list[object] = [1]
    for _ in range(5_000):
        nested = [nested]
    cases = {
        "limit": lambda: store.ratelimit.check_and_increment(user.id, "e", 2**70, 60),
        "window_seconds": lambda: store.ratelimit.check_and_increment(user.id, "e", 5, 10**12),
        "ttl": lambda: store.cache.set_embedding("edge", [1.0], ttl=10**20),
        "days": lambda: store.audit.user_statistics(user.id, days=10**9),
        "older_than_days": lambda: store.audit.purge(older_than_days=1e300),
        "details": lambda: store.audit.log("edge.deep", details={"a": nested}),
        "details ": lambda: store.audit.log("edge.big", details={"n": 2**70}),
    }
    for field, action in cases.items():
        error = refused(store, action, what=field)
        assert error.field == field.strip(), (field, error.field)
