"""Keyset pages at 1k, 10k and 100k users: clonestore against the raw driver, same SQL.

For each table size and backend, in one run, times ``users.page(size=50)``:

* the first page,
* a deep page (its cursor taken at the middle of the table),
* a page of one owner's memories (``memories.page(where={"user_id": ...})``),

through clonestore, and through the raw driver (sqlite3, psycopg2) executing
the very statement clonestore sent, with its parameters, on the same tables and
indexes. memory:// is timed with the same repository calls. Prints medians (µs)
and ratios. Targets (issue "Costs that do not grow with the data"): first and
deep pages within 2x of the raw indexed query, independent of depth and of the
table's size; memory:// at least 3x faster than sqlite://.

    python bench/bench_pages.py                          # 1k, 10k, 100k on all three
    python bench/bench_pages.py --sizes 1000,10000 --backends memory,sqlite

PostgreSQL: a throwaway database on ``--postgres-url`` (default
``$CLONESTORE_BENCH_POSTGRES_URL``, then ``$CLONESTORE_TEST_POSTGRES_URL``, then
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from peewee import (
    sqlite3,  # the driver module Peewee (so clonestore) runs on: pysqlite3 if installed
)

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import add_postgres_url, database, measure_interleaved

SHAPES = ("first page", "deep page", "owner's page")


def _seed(store: clonestore.Store, n: int) -> str:
    """``n`` users (created 1,000 per batch); one of them owns 500 memories. Its id."""
    done = 0
    while done < n:
        batch = min(1000, n - done)
        rows = [{"email": f"u{done + i}@example.com", "name": f"U{done + i}"} for i in range(batch)]
        store.users.create_many(rows)
        done += batch
    owner = store.users.page(size=1).items[0].id
    store.memories.create_many(
        [{"user_id": owner, "content": f"m{i}", "embedding": [1.0, float(i)]} for i in range(500)]
    )
    return owner


def _calls(store: clonestore.Store, owner: str, n: int) -> dict[str, Callable[[int], Any]]:
    # The cursor of the page that starts at the middle of the table.
    cursor = None
    for _ in range(max(1, n // 2000)):
        cursor = store.users.page(size=min(1000, n // 2), cursor=cursor).next_cursor
    return {
        "first page": lambda i: store.users.page(size=50),
        "deep page": lambda i: store.users.page(size=50, cursor=cursor),
        "owner's page": lambda i: store.memories.page(where={"user_id": owner}, size=50),
    }


def _captured(store: clonestore.Store, call: Callable[[int], Any]) -> tuple[str, Any]:
    """The one SELECT ``call`` sends, with its parameters."""
    backend: Any = store.backend
    sent: list[tuple[str, Any]] = []
    original = backend.execute

    def execute(sql: str, params: Any, mode: int) -> Any:
        sent.append((sql, params))
        return original(sql, params, mode)

    backend.execute = execute
    try:
        call(0)
    finally:
        backend.execute = original
    selects = [s for s in sent if s[0].lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, selects
    return selects[0]


def _raw(url: str) -> tuple[Callable[[str, Any], Any], Callable[[], None]]:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        return (lambda sql, p: conn.execute(sql, p).fetchall()), conn.close
    import psycopg2

    pg = psycopg2.connect(url)
    pg.autocommit = True
    cur = pg.cursor()

    def run(sql: str, params: Any) -> Any:
        cur.execute(sql, params)
        return cur.fetchall()

    return run, pg.close


def bench(backend: str, n: int, args: Any) -> dict[str, tuple[float, float | None]]:
    """shape -> (clonestore µs, raw µs or None) for one backend and table size."""
    with database(backend, args.postgres_url) as url:
        store = clonestore.open(url)
        try:
            owner = _seed(store, n)
            calls = _calls(store, owner, n)
            fns: dict[str, tuple[Callable[[int], Any], int]] = {
                shape: (fn, args.calls) for shape, fn in calls.items()
            }
            close: Callable[[], None] | None = None
            if backend != "memory":
                # Planner statistics as a running deployment has them (autovacuum on
                # PostgreSQL, PRAGMA optimize on SQLite), not as a fresh bulk load leaves them.
                store.backend.database.execute_sql("ANALYZE")  # type: ignore[attr-defined]
                run, close = _raw(url)
                for shape, fn in calls.items():
                    sql, params = _captured(store, fn)
                    fns["raw " + shape] = ((lambda i, s=sql, p=params: run(s, p)), args.calls)
            timings = measure_interleaved(fns, rounds=10, warmup=20)
            if close is not None:
                close()
        finally:
            store.close()
    out: dict[str, tuple[float, float | None]] = {}
    for shape in SHAPES:
        raw = timings.get("raw " + shape)
        out[shape] = (timings[shape].p50_us, raw.p50_us if raw else None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,postgres")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per shape")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[str, int], dict[str, tuple[float, float | None]]] = {}
    for backend in args.backends.split(","):
        for n in sizes:
            print(f"timing {backend} at {n:,} users ...", file=sys.stderr, flush=True)
            results[backend, n] = bench(backend, n, args)
    print(f"{'backend':<9} {'users':>8}  {'shape':<13} {'clonestore':>11} {'raw':>9} {'ratio':>6}")
    for (backend, n), shapes in results.items():
        for shape, (ours, raw) in shapes.items():
            ratio = f"{ours / raw:.2f}x" if raw else "-"
            raw_s = f"{raw:.1f}" if raw else "-"
            print(f"{backend:<9} {n:>8,}  {shape:<13} {ours:>9.1f}µs {raw_s:>9} {ratio:>6}")
    for n in sizes:
        if ("memory", n) in results and ("sqlite", n) in results:
            for shape in SHAPES:
                mem, lite = results["memory", n][shape][0], results["sqlite", n][shape][0]
                print(f"sqlite/memory at {n:,}, {shape}: {lite / mem:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
