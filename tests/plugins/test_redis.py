"""The cache's L2 and the rate-limit counters on real Redis and Redis Cluster
(``shared_store_url``: the machine's Redis, and a 3-master cluster the session
starts), found through the ``clonestore_shared_stores`` hook.

Stores run on memory:// here: what is under test is the shared state, and
the database is not the bottleneck.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from clonestore_cache import CachePlugin, L2Store, TableL2
from clonestore_memory import MemoryBackend
from clonestore_ratelimit import CounterStore, RateLimitPlugin
from clonestore_ratelimit._storage import TableCounters
from clonestore_redis import RedisClient
from clonestore_redis._counters import user_tag

import clonestore
from clonestore import ConfigurationError, RateLimited, StorageUnavailable
from clonestore.plugin_helpers import open_shared_store
from tests.servers import RedisServer, wait_for

from .test_ratelimit_concurrency import (
    ALGORITHMS,
    ATTEMPTS,
    FROZEN,
    LIMIT,
    PROCESSES,
    _check,
    _hammer,
    _shares,
)

ROOT = Path(__file__).resolve().parents[2]


def _limiter_store(url, clock=None, **options):
    return clonestore.open(
        "memory://", plugins=[RateLimitPlugin(storage=url, **options)], clock=clock
    )


@pytest.fixture
def limiter(shared_store_url, clock):
    store = _limiter_store(shared_store_url, clock)
    yield store.ratelimit
    store.close()


@pytest.fixture
def cached(shared_store_url, clock):
    """Two stores whose caches share one Redis L2 (and nothing else)."""
    stores = [
        clonestore.open("memory://", plugins=[CachePlugin(l2=shared_store_url)], clock=clock)
        for _ in range(2)
    ]
    yield stores
    for store in stores:
        store.close()


# ----------------------------------------------------------------------------- the hook


class TablesOnMemory:
    """Serves ``tables://`` for both kinds with the plugins' own table stores, on a
    memory:// backend of its own: a shared store that is not Redis."""

    def __init__(self):
        self.backend = MemoryBackend()
        self.asked = []

    @clonestore.hookimpl
    def clonestore_shared_stores(self, kind):
        self.asked.append(kind)
        if kind == "ratelimit.counters":
            return {"tables": lambda url: TableCounters(self.backend)}
        if kind == "cache.l2":
            return {"tables": lambda url: TableL2(self.backend)}
        return None


def test_clonestore_shared_stores():
    """A plugin offering a scheme for a kind serves storage= and l2= URLs of that scheme;
    the kind asked names the protocol; an unserved scheme is a ConfigurationError."""
    from clonestore_cache._tables import TABLES as CACHE_TABLES
    from clonestore_ratelimit._tables import BUCKETS, WINDOWS

    offer = TablesOnMemory()
    offer.backend.create_tables([WINDOWS, BUCKETS, *(spec for spec, _ in CACHE_TABLES.values())])
    store = clonestore.open(
        "memory://",
        plugins=[offer, RateLimitPlugin(storage="tables://"), CachePlugin(l2="tables://")],
    )
    try:
        assert set(offer.asked) == {"ratelimit.counters", "cache.l2"}
        assert [store.ratelimit.check_and_increment("u", "e", 2, 60).allowed for _ in range(3)] == [
            True,
            True,
            False,
        ]
        store.cache.set_embedding("q", [1.0])
        # The state is in the offered backend, not in the store's.
        assert offer.backend.count(WINDOWS, clonestore.query.TRUE) == 1
        assert offer.backend.count(CACHE_TABLES["embedding"][0], clonestore.query.TRUE) == 1
        assert store.backend.count(WINDOWS, clonestore.query.TRUE) == 0
        assert isinstance(
            open_shared_store(store.hook, "ratelimit.counters", "tables://", CounterStore),
            CounterStore,
        )
        with pytest.raises(ConfigurationError, match="known schemes"):
            open_shared_store(store.hook, "cache.l2", "nosuch://x", L2Store)
    finally:
        store.close()
    with pytest.raises(ConfigurationError, match=r"no ratelimit\.counters store"):
        clonestore.open("memory://", plugins=[RateLimitPlugin(storage="nosuch://x")])


def test_bad_urls_are_configuration_errors():
    """A storage or l2 that is not a URL, or a prefix with hash-tag braces, is refused."""
    with pytest.raises(ConfigurationError):
        RateLimitPlugin(storage="localhost:6379")
    with pytest.raises(ConfigurationError):
        CachePlugin(l2=6379)
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisClient("redis://127.0.0.1:6379/0?prefix=a{b}")


# ----------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_redis_admits_exactly_the_limit(limiter, algorithm):
    """Each algorithm admits exactly the limit on Redis, with remaining counting down."""
    decisions = [
        limiter.check_and_increment("u1", "chat", 3, 60, algorithm=algorithm) for _ in range(5)
    ]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[-1].retry_after > 0


def test_redis_windows_follow_the_store_clock(limiter, clock):
    """A fixed window resets at its end and a sliding window weighs the previous one,
    by the store's clock (not Redis's)."""
    for _ in range(3):
        limiter.check_and_increment("u1", "fixed", 3, 60)
        limiter.check_and_increment("u1", "slide", 4, 60, algorithm="sliding_window")
    assert not limiter.check_and_increment("u1", "fixed", 3, 60).allowed
    clock.advance(60)
    assert limiter.check_and_increment("u1", "fixed", 3, 60).allowed
    # 3 admitted in the previous window weigh 3 * (1 - 0) at the window start: one fits.
    assert limiter.check_and_increment("u1", "slide", 4, 60, algorithm="sliding_window").allowed
    assert not limiter.check_and_increment("u1", "slide", 4, 60, algorithm="sliding_window").allowed
    # A quarter of the previous window still counts (0.75), plus 3 calls counted so far.
    clock.advance(45)
    assert limiter.check_and_increment("u1", "slide", 4, 60, algorithm="sliding_window").allowed


def test_redis_token_bucket_refills_at_its_rate(limiter, clock):
    """A bucket of 2 per 10 s gives a token back every 5 s."""
    take = lambda: limiter.check_and_increment("u1", "tb", 2, 10, algorithm="token_bucket")  # noqa: E731
    assert [take().allowed for _ in range(3)] == [True, True, False]
    clock.advance(5)
    assert [take().allowed for _ in range(2)] == [True, False]
    assert limiter.status("u1", "tb", 2, 10, algorithm="token_bucket").allowed is False


def test_redis_status_usage_and_erase(limiter):
    """status() does not count; usage() sums every algorithm; erase_user removes the keys."""
    for algorithm in ALGORITHMS:
        for _ in range(3):
            limiter.check_and_increment("u1", algorithm, 2, 60, algorithm=algorithm)
        assert limiter.status("u1", algorithm, 2, 60, algorithm=algorithm).allowed is False
    limiter.check_and_increment("u2", "fixed_window", 2, 60)
    usage = limiter.usage("u1")
    assert (usage.requests, usage.admitted, usage.refused) == (9, 6, 3)
    assert set(usage.endpoints) == set(ALGORITHMS)
    assert limiter.cleanup(older_than=0) == 0  # Redis expiry does this work
    limiter.erase_user("u1")
    assert limiter.usage("u1").requests == 0
    assert limiter.usage("u2").requests == 1
    client = limiter.storage.client
    assert not list(client.redis.scan_iter(match=client.key("rl:{" + user_tag("u1") + "}*")))


def test_redis_keys_of_a_user_share_one_slot(limiter):
    """All keys of one user (windows, buckets, index) hash to one cluster slot."""
    for algorithm in ALGORITHMS:
        limiter.check_and_increment("user:{odd}", algorithm, 5, 60, algorithm=algorithm)
    client = limiter.storage.client
    keys = list(client.redis.scan_iter(match=client.key("rl:*")))
    assert len(keys) == 4  # a fixed and a sliding window, a bucket, the index
    slots = {client.redis.cluster_keyslot(k) if client.cluster else _slot(k) for k in keys}
    assert len(slots) == 1


def _slot(key: str) -> int:
    import redis.crc

    return int(redis.crc.key_slot(key.encode()))


def _redis_process(url: str, attempts: int, barrier, queue) -> None:
    """One worker process: its own store, counting on the shared Redis."""
    try:
        store = _limiter_store(url, clock=lambda: FROZEN)
        try:
            queue.put(("ok", _hammer(store, attempts, barrier)))
        finally:
            store.close()
    except BaseException as exc:  # reported to the parent
        queue.put(("error", repr(exc)))


def test_redis_processes_admit_exactly_the_limit(shared_store_url):
    """4 processes x 4 threads counting on Redis (and on the cluster): exactly the limit
    admitted per algorithm, remaining counts handed out once each, no failed call."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    queue = context.Queue()
    workers = [
        context.Process(target=_redis_process, args=(shared_store_url, n, barrier, queue))
        for n in _shares(ATTEMPTS, PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [detail for status, detail in outcomes if status == "error"] == []
    results = [item for _, detail in outcomes for item in detail]
    assert _check(results) == dict.fromkeys(ALGORITHMS, LIMIT)
    assert Counter(a for a, allowed, _ in results if not allowed) == dict.fromkeys(
        ALGORITHMS, ATTEMPTS - LIMIT
    )


# ----------------------------------------------------------------------------- cache L2


def test_redis_l2_is_shared_and_keeps_values_exactly(cached):
    """What one store keeps, another finds in Redis: values of every kind come back equal
    (embeddings as their float32 values)."""
    a, b = cached
    a.cache.set_embedding("q1", [1.0, -2.5, 1e-300], model="m", user_id="u1")
    a.cache.set_vector_search_results("q1", "u1", [{"id": "d1", "score": 1, "x": 1.0}, [None]])
    a.cache.set_llm_response("p1", "héllo \u2603", "prov")
    assert b.cache.get_embedding("q1") == [1.0, -2.5, 0.0]  # float32: 1e-300 is 0
    results = b.cache.get_vector_search_results("q1", "u1")
    assert results == [{"id": "d1", "score": 1, "x": 1.0}, [None]]
    assert type(results[0]["score"]) is int
    assert type(results[0]["x"]) is float
    assert b.cache.get_llm_response("p1").response == "héllo \u2603"
    assert b.cache.stats()["embedding"].l2_hits == 1


def test_redis_l2_counts_hits_and_expires_by_the_store_clock(cached, clock):
    """Hit counts from several stores add up in Redis; an entry past its ttl is a miss."""
    a, b = cached
    a.cache.set_llm_response("p1", "r", "prov", ttl=60)
    for store in (a, b, b):
        store.cache.get_llm_response("p1")
    a.cache.flush_hit_counts()
    b.cache.flush_hit_counts()
    a.cache.invalidate()
    assert a.cache.get_llm_response("p1").hit_count == 4
    clock.advance(61)
    b.cache.invalidate()
    assert b.cache.get_llm_response("p1") is None
    assert b.cache.stats()["llm_response"].entries == 0
    assert b.cache.clean_expired()["llm_response"] == 1


def test_redis_l2_export_and_erase(cached):
    """export_user lists a user's entries from Redis; erase_user removes them everywhere."""
    a, b = cached
    a.cache.set_embedding("q1", [1.0], user_id="u1")
    a.cache.set_vector_search_results("q2", "u1", [1])
    a.cache.set_embedding("q3", [2.0], user_id="u2")
    assert b.cache.get_embedding("q1") == [1.0]  # now in b's L1 too
    exported = a.cache.export_user("u1")["cache"]
    assert [e["query_hash"] for e in exported["embedding"]] == ["q1"]
    assert [e["results"] for e in exported["vector_search"]] == [[1]]
    a.cache.erase_user("u1")
    wait_for(lambda: b.cache.get_embedding("q1") is None, 5, "erasure reaching b")
    assert a.cache.export_user("u1")["cache"]["embedding"] == []
    assert b.cache.get_embedding("q3") == [2.0]


def test_redis_pubsub_invalidates_other_processes(shared_store_url):
    """A new value kept by another process drops this process's L1 copy (Redis pub/sub)."""
    store = clonestore.open("memory://", plugins=[CachePlugin(l2=shared_store_url, l1_ttl=3600)])
    try:
        store.cache.set_embedding("q1", [1.0])
        assert store.cache.get_embedding("q1") == [1.0]  # served from L1 from now on
        child = textwrap.dedent(
            f"""
            import clonestore
            from clonestore_cache import CachePlugin
            with clonestore.open("memory://", plugins=[CachePlugin(l2={shared_store_url!r})]) as s:
                s.cache.set_embedding("q1", [2.0])
            """
        )
        subprocess.run([sys.executable, "-c", child], check=True, timeout=60, cwd=ROOT)
        wait_for(lambda: store.cache.get_embedding("q1") == [2.0], 5, "invalidation")
    finally:
        store.close()


# ----------------------------------------------------------------------------- outages


@pytest.fixture
def doomed_redis():
    """A Redis of this test's own, which the test may kill and restart."""
    directory = Path(tempfile.mkdtemp(prefix="clonestore-redis-"))
    server = RedisServer(directory).start()
    yield server
    server.stop()


def test_redis_outage_degrades_as_documented(doomed_redis, clock):
    """With Redis killed: the cache misses and reads through (entity reads work), the rate
    limiter fails open or closed as configured; once Redis is back, both recover."""
    url = doomed_redis.url + "?prefix=outage:"
    store = clonestore.open(
        "memory://",
        plugins=[
            CachePlugin(l2=url),
            RateLimitPlugin(storage=url, on_unavailable="closed", enforce={"user.*": "writes"}),
        ],
        clock=clock,
    )
    open_store = _limiter_store(url, clock)  # default for shared storage: fail open
    raising = _limiter_store(url, clock, on_unavailable="raise")
    restarted = None
    try:
        user = store.users.create(email="a@example.com", name="A")
        store.cache.set_embedding("q1", [1.0])
        doomed_redis.stop()
        store.cache.invalidate()
        assert store.cache.get_embedding("q1") is None  # a miss, not an error
        store.cache.set_embedding("q2", [2.0])  # not kept in Redis, no error
        assert store.users.get(user.id).name == "A"  # the database answers
        decision = store.ratelimit.check_and_increment("u1", "chat", 5, 60)
        assert (decision.allowed, decision.retry_after) == (False, 1.0)
        with store.context(actor_id=user.id), pytest.raises(RateLimited):
            store.users.update(user.id, name="B")
        assert open_store.ratelimit.check_and_increment("u1", "chat", 5, 60).allowed
        with pytest.raises(StorageUnavailable):
            raising.ratelimit.check_and_increment("u1", "chat", 5, 60)
        with pytest.raises(StorageUnavailable):
            store.ratelimit.usage("u1")  # maintenance calls say so
        restarted = RedisServer(doomed_redis.directory, doomed_redis.port).start()
        time.sleep(1.1)  # the client retries a vanished server once a second
        assert store.ratelimit.check_and_increment("u1", "chat", 5, 60).allowed
        store.cache.set_embedding("q3", [3.0])
        store.cache.invalidate()
        assert store.cache.get_embedding("q3") == [3.0]
    finally:
        for s in (store, open_store, raising):
            s.close()
        if restarted is not None:
            restarted.stop()


def test_unreachable_redis_at_open_does_not_stop_the_store():
    """A store opens with its Redis down: the cache degrades, the limiter fails open."""
    from tests.servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with clonestore.open(
        "memory://", plugins=[CachePlugin(l2=url), RateLimitPlugin(storage=url)]
    ) as store:
        assert time.monotonic() - started < 5
        store.cache.set_embedding("q", [1.0])
        assert store.ratelimit.check_and_increment("u", "e", 1, 60).allowed
