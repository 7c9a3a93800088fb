"""open_async against the raw async drivers and the sync API, as ratios in one run.

1. Per-call overhead: ``await store.users.get(id)`` against the same point read with
   raw asyncpg (one connection; asyncpg's own pool for reference) and raw aiosqlite
   (``execute_fetchall``, one hop to its thread); memory:// for reference. The ways
   are timed in alternating rounds in one event loop (a slow moment of the shared
   machine weighs on all alike); medians of the rounds, wall clock and the client's
   CPU time.
2. Throughput and latency: 200 concurrent tasks each doing ``users.get`` +
   ``sessions.add_turn`` on PostgreSQL through ``open_async`` (pool of 16), against the
   sync API (pool of 16) on 16 threads, two ways:

   - ``sync, tasks -> 16 threads``: the same 200 asyncio tasks, each call handed to a
     16-thread pool (``run_in_executor``), what an asyncio server does without
     ``open_async``; a pair's latency includes waiting for a thread, as the async
     one includes waiting for a connection;
   - ``sync, 16 threads``: each thread runs tasks one after another; a pair's latency
     leaves out the time a task waited for a thread, so its p50 and p99 are not
     comparable to the others (shown as the pool's raw throughput).

   The three are run in turn ``--repeat`` times; medians.

    python bench/bench_async.py [--postgres URL] [--calls N] [--rounds N] [--repeat N]

``--postgres`` names a server; a throwaway database is made on it and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiosqlite
import asyncpg
from timing import throwaway_postgres

import clonestore

GET_SQL = 'SELECT * FROM "users" WHERE "id" = $1'
POOL = 16


async def _alternate(
    ways: dict[str, Callable[[], Awaitable[Any]]], calls: int, rounds: int = 20
) -> dict[str, tuple[float, float]]:
    """Median microseconds per call of each way (wall, client CPU), over alternating rounds."""
    per_round = max(1, calls // rounds)
    wall: dict[str, list[float]] = {label: [] for label in ways}
    cpu: dict[str, list[float]] = {label: [] for label in ways}
    for call in ways.values():  # warm up: connections made, statements prepared
        for _ in range(100):
            await call()
    for _ in range(rounds):
        for label, call in ways.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(per_round):
                await call()
            wall[label].append((time.perf_counter() - started) / per_round * 1e6)
            cpu[label].append((time.process_time() - cpu_started) / per_round * 1e6)
    return {
        label: (statistics.median(wall[label]), statistics.median(cpu[label])) for label in ways
    }


def _connect_kwargs(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname,
        "port": parts.port,
        "user": parts.username,
        "password": parts.password,
        "database": parts.path.lstrip("/"),
    }


async def _per_call_memory(calls: int) -> float:
    async with clonestore.open_async("memory://") as store:
        user = await store.users.create(email="bench@example.com", name="Bench")
        result = await _alternate({"memory": lambda: store.users.get(user.id)}, calls)
        return result["memory"][0]


async def _per_call_sqlite(path: str, calls: int) -> dict[str, tuple[float, float]]:
    sql = GET_SQL.replace("$1", "?")
    async with clonestore.open_async(f"sqlite:///{path}") as store:
        user = await store.users.create(email="bench@example.com", name="Bench")
        async with aiosqlite.connect(path) as conn:
            return await _alternate(
                {
                    "ours": lambda: store.users.get(user.id),
                    "raw": lambda: conn.execute_fetchall(sql, (user.id,)),
                },
                calls,
            )


async def _per_call_postgres(url: str, calls: int) -> dict[str, tuple[float, float]]:
    async with clonestore.open_async(url, pool_size=POOL) as store:
        user = await store.users.create(email="bench@example.com", name="Bench")
        conn = await asyncpg.connect(**_connect_kwargs(url))
        pool = await asyncpg.create_pool(min_size=1, max_size=POOL, **_connect_kwargs(url))
        try:
            return await _alternate(
                {
                    "ours": lambda: store.users.get(user.id),
                    "raw": lambda: conn.fetchrow(GET_SQL, user.id),
                    "raw pool": lambda: pool.fetchrow(GET_SQL, user.id),
                },
                calls,
            )
        finally:
            await conn.close()
            await pool.close()


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """One run's pairs per second, p50 and p99 (ms) and client CPU per pair (µs)."""

    def __init__(self, pairs: int, wall: float, cpu: float, latencies: list[float]) -> None:
        self.rate = pairs / wall
        self.p50 = statistics.median(latencies) * 1e3
        self.p99 = _percentile(latencies, 0.99) * 1e3
        self.cpu_us = cpu / pairs * 1e6


async def _async_load(url: str, tasks: int, rounds: int) -> Load:
    async with clonestore.open_async(url, pool_size=POOL, pool_timeout=60) as store:
        users = [
            await store.users.create(email=f"load-{i}-{time.time_ns()}@example.com", name="L")
            for i in range(tasks)
        ]
        sessions = [await store.sessions.create(user_id=u.id) for u in users]
        latencies: list[float] = []

        async def work(i: int) -> None:
            for _ in range(rounds):
                started = time.perf_counter()
                await store.users.get(users[i].id)
                await store.sessions.add_turn(sessions[i].id, asr_latency_ms=5)
                latencies.append(time.perf_counter() - started)

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(work(i) for i in range(tasks)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        return Load(tasks * rounds, wall, cpu, latencies)


def _sync_fixture(store: clonestore.Store, tasks: int) -> tuple[list[Any], list[Any]]:
    users = [
        store.users.create(email=f"sload-{i}-{time.time_ns()}@example.com", name="L")
        for i in range(tasks)
    ]
    return users, [store.sessions.create(user_id=u.id) for u in users]


def _sync_threads_load(url: str, tasks: int, rounds: int) -> Load:
    with clonestore.open(url, pool_size=POOL, pool_timeout=60) as store:
        users, sessions = _sync_fixture(store, tasks)
        latencies: list[float] = []

        def work(i: int) -> None:
            for _ in range(rounds):
                started = time.perf_counter()
                store.users.get(users[i].id)
                store.sessions.add_turn(sessions[i].id, asr_latency_ms=5)
                latencies.append(time.perf_counter() - started)

        started, cpu_started = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(POOL) as pool:
            list(pool.map(work, range(tasks)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        return Load(tasks * rounds, wall, cpu, latencies)


def _sync_executor_load(url: str, tasks: int, rounds: int) -> Load:
    with clonestore.open(url, pool_size=POOL, pool_timeout=60) as store:
        users, sessions = _sync_fixture(store, tasks)

        async def drive() -> Load:
            loop = asyncio.get_running_loop()
            latencies: list[float] = []
            with ThreadPoolExecutor(POOL) as pool:

                async def work(i: int) -> None:
                    for _ in range(rounds):
                        started = time.perf_counter()
                        await loop.run_in_executor(pool, store.users.get, users[i].id)
                        await loop.run_in_executor(
                            pool, lambda: store.sessions.add_turn(sessions[i].id, asr_latency_ms=5)
                        )
                        latencies.append(time.perf_counter() - started)

                started, cpu_started = time.perf_counter(), time.process_time()
                await asyncio.gather(*(work(i) for i in range(tasks)))
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            return Load(tasks * rounds, wall, cpu, latencies)

        return asyncio.run(drive())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CLONESTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres"
        ),
    )
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5, help="get + add_turn per task")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="load runs of each way")
    args = parser.parse_args()

    print("1. per-call: await store.users.get(id), µs per call (median of alternating rounds)")
    print(f"  memory://                {asyncio.run(_per_call_memory(args.calls)):8.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        lite = asyncio.run(_per_call_sqlite(f"{tmp}/bench.db", args.calls))
    (ours, ours_cpu), (raw, raw_cpu) = lite["ours"], lite["raw"]
    print(
        f"  sqlite:// (aiosqlite)    {ours:8.1f}   raw aiosqlite {raw:8.1f}   "
        f"{ours / raw:.2f}x   (client CPU {ours_cpu:.0f} vs {raw_cpu:.0f}: "
        f"{ours_cpu / raw_cpu:.2f}x)"
    )
    with throwaway_postgres(args.postgres, "bench_async") as url:
        pg = asyncio.run(_per_call_postgres(url, args.calls))
        (ours, ours_cpu), (raw, raw_cpu), (pooled, _) = pg["ours"], pg["raw"], pg["raw pool"]
        print(
            f"  postgresql:// (asyncpg)  {ours:8.1f}   raw asyncpg   {raw:8.1f}   "
            f"{ours / raw:.2f}x   (client CPU {ours_cpu:.0f} vs {raw_cpu:.0f}: "
            f"{ours_cpu / raw_cpu:.2f}x; asyncpg's pool.fetchrow {pooled:.1f})"
        )

        print(
            f"2. {args.tasks} tasks x {args.rounds} x (get + add_turn), PostgreSQL, pool {POOL}, "
            f"median of {args.repeat} alternating runs"
        )
        ways: dict[str, Callable[[], Load]] = {
            "open_async, 200 tasks": lambda: asyncio.run(
                _async_load(url, args.tasks, args.rounds)
            ),
            f"sync, tasks -> {POOL} threads": lambda: _sync_executor_load(
                url, args.tasks, args.rounds
            ),
            f"sync, {POOL} threads": lambda: _sync_threads_load(url, args.tasks, args.rounds),
        }
        runs: dict[str, list[Load]] = {label: [] for label in ways}
        for _ in range(args.repeat):
            for label, run in ways.items():
                runs[label].append(run())
        summary: dict[str, tuple[float, float, float, float]] = {}
        for label, loads in runs.items():
            summary[label] = (
                statistics.median(load.rate for load in loads),
                statistics.median(load.p50 for load in loads),
                statistics.median(load.p99 for load in loads),
                statistics.median(load.cpu_us for load in loads),
            )
            rate, p50, p99, cpu = summary[label]
            print(
                f"  {label:26s} {rate:6.0f} pairs/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"
                f"   client CPU {cpu:5.0f} µs/pair"
            )
        a_rate, _, a_p99, _ = summary["open_async, 200 tasks"]
        e_rate, _, e_p99, _ = summary[f"sync, tasks -> {POOL} threads"]
        t_rate, _, _, _ = summary[f"sync, {POOL} threads"]
        print(
            f"  throughput async/sync: {a_rate / e_rate:.2f}x (tasks -> threads), "
            f"{a_rate / t_rate:.2f}x ({POOL} threads);  p99 async/sync: {a_p99 / e_p99:.2f}x"
        )


if __name__ == "__main__":
    main()
