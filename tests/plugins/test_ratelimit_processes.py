"""Rate limiting is exact across processes sharing one SQLite file or PostgreSQL database
(memory:// lives inside one process; the thread test covers it)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from typing import Any

import pytest

import clonestore

from .test_ratelimit_concurrency import (
    ALGORITHMS,
    ATTEMPTS,
    LIMIT,
    PROCESSES,
    THREADS,
    _check,
    _process,
    _shares,
)


@pytest.fixture
def clonestore_url(shared_url: str) -> str:
    """This module runs on the backends processes can share."""
    return shared_url


def test_processes_admit_exactly_the_limit(store_factory, clonestore_url):
    """4 processes x 4 threads on one SQLite file or PostgreSQL database: exactly 100 admitted."""
    store_factory(plugins=["ratelimit"])  # creates the tables and empties them
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    queue = context.Queue()
    workers = [
        context.Process(target=_process, args=(clonestore_url, n, barrier, queue))
        for n in _shares(ATTEMPTS, PROCESSES)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    errors = [detail for status, detail in outcomes if status == "error"]
    assert not errors
    results = [item for _, detail in outcomes for item in detail]
    admitted = _check(results)
    assert admitted == dict.fromkeys(ALGORITHMS, LIMIT)
    assert Counter(a for a, allowed, _ in results if not allowed) == dict.fromkeys(
        ALGORITHMS, ATTEMPTS - LIMIT
    )
    assert time.monotonic() - started < 60


def _bucket_process(url: str, attempts: int, barrier: Any, queue: Any) -> None:
    """One worker process on the real clock: (allowed, remaining) of each token-bucket call
    from THREADS threads, all released at once."""
    try:
        store = clonestore.open(url, plugins=["ratelimit"])
        try:
            results: list[tuple[bool, int]] = []
            lock = threading.Lock()
            start = threading.Barrier(THREADS)

            def work(count: int) -> None:
                start.wait()
                mine = []
                for _ in range(count):
                    d = store.ratelimit.check_and_increment(
                        "user-real-clock", "bucket", LIMIT, 3600, algorithm="token_bucket"
                    )
                    mine.append((d.allowed, d.remaining))
                with lock:
                    results.extend(mine)

            threads = [threading.Thread(target=work, args=(n,)) for n in _shares(attempts, THREADS)]
            barrier.wait(timeout=60)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            queue.put(("ok", results))
        finally:
            store.close()
    except BaseException as exc:  # reported to the parent
        queue.put(("error", repr(exc)))


def test_token_bucket_remaining_is_unique_across_processes_on_the_real_clock(
    store_factory, clonestore_url
):
    """4 processes x 4 threads on the real clock, one token bucket (100 per hour, so no
    token comes back during the run): the admitted calls get remaining 99..0, each once,
    even when a caller read the clock before another's call that started the bucket."""
    store_factory(plugins=["ratelimit"])
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    queue = context.Queue()
    workers = [
        context.Process(target=_bucket_process, args=(clonestore_url, n, barrier, queue))
        for n in _shares(LIMIT + 60, PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [detail for status, detail in outcomes if status == "error"] == []
    results = [item for _, detail in outcomes for item in detail]
    remaining = sorted(r for allowed, r in results if allowed)
    assert remaining == list(range(LIMIT))
    assert all(r == 0 for allowed, r in results if not allowed)
