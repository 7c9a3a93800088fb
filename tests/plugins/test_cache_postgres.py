"""The cache across processes on PostgreSQL, where LISTEN/NOTIFY invalidates at once.

Elsewhere staleness is bounded by the L1 lifetime (``test_cache_entities.py``);
these tests only make sense on PostgreSQL, so this module runs them once, there.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest

import clonestore


@pytest.fixture
def clonestore_url(postgres_url: str) -> str:
    """This module's stores are on the session's PostgreSQL database only."""
    return postgres_url


def _update_elsewhere(url: str, user_id: str, name: str, queue) -> None:
    store = clonestore.open(url, plugins=["cache"])
    try:
        store.users.update(user_id, name=name)
        queue.put("done")
    finally:
        store.close()


def test_another_process_write_is_seen_promptly(store_factory):
    """A write committed by another process invalidates this cache by NOTIFY."""
    store = store_factory(plugins=["cache"])
    deadline = time.monotonic() + 10
    while not store.cache.notified and time.monotonic() < deadline:
        time.sleep(0.01)
    user = store.users.create(email="ada@example.com", name="Ada")
    assert store.users.get(user.id).name == "Ada"
    assert store.users.get(user.id).name == "Ada"  # cached
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_update_elsewhere, args=(store.url, user.id, "Ada L", queue))
    worker.start()
    assert queue.get(timeout=60) == "done"
    worker.join(30)
    deadline = time.monotonic() + 5
    while store.users.get(user.id).name != "Ada L":
        assert time.monotonic() < deadline, "the other process's write was never seen"
        time.sleep(0.01)


def test_cached_embeddings_are_float32_arrays(store_factory):
    """cache_embeddings.embedding is real[] (cache migration 0003): a cached embedding reads
    back as its float32 values."""
    import numpy as np

    store = store_factory(plugins=["cache"])
    database = store.backend.database
    with database.connection_context():
        stored = database.execute_sql(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            "'cache_embeddings'::regclass AND attname = 'embedding'"
        ).fetchone()[0]
    assert stored == "real[]"
    vector = [0.1, 1 / 3, -2.5e-3, 3.0e38]
    store.cache.set_embedding("q-float32", vector)
    assert list(store.cache.get_embedding("q-float32")) == np.float32(vector).tolist()
