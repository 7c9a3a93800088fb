"""open_async against the raw async drivers and the sync API, as ratios in one run.

1. Per-call overhead: ``await store.users.get(id)`` against the same point read with
   raw asyncpg (one connection, and asyncpg's own pool) and raw aiosqlite
   (``execute_fetchall``, one hop to its thread); memory:// for reference.
2. Throughput and latency: 200 concurrent tasks each doing ``users.get`` + ``sessions.add_turn``
   on PostgreSQL through ``open_async`` (pool of 16), against the sync API driven by a
   16-thread pool (pool of 16).

    python bench/bench_async.py [--postgres URL] [--calls N] [--rounds N]

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiosqlite
import asyncpg
from timing import throwaway_postgres

import clonestore

GET_SQL = 'SELECT * FROM "users" WHERE "id" = $1'
POOL = 16


async def _per_call(url: str, calls: int) -> tuple[float, str]:
    options = {"pool_size": POOL} if url.startswith("postgresql") else {}
    async with clonestore.open_async(url, **options) as s:
        user = await s.users.create(email=f"bench-{time.time_ns()}@example.com", name="Bench")
        for _ in range(200):
            await s.users.get(user.id)
        started = time.perf_counter()
        for _ in range(calls):
            await s.users.get(user.id)
        return (time.perf_counter() - started) / calls * 1e6, user.id


async def _raw_asyncpg(url: str, user_id: str, calls: int) -> tuple[float, float]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    kwargs: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port,
        "user": parts.username,
        "password": parts.password,
        "database": parts.path.lstrip("/"),
    }
    conn = await asyncpg.connect(**kwargs)
    for _ in range(200):
        await conn.fetchrow(GET_SQL, user_id)
    started = time.perf_counter()
    for _ in range(calls):
        await conn.fetchrow(GET_SQL, user_id)
    one = (time.perf_counter() - started) / calls * 1e6
    await conn.close()
    pool = await asyncpg.create_pool(min_size=1, max_size=POOL, **kwargs)
    started = time.perf_counter()
    for _ in range(calls):
        await pool.fetchrow(GET_SQL, user_id)
    pooled = (time.perf_counter() - started) / calls * 1e6
    await pool.close()
    return one, pooled


async def _raw_aiosqlite(path: str, user_id: str, calls: int) -> float:
    sql = GET_SQL.replace("$1", "?")
    async with aiosqlite.connect(path) as conn:
        for _ in range(200):
            await conn.execute_fetchall(sql, (user_id,))
        started = time.perf_counter()
        for _ in range(calls):
            await conn.execute_fetchall(sql, (user_id,))
        return (time.perf_counter() - started) / calls * 1e6


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _async_load(url: str, tasks: int, rounds: int) -> tuple[float, list[float]]:
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

        started = time.perf_counter()
        await asyncio.gather(*(work(i) for i in range(tasks)))
        return tasks * rounds / (time.perf_counter() - started), latencies


def _sync_load(url: str, tasks: int, rounds: int) -> tuple[float, list[float]]:
    with clonestore.open(url, pool_size=POOL, pool_timeout=60) as store:
        users = [
            store.users.create(email=f"sload-{i}-{time.time_ns()}@example.com", name="L")
            for i in range(tasks)
        ]
        sessions = [store.sessions.create(user_id=u.id) for u in users]
        latencies: list[float] = []

        def work(i: int) -> None:
            for _ in range(rounds):
                started = time.perf_counter()
                store.users.get(users[i].id)
                store.sessions.add_turn(sessions[i].id, asr_latency_ms=5)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        with ThreadPoolExecutor(POOL) as pool:
            list(pool.map(work, range(tasks)))
        return tasks * rounds / (time.perf_counter() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CLONESTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres"
        ),
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="get + add_turn per task")
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()

    print("1. per-call: await store.users.get(id), microseconds per call")
    memory_us, _ = asyncio.run(_per_call("memory://", args.calls))
    print(f"  memory://            {memory_us:8.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/bench.db"
        ours, user_id = asyncio.run(_per_call(f"sqlite:///{path}", args.calls))
        raw = asyncio.run(_raw_aiosqlite(path, user_id, args.calls))
        print(f"  sqlite:// (aiosqlite) {ours:8.1f}   raw aiosqlite {raw:8.1f}   {ours / raw:.2f}x")
    with throwaway_postgres(args.postgres, "bench_async") as url:
        ours, user_id = asyncio.run(_per_call(url, args.calls))
        one, pooled = asyncio.run(_raw_asyncpg(url, user_id, args.calls))
        print(
            f"  postgresql:// (asyncpg) {ours:8.1f}   raw asyncpg {one:8.1f} "
            f"(pool.fetchrow {pooled:8.1f})   ratio {ours / one:.2f}x "
            f"({ours / pooled:.2f}x against the pool)"
        )

        print(f"2. {args.tasks} tasks x {args.rounds} x (get + add_turn), PostgreSQL, pool {POOL}")
        a_rate, a_lat = asyncio.run(_async_load(url, args.tasks, args.rounds))
        s_rate, s_lat = _sync_load(url, args.tasks, args.rounds)
        for name, rate, lat in (
            ("open_async, 200 tasks", a_rate, a_lat),
            (f"sync, {POOL} threads", s_rate, s_lat),
        ):
            print(
                f"  {name:24s} {rate:8.0f} pairs/s   p50 {statistics.median(lat) * 1e3:7.1f} ms"
                f"   p99 {_percentile(lat, 0.99) * 1e3:7.1f} ms"
            )
        print(f"  throughput ratio async/sync {a_rate / s_rate:.2f}x")


if __name__ == "__main__":
    main()
