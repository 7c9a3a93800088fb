"""Rate limiting is exact across processes sharing one SQLite file or PostgreSQL database
(memory:// lives inside one process; the thread test covers it)."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest

from .test_ratelimit_concurrency import (
    ALGORITHMS,
    ATTEMPTS,
    LIMIT,
    PROCESSES,
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
