"""Concurrency on shared storage (SQLite file, PostgreSQL): 8 threads and 4 processes.

Races that must have exactly one outcome: one winner per email, no lost turn or
cent, every stale version detected, never two active models.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

import clonestore
from bench.soak import Ledger, run_workload, verify
from clonestore import AlreadyExists, Conflict
from clonestore.query import And, Cond
from tests.reliability import _workers

THREADS, PROCESSES = 8, 4


@pytest.fixture
def clonestore_url(shared_url: str) -> str:
    """Storage several processes share: the matrix without memory://."""
    return shared_url


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessPoolExecutor]:
    """Four worker processes (spawned once for the module: interpreter start-up is slow)."""
    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(time.sleep, [0] * PROCESSES))
        yield pool


def in_threads(fn: Callable[[int], Any], n: int = THREADS) -> list[Future[Any]]:
    with ThreadPoolExecutor(n) as pool:
        return [pool.submit(fn, i) for i in range(n)]


def test_mixed_workload_loses_nothing(store: clonestore.Store, clonestore_url: str,
                                      processes: ProcessPoolExecutor) -> None:
    """8 threads and 4 processes writing at once: every acknowledged write is there, session
    totals equal their turns, and nothing but clonestore errors is raised."""
    remote = [processes.submit(_workers.mixed_workload, clonestore_url, 2.0, 100 + i)
              for i in range(PROCESSES)]
    ledger, stop = Ledger(), threading.Event()
    threads = [threading.Thread(target=run_workload, args=(store, ledger, stop, i))
               for i in range(THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(30)
    for future in remote:
        result = future.result(60)
        assert result["escaped"] == []
        ledger.ops += result["ops"]
        for name in ("users", "names", "sessions", "turns", "memories"):
            getattr(ledger, name).update(result[name])
    assert not ledger.escaped, ledger.escaped[:3]
    assert len(ledger.turns) > 20
    assert verify(store, ledger) == []


def test_email_race_has_one_winner(store: clonestore.Store, clonestore_url: str,
                                   processes: ProcessPoolExecutor) -> None:
    """The same email (in different cases) created by 8 threads and 4 processes at once:
    exactly one succeeds, every other gets AlreadyExists."""
    for round_ in range(3):
        email = f"race{round_}@example.com"
        start = time.time() + 1.0
        remote = [processes.submit(_workers.create_at, clonestore_url, start,
                                   email.upper() if i % 2 else email) for i in range(PROCESSES)]

        def local(i: int, email: str = email, start: float = start) -> str:
            time.sleep(max(0.0, start - time.time()))
            try:
                store.users.create(email=email.title() if i % 2 else email, name="racer")
            except AlreadyExists:
                return "AlreadyExists"
            return "created"

        outcomes = Counter(f.result() for f in in_threads(local))
        outcomes.update(f.result(60) for f in remote)
        assert outcomes == {"created": 1, "AlreadyExists": THREADS + PROCESSES - 1}
        assert store.users.count(where={"email": email}) == 1


def test_concurrent_turns_lose_no_turn_or_cent(store: clonestore.Store, clonestore_url: str,
                                               processes: ProcessPoolExecutor) -> None:
    """add_turn on one session from 8 threads and 4 processes: every turn kept, totals exact,
    turn indexes 1..n without gaps or repeats."""
    user = store.users.create(email="turns@example.com", name="t")
    session = store.sessions.create(user_id=user.id)
    remote = [processes.submit(_workers.add_turns, clonestore_url, session.id, 10, 50 + i)
              for i in range(PROCESSES)]

    def local(i: int) -> list[tuple[str, int, str]]:
        done = []
        for j in range(15):
            latency, cost = i * 100 + j, Decimal(i * 1000 + j) / 10**6
            turn = store.sessions.add_turn(session.id, llm_latency_ms=latency, llm_cost=cost)
            done.append((turn.id, latency, str(cost)))
        return done

    acked = [t for f in in_threads(local) for t in f.result()]
    acked += [t for f in remote for t in f.result(60)]
    turns = store.turns.find_many(where={"session_id": session.id}, order_by="turn_index")
    assert sorted((t.id, t.latency_ms, t.cost) for t in turns) == sorted(
        (i, latency, Decimal(cost)) for i, latency, cost in acked
    )
    assert [t.turn_index for t in turns] == list(range(1, len(acked) + 1))
    got = store.sessions.get(session.id)
    assert got.total_turns == len(acked) == THREADS * 15 + PROCESSES * 10
    assert got.total_latency_ms == sum(t[1] for t in acked)
    assert got.total_cost == sum(Decimal(t[2]) for t in acked)


def test_expected_version_detects_every_conflict(store: clonestore.Store) -> None:
    """Concurrent updates with expected_version: each success saw the version it expected, the
    rest got Conflict, and the final version is 1 + the number of successes."""
    user = store.users.create(email="cas@example.com", name="v")

    def worker(i: int) -> list[tuple[int, int]]:
        won = []
        for j in range(15):
            seen = store.users.get(user.id).version
            try:
                after = store.users.update(user.id, expected_version=seen, name=f"{i}-{j}")
            except Conflict:
                continue
            won.append((seen, after.version))
        return won

    wins = [w for f in in_threads(worker) for w in f.result()]
    assert all(after == seen + 1 for seen, after in wins)
    assert len({seen for seen, _ in wins}) == len(wins)  # no version was won twice
    assert store.users.get(user.id).version == 1 + len(wins)


def test_activation_never_leaves_two_active(store: clonestore.Store) -> None:
    """Racing activations of one user's voice models: a reader sampling the table directly
    never sees two active, and exactly one is active at the end."""
    user = store.users.create(email="act@example.com", name="a")
    models = [store.voice_models.create(user_id=user.id, name=f"m{i}", provider="p").id
              for i in range(4)]
    spec = store.tables["voice_models"]
    active = And((Cond("user_id", "eq", user.id), Cond("is_active", "eq", True)))
    stop, seen = threading.Event(), Counter[int]()

    def watch() -> None:
        while not stop.is_set():
            seen[len(store.backend.select(spec, active))] += 1

    watcher = threading.Thread(target=watch)
    watcher.start()

    def activate(i: int) -> Counter[str]:
        rng, outcomes = random.Random(i), Counter[str]()
        for _ in range(4):
            try:
                store.voice_models.activate(rng.choice(models))
                outcomes["activated"] += 1
            except Conflict:
                outcomes["Conflict"] += 1
        return outcomes

    try:
        outcomes = sum((f.result() for f in in_threads(activate)), Counter[str]())
    finally:
        stop.set()
        watcher.join(10)
    assert outcomes["activated"] > 0, outcomes
    assert set(seen) <= {0, 1}, seen
    assert seen[1] > 0, seen
    assert len(store.backend.select(spec, active)) == 1
