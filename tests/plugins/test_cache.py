"""The cache plugin's seed caches: two levels, expiry, hit counts, statistics, erasure."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from datetime import timedelta

import pytest
from clonestore_cache import CachePlugin, hash_text

import clonestore
from clonestore import ValidationError


@pytest.fixture
def store(store_factory, clock):
    return store_factory(plugins=["cache"], clock=clock)


def test_embeddings_round_trip_and_expire_after_an_hour(store, clock):
    """An embedding is kept for its query hash for one hour by default."""
    h = hash_text("what is my name?")
    assert store.cache.get_embedding(h) is None
    store.cache.set_embedding(h, [0.25, -1.0, 3], model="text-embedding-3")
    assert store.cache.get_embedding(h) == [0.25, -1.0, 3.0]
    clock.advance(3599)
    assert store.cache.get_embedding(h) == [0.25, -1.0, 3.0]
    clock.advance(1)
    assert store.cache.get_embedding(h) is None


def test_vector_search_results_are_per_user_for_30_minutes(store, clock):
    """Vector-search results are kept by (query hash, user) for 30 minutes by default."""
    results = [{"id": "m1", "score": 0.93, "tags": ["a"]}, {"id": "m2", "score": 0.5}]
    store.cache.set_vector_search_results("q", "user-a", results)
    assert store.cache.get_vector_search_results("q", "user-a") == results
    assert store.cache.get_vector_search_results("q", "user-b") is None
    got = store.cache.get_vector_search_results("q", "user-a")
    got[0]["score"] = 0  # the caller's copy, not the cache's
    assert store.cache.get_vector_search_results("q", "user-a") == results
    clock.advance(1800)
    assert store.cache.get_vector_search_results("q", "user-a") is None


def test_llm_responses_count_their_hits(store_factory, clock):
    """Each read of an LLM response counts a hit, in process and in the table, exactly."""
    first = store_factory(plugins=["cache"], clock=clock)
    second = store_factory(plugins=["cache"], clock=clock)
    first.cache.set_llm_response("p", "Hello!", "openai")
    counts = [first.cache.get_llm_response("p").hit_count for _ in range(3)]
    assert counts == [1, 2, 3]
    response = first.cache.get_llm_response("p")
    assert (response.response, response.provider) == ("Hello!", "openai")
    assert response.expires_at == clock.now + timedelta(hours=1)
    assert first.cache.flush_hit_counts() == 4  # L1 hits, now added to the table
    assert first.cache.flush_hit_counts() == 0
    if first.url == "memory://":
        return  # two memory:// stores are two databases
    assert second.cache.get_llm_response("p").hit_count == 5
    first.cache.set_llm_response("p", "Hi again", "anthropic")
    assert second.cache.get_llm_response("p").hit_count == 1


def test_ttls_are_configurable_per_call_and_per_plugin(store_factory, clock):
    """ttl= on a call, or ttls= on the plugin, replace the default time to live."""
    store = store_factory(plugins=[CachePlugin(ttls={"embedding": 10})], clock=clock)
    store.cache.set_embedding("a", [1.0])
    store.cache.set_embedding("b", [1.0], ttl=timedelta(seconds=100))
    clock.advance(10)
    assert store.cache.get_embedding("a") is None
    assert store.cache.get_embedding("b") == [1.0]
    with pytest.raises(ValidationError):
        store.cache.set_embedding("c", [1.0], ttl=0)


def test_level_two_is_shared_by_stores(store_factory, clock):
    """A value set through one store is read by another from the table (L2), then from L1."""
    store_factory(plugins=["cache"], clock=clock)  # starts the database clean
    url = store_factory.url
    if url == "memory://":
        url = f"memory://cache-l2-{uuid.uuid4().hex}"  # one database two stores share
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(clonestore.open(url, plugins=["cache"], clock=clock))
        reader = stack.enter_context(clonestore.open(url, plugins=["cache"], clock=clock))
        _share_level_two(writer, reader)


def _share_level_two(writer, reader) -> None:
    writer.cache.set_embedding("q", [1.0, 2.0])
    assert reader.cache.get_embedding("q") == [1.0, 2.0]
    assert reader.cache.stats()["embedding"].l2_hits == 1
    # On PostgreSQL the writer's invalidation may still arrive and drop the
    # entry once; soon the reader is served from L1.
    deadline = time.monotonic() + 5
    while reader.cache.stats()["embedding"].l1_hits == 0:
        assert time.monotonic() < deadline
        assert reader.cache.get_embedding("q") == [1.0, 2.0]


def test_stats_report_hits_misses_rate_and_entries(store, clock):
    """stats() gives hits, misses, hit rate and live entries per cache."""
    store.cache.set_embedding("a", [1.0])
    store.cache.set_embedding("b", [1.0], ttl=5)
    store.cache.get_embedding("a")
    store.cache.get_embedding("a")
    store.cache.get_embedding("zzz")
    clock.advance(5)
    stats = store.cache.stats()
    assert stats["embedding"].hits == 2
    assert stats["embedding"].misses == 1
    assert stats["embedding"].hit_rate == pytest.approx(2 / 3)
    assert stats["embedding"].entries == 1
    assert stats["llm_response"].hit_rate == 0.0
    assert set(stats) == {"embedding", "vector_search", "llm_response", "entity"}


def test_clean_expired_removes_and_reports_expired_entries(store, clock):
    """clean_expired() deletes expired rows and says how many per cache."""
    store.cache.set_embedding("a", [1.0], ttl=10)
    store.cache.set_embedding("b", [1.0], ttl=100)
    store.cache.set_vector_search_results("q", "u", [], ttl=10)
    store.cache.set_llm_response("p", "r", "x", ttl=10)
    assert store.cache.clean_expired() == {"embedding": 0, "vector_search": 0, "llm_response": 0}
    clock.advance(10)
    assert store.cache.clean_expired() == {"embedding": 1, "vector_search": 1, "llm_response": 1}
    assert store.cache.stats()["embedding"].entries == 1


def test_concurrent_misses_compute_once(store):
    """Eight threads missing the same key at once run the computation once."""
    calls = []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(5)
        return [0.5, 0.5]

    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(store.cache.get_or_compute_embedding("q", compute))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert results == [[0.5, 0.5]] * 8
    assert store.cache.get_or_compute_embedding("q", compute) == [0.5, 0.5]
    assert len(calls) == 1


def test_get_or_compute_for_every_cache(store):
    """The get-or-compute forms keep what they computed and return it next time."""
    r = store.cache.get_or_compute_vector_search_results("q", "u", lambda: [{"id": 1}])
    assert r == [{"id": 1}]
    assert store.cache.get_or_compute_vector_search_results("q", "u", list) == [{"id": 1}]
    answer = store.cache.get_or_compute_llm_response("p", lambda: ("Hi", "openai"))
    assert (answer.response, answer.hit_count) == ("Hi", 0)
    again = store.cache.get_or_compute_llm_response("p", lambda: ("other", "x"))
    assert (again.response, again.hit_count) == ("Hi", 1)


def test_bad_values_are_refused(store):
    """Values every backend could not store exactly are refused with ValidationError."""
    with pytest.raises(ValidationError):
        store.cache.set_embedding("q", [float("nan")])
    with pytest.raises(ValidationError):
        store.cache.set_embedding("", [1.0])
    with pytest.raises(ValidationError):
        store.cache.set_vector_search_results("q", "u", [{"x": float("inf")}])
    with pytest.raises(ValidationError):
        store.cache.set_llm_response("p", "a\x00b", "x")


def test_erase_user_removes_everything_cached_about_the_user(store_factory, clock):
    """erase_user deletes the user's entries from L1 and the tables; export lists them first."""
    store = store_factory(plugins=["cache"], clock=clock)
    user = store.users.create(email="ada@example.com", name="Ada")
    other = store.users.create(email="bob@example.com", name="Bob")
    store.cache.set_vector_search_results("q", user.id, [{"id": "m1"}])
    store.cache.set_vector_search_results("q", other.id, [{"id": "m2"}])
    store.cache.set_llm_response("p", "about Ada", "x", user_id=user.id)
    store.cache.set_embedding("e", [1.0], user_id=user.id)
    store.users.get(user.id)
    exported = store.export_user(user.id)["cache"]
    assert [e["results"] for e in exported["vector_search"]] == [[{"id": "m1"}]]
    assert len(exported["llm_response"]) == len(exported["embedding"]) == 1
    store.erase_user(user.id)
    assert store.cache.get_vector_search_results("q", user.id) is None
    assert store.cache.get_llm_response("p") is None
    assert store.cache.get_embedding("e") is None
    assert store.cache.get_vector_search_results("q", other.id) == [{"id": "m2"}]
    assert store.cache.stats()["entity"].entries == 0
