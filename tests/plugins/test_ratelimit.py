"""The rate-limit plugin: algorithms, policies, status, cleanup, usage, enforcement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clonestore_ratelimit import DEFAULT_TIERS, Policy, RateLimitPlugin

import clonestore
from clonestore import ConfigurationError, RateLimited, ValidationError

from .conftest import pg_execute

ALGORITHMS = ("fixed_window", "sliding_window", "token_bucket")


@pytest.fixture
def limiter(store_factory, clock):
    return store_factory(plugins=["ratelimit"], clock=clock).ratelimit


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_admits_exactly_the_limit_then_refuses(limiter, algorithm):
    """Each algorithm admits `limit` calls in a burst, counting remaining down, then refuses."""
    decisions = [
        limiter.check_and_increment("u1", "chat", 5, 60, algorithm=algorithm) for _ in range(8)
    ]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert all(d.retry_after == 0 for d in decisions[:5])
    assert all(d.retry_after > 0 for d in decisions[5:])
    assert all(d.limit == 5 for d in decisions)


def test_fixed_window_resets_at_the_window_end(limiter, clock):
    """A fixed window refuses until its end (reset_at, retry_after), then admits again."""
    clock.advance(30)  # 12:00:30, window 12:00-12:01
    for _ in range(3):
        limiter.check_and_increment("u1", "chat", 3, 60)
    refused = limiter.check_and_increment("u1", "chat", 3, 60)
    assert not refused.allowed
    assert refused.reset_at == clock.now + timedelta(seconds=30)
    assert refused.retry_after == 30.0
    clock.advance(30)
    assert limiter.check_and_increment("u1", "chat", 3, 60).allowed


def test_sliding_window_weighs_the_previous_window(limiter, clock):
    """Half-way through a window, half of the previous window's admissions still count."""
    for _ in range(10):
        limiter.check_and_increment("u1", "chat", 10, 60, algorithm="sliding_window")
    clock.advance(90)  # half-way through the next window: 10 * 0.5 = 5 carried
    decisions = [
        limiter.check_and_increment("u1", "chat", 10, 60, algorithm="sliding_window")
        for _ in range(6)
    ]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[4].remaining == 0


def test_sliding_window_carries_only_admitted_calls(limiter, clock):
    """Refused calls of a window do not weigh on the next one."""
    for _ in range(100):
        limiter.check_and_increment("u1", "chat", 4, 60, algorithm="sliding_window")
    clock.advance(60 + 45)  # a quarter of the previous window (4 admitted) still counts: 1
    decisions = [
        limiter.check_and_increment("u1", "chat", 4, 60, algorithm="sliding_window")
        for _ in range(4)
    ]
    assert [d.allowed for d in decisions] == [True, True, True, False]


def test_token_bucket_refills_at_its_rate(limiter, clock):
    """A bucket of 10 per 10 s gives one token back per second, never more than 10."""
    for _ in range(10):
        assert limiter.check_and_increment("u1", "api", 10, 10, algorithm="token_bucket").allowed
    empty = limiter.check_and_increment("u1", "api", 10, 10, algorithm="token_bucket")
    assert not empty.allowed
    assert empty.retry_after == pytest.approx(1.0)
    clock.advance(3)
    got = [
        limiter.check_and_increment("u1", "api", 10, 10, algorithm="token_bucket") for _ in "xyzw"
    ]
    assert [d.allowed for d in got] == [True, True, True, False]
    clock.advance(3600)  # idle for long: full, but capped at the capacity
    got = [
        limiter.check_and_increment("u1", "api", 10, 10, algorithm="token_bucket")
        for _ in range(11)
    ]
    assert sum(d.allowed for d in got) == 10


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_status_does_not_count(limiter, algorithm):
    """status() reports what the next check would decide without counting a call."""
    for _ in range(2):
        limiter.check_and_increment("u1", "chat", 3, 60, algorithm=algorithm)
    for _ in range(3):
        status = limiter.status("u1", "chat", 3, 60, algorithm=algorithm)
        assert status.allowed
        assert status.remaining == 1
    assert limiter.check_and_increment("u1", "chat", 3, 60, algorithm=algorithm).allowed
    assert not limiter.status("u1", "chat", 3, 60, algorithm=algorithm).allowed


def test_users_and_endpoints_are_counted_apart(limiter):
    """Counters are per (user, endpoint)."""
    limiter.check_and_increment("u1", "chat", 1, 60)
    assert limiter.check_and_increment("u2", "chat", 1, 60).allowed
    assert limiter.check_and_increment("u1", "voice", 1, 60).allowed
    assert not limiter.check_and_increment("u1", "chat", 1, 60).allowed


def test_cleanup_removes_old_windows_and_full_buckets(limiter, clock):
    """cleanup(older_than) removes windows that ended (and buckets full) before the cutoff."""
    limiter.check_and_increment("u1", "chat", 5, 60)
    limiter.check_and_increment("u1", "api", 5, 60, algorithm="token_bucket")
    assert limiter.cleanup(older_than=0) == 0  # the window is still open
    clock.advance(3600)
    limiter.check_and_increment("u1", "chat", 5, 60)
    assert limiter.cleanup(older_than=timedelta(minutes=30)) == 2
    assert limiter.cleanup(older_than=0) == 0
    assert limiter.usage("u1").requests == 1


def test_usage_counts_requests_admissions_and_refusals(limiter, clock):
    """usage() sums requests, admissions and refusals per endpoint over every algorithm."""
    for _ in range(5):
        limiter.check_and_increment("u1", "chat", 3, 60)
    for _ in range(4):
        limiter.check_and_increment("u1", "api", 2, 60, algorithm="token_bucket")
    for _ in range(3):
        limiter.check_and_increment("u1", "search", 10, 60, algorithm="sliding_window")
    usage = limiter.usage("u1")
    assert (usage.requests, usage.admitted, usage.refused) == (12, 8, 4)
    assert usage.endpoints["chat"].refused == 2
    assert usage.endpoints["api"].admitted == 2
    assert usage.endpoints["search"].last_window_start == clock.now
    assert limiter.usage("nobody").requests == 0


def test_policies_come_from_the_users_tier(store_factory, clock):
    """Without limit/window the user's subscription tier picks the policy ("*" as fallback)."""
    plugin = RateLimitPlugin(
        tiers={"free": {"chat": Policy(1, 60), "*": Policy(2, 60)}, "pro": {"*": Policy(3, 60)}}
    )
    store = store_factory(plugins=[plugin], clock=clock)
    free = store.users.create(email="free@example.com", name="Free")
    pro = store.users.create(email="pro@example.com", name="Pro", subscription_tier="pro")
    assert [store.ratelimit.check_and_increment(free.id, "chat").allowed for _ in "ab"] == [
        True,
        False,
    ]
    assert sum(store.ratelimit.check_and_increment(free.id, "x").allowed for _ in "abc") == 2
    assert sum(store.ratelimit.check_and_increment(pro.id, "x").allowed for _ in "abcd") == 3
    assert sum(store.ratelimit.check_and_increment("api-key-7", "x").allowed for _ in "abc") == 2
    assert store.ratelimit.policy_for(pro.id, "x", tier="free") == Policy(2, 60)


def test_configure_changes_policies_at_run_time(limiter):
    """configure(tiers=...) replaces the policies; policies may be mappings or tuples."""
    assert limiter.policy_for("k", "chat") == DEFAULT_TIERS["free"]["*"]
    limiter.configure(tiers={"free": {"chat": {"limit": 1, "window_seconds": 5}}}, tier_of=str)
    assert limiter.policy_for("k", "chat", tier="free") == Policy(1, 5)
    with pytest.raises(ConfigurationError):
        limiter.policy_for("k", "other", tier="free")
    limiter.configure(tiers={"gold": {"*": (7, 60, "token_bucket")}}, default_tier="gold")
    assert limiter.policy_for("k", "any") == Policy(7, 60, "token_bucket")
    with pytest.raises(ConfigurationError, match="enforce"):
        limiter.configure(enforce={"*": "writes"})


def test_bad_input_is_refused(limiter):
    """Names, limits, windows and algorithms are validated before anything is counted."""
    with pytest.raises(ValidationError):
        limiter.check_and_increment("", "chat", 1, 60)
    with pytest.raises(ValidationError):
        limiter.check_and_increment("u", "a\x00b", 1, 60)
    with pytest.raises(ValidationError):
        limiter.check_and_increment("u", "chat", 1, 0)
    with pytest.raises(ValidationError):
        limiter.check_and_increment("u", "chat", 1, 60, algorithm="leaky")
    with pytest.raises(ValidationError):
        limiter.check_and_increment("u", "chat", 10)
    with pytest.raises(ConfigurationError):
        RateLimitPlugin(tiers={"free": {"*": "fast"}})
    with pytest.raises(ConfigurationError):
        RateLimitPlugin(default_tier="platinum")


def test_enforcement_refuses_writes_over_the_actors_policy(store_factory, clock):
    """With enforce=..., writes by an actor count against the policy; over it: RateLimited."""
    plugin = RateLimitPlugin(
        tiers={"free": {"uploads": Policy(1, 60), "writes": Policy(2, 60)}},
        enforce={"document.create": "uploads", "*": "writes"},
    )
    store = store_factory(plugins=[plugin], clock=clock)
    user = store.users.create(email="ada@example.com", name="Ada")  # no actor: not counted
    with store.context(actor_id=user.id):
        store.documents.create(user_id=user.id, filename="a.txt", uploaded_at=clock.now)
        with pytest.raises(RateLimited) as refused:
            store.documents.create(user_id=user.id, filename="b.txt", uploaded_at=clock.now)
        assert refused.value.retry_after == 60.0
        store.users.update(user.id, name="A")
        store.users.update(user.id, name="B")
        with pytest.raises(RateLimited):
            store.users.update(user.id, name="C")
    assert store.users.get(user.id).name == "B"
    assert store.documents.count() == 1
    clock.advance(60)
    with store.context(actor_id=user.id):
        store.users.update(user.id, name="C")


def test_a_failed_write_uses_no_quota(store_factory, clock):
    """The enforcement counter is part of the write's transaction: a failed write rolls it back."""
    plugin = RateLimitPlugin(tiers={"free": {"*": Policy(1, 60)}}, enforce={"*": "writes"})
    store = store_factory(plugins=[plugin], clock=clock)
    ada = store.users.create(email="ada@example.com", name="Ada")
    with store.context(actor_id=ada.id):
        with pytest.raises(clonestore.AlreadyExists):
            store.users.create(email="ADA@example.com", name="Again")
        store.users.update(ada.id, name="Ada L")
        with pytest.raises(RateLimited):
            store.users.update(ada.id, name="again")


def test_erase_and_export_cover_the_users_counters(store_factory, clock):
    """export_user includes the user's usage; erase_user removes the user's counters."""
    store = store_factory(plugins=["ratelimit"], clock=clock)
    user = store.users.create(email="ada@example.com", name="Ada")
    store.ratelimit.check_and_increment(user.id, "chat", 5, 60)
    store.ratelimit.check_and_increment(user.id, "api", 5, 60, algorithm="token_bucket")
    assert store.export_user(user.id)["ratelimit"]["requests"] == 2
    store.erase_user(user.id)
    assert store.ratelimit.usage(user.id).requests == 0


def test_postgres_counters_are_unlogged_unless_durable(postgres_url):
    """On PostgreSQL the counter tables skip the WAL by default; durable=True logs them."""
    query = (
        "SELECT relname, relpersistence FROM pg_class "
        "WHERE relname IN ('ratelimit_windows', 'ratelimit_buckets') ORDER BY relname"
    )
    for durable, kind in ((False, "u"), (True, "p"), (False, "u")):
        store = clonestore.open(postgres_url, plugins=[RateLimitPlugin(durable=durable)])
        try:
            assert store.ratelimit.check_and_increment("u", "e", 1, 60).allowed is not None
            (rows,) = pg_execute(postgres_url, query)
            assert rows == [("ratelimit_buckets", kind), ("ratelimit_windows", kind)]
        finally:
            store.close()


class _ScriptedClock:
    """A clock giving each reading of a script in turn, then its last one again."""

    def __init__(self, *readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


def test_token_bucket_remaining_counts_from_when_the_step_is_done(store_factory, clock):
    """A caller whose clock reading is older than the step that started the bucket (another
    process read its clock later but went first) still gets the next remaining count:
    99, then 98, not 97 (which the next caller would get again)."""
    start = clock()
    script = _ScriptedClock(start)
    limiter = store_factory(plugins=["ratelimit"], clock=script).ratelimit
    first = limiter.check_and_increment("u1", "api", 100, 3600, algorithm="token_bucket")
    script.readings = [start - timedelta(seconds=0.1), start + timedelta(seconds=0.1)]
    second = limiter.check_and_increment("u1", "api", 100, 3600, algorithm="token_bucket")
    third = limiter.check_and_increment("u1", "api", 100, 3600, algorithm="token_bucket")
    assert [d.remaining for d in (first, second, third)] == [99, 98, 97]
