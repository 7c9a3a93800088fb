"""Rate limiting is exact under concurrency: threads and processes on one database.

With limit 100 and 1,000 attempts from 4 processes of 4 threads each (or 16
threads), exactly 100 are admitted per algorithm, with remaining counts
99..0 each handed out once (so none was refused before the limit was
reached), and no attempt fails.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import clonestore

ALGORITHMS = ("fixed_window", "sliding_window", "token_bucket")
LIMIT = 100
ATTEMPTS = 1_000
PROCESSES = 4
THREADS = 4
# The start of a window: every attempt falls in it, whatever the algorithm.
FROZEN = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _hammer(store: clonestore.Store, attempts: int, barrier: Any) -> list[tuple[str, bool, int]]:
    """``attempts`` checks per algorithm from THREADS threads; (algorithm, allowed, remaining)."""
    results: list[tuple[str, bool, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    local_start = threading.Barrier(THREADS)

    def work(count: int) -> None:
        local_start.wait()
        mine = []
        try:
            for _ in range(count):
                for algorithm in ALGORITHMS:
                    d = store.ratelimit.check_and_increment(
                        "user-1", algorithm, LIMIT, 3600, algorithm=algorithm
                    )
                    mine.append((algorithm, d.allowed, d.remaining))
        except BaseException as exc:
            errors.append(exc)
        with lock:
            results.extend(mine)

    if barrier is not None:
        barrier.wait(timeout=60)
    threads = [threading.Thread(target=work, args=(n,)) for n in _shares(attempts, THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def _process(url: str, attempts: int, barrier: Any, queue: Any) -> None:
    """One worker process: its own store on the shared database."""
    try:
        store = clonestore.open(url, plugins=["ratelimit"], clock=lambda: FROZEN)
        try:
            queue.put(("ok", _hammer(store, attempts, barrier)))
        finally:
            store.close()
    except BaseException as exc:  # reported to the parent
        queue.put(("error", repr(exc)))


def _check(results: list[tuple[str, bool, int]]) -> dict[str, int]:
    assert len(results) == ATTEMPTS * len(ALGORITHMS)
    admitted: dict[str, int] = {}
    for algorithm in ALGORITHMS:
        mine = [(allowed, remaining) for a, allowed, remaining in results if a == algorithm]
        remaining = sorted(r for allowed, r in mine if allowed)
        admitted[algorithm] = len(remaining)
        assert remaining == list(range(LIMIT)), algorithm
        assert all(r == 0 for allowed, r in mine if not allowed)
    return admitted


def test_threads_admit_exactly_the_limit(store_factory):
    """16 threads sharing one store: exactly 100 of 1,000 admitted per algorithm."""
    store = store_factory(plugins=["ratelimit"], clock=lambda: FROZEN)
    started = time.monotonic()
    results: list[tuple[str, bool, int]] = []
    parts = _shares(ATTEMPTS, 4)
    outs: list[list[tuple[str, bool, int]]] = [[] for _ in parts]

    def run(i: int) -> None:
        outs[i] = _hammer(store, parts[i], None)

    groups = [threading.Thread(target=run, args=(i,)) for i in range(len(parts))]
    for group in groups:
        group.start()
    for group in groups:
        group.join(timeout=120)
    for out in outs:
        results.extend(out)
    assert _check(results) == dict.fromkeys(ALGORITHMS, LIMIT)
    assert time.monotonic() - started < 30
