"""PostgreSQL with pgvector, vectors stored once (issue 20 items 5 and 6): as ratios in one
run, on one throwaway database,

* **load**: ``memories.create_many`` of N x 384 float32 embeddings over 10 owners against
  a raw binary ``COPY`` of (uuid, uuid, text, ``vector(384)``) rows built with numpy
  (``bench_bulk_vectors.raw_copy``; target <= 2x);
* **size**: the ``memories`` table with its indexes (``pg_total_relation_size``) against a
  plain ``(id, owner, vector(384))`` table of the same rows with its primary key and an
  index on the owner (target <= 1.2x);
* **raw query**: the nearest-neighbour statement by hand, ``SELECT id FROM <table> WHERE
  <owner> = %s ORDER BY embedding <=> %s::vector LIMIT 10``, on both tables, timed in
  alternating rounds (target <= 1.1x); and ``similar(limit=10)`` (exact, settled) beside it.

    python bench/bench_pg_storage.py [--rows 10000] [--queries 30] [--repeat 3] [--pgvector URL]

``--pgvector`` names a server with pgvector (default: a throwaway one from ``pgserver``).
The machine's load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import psycopg2
from bench_bulk_vectors import raw_copy
from bench_pg_vectors import given, pgserver_url
from timing import measure_interleaved, throwaway_postgres

import clonestore

DIMS = 384
OWNERS = 10
LIMIT = 10


def load(url: str, matrix: np.ndarray) -> tuple[float, list[str]]:
    """Seconds for ``create_many`` of the rows in one call (owners made first, untimed)."""
    with clonestore.open(url) as store:
        owners = [store.users.create(email=f"u{i}@example.com", name="U").id for i in range(OWNERS)]
        rows = [
            {"user_id": owners[i % OWNERS], "content": f"m{i:07d}", "embedding": matrix[i]}
            for i in range(len(matrix))
        ]
        start = time.perf_counter()
        store.memories.create_many(rows)
        return time.perf_counter() - start, owners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="loads of each way (medians)")
    parser.add_argument("--pgvector", help="a PostgreSQL server with pgvector")
    args = parser.parse_args()
    matrix = np.random.default_rng(1).standard_normal((args.rows, DIMS)).astype(np.float32)
    queries = np.random.default_rng(2).standard_normal((64, DIMS)).astype(np.float32)
    server: AbstractContextManager[str] = given(args.pgvector) if args.pgvector else pgserver_url()
    with server as server_url:
        copies, loads = [], []
        for _ in range(args.repeat - 1):  # alternately, so that the load weighs on both
            with throwaway_postgres(server_url) as url:
                copies.append(raw_copy(url, matrix))
            with throwaway_postgres(server_url) as url:
                loads.append(load(url, matrix)[0])
        with throwaway_postgres(server_url) as url:
            copies.append(raw_copy(url, matrix))
        with throwaway_postgres(server_url) as url:
            seconds, owners = load(url, matrix)
            loads.append(seconds)
            copied, loaded = statistics.median(copies), statistics.median(loads)
            conn = psycopg2.connect(url)
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute(
                f"CREATE TABLE plain (id text PRIMARY KEY, owner text NOT NULL, "
                f"embedding vector({DIMS}) NOT NULL)"
            )
            cur.execute("CREATE INDEX plain_owner ON plain (owner)")
            cur.execute("INSERT INTO plain SELECT id, user_id, embedding FROM memories")
            cur.execute("VACUUM ANALYZE memories")
            cur.execute("VACUUM ANALYZE plain")
            sizes = {}
            for table in ("memories", "plain"):
                cur.execute("SELECT pg_total_relation_size(%s)", (table,))
                sizes[table] = cur.fetchone()[0]
            texts = [str(q.tolist()) for q in queries]

            def raw(table: str, owner: str) -> tuple[object, int]:
                sql = (
                    f"SELECT id FROM {table} WHERE {owner} = %s "
                    f"ORDER BY embedding <=> %s::vector LIMIT {LIMIT}"
                )

                def run(i: int) -> object:
                    cur.execute(sql, (owners[i % OWNERS], texts[i % len(texts)]))
                    return cur.fetchall()

                return run, args.queries

            with clonestore.open(url) as store:

                def similar(i: int) -> object:
                    return store.memories.similar(owners[i % OWNERS], queries[i % len(queries)],
                                                  limit=LIMIT)  # fmt: skip

                timings = measure_interleaved(
                    {
                        "raw on memories": raw("memories", "user_id"),
                        "raw on plain": raw("plain", "owner"),
                        "similar": (similar, args.queries),
                    },
                    rounds=5,
                    warmup=5,
                )
            conn.close()
    load1 = os.getloadavg()[0]
    print(f"pgvector, {args.rows:,} x {DIMS} float32 memories, {OWNERS} owners "
          f"(load average {load1:.1f} on {os.cpu_count()} cores)")  # fmt: skip
    runs = " ".join(f"{x:.2f}" for x in loads), " ".join(f"{x:.2f}" for x in copies)
    print(f"  (medians of {args.repeat} loads each; create_many {runs[0]} s, COPY {runs[1]} s)")
    print(f"  create_many                {loaded:8.2f} s  {loaded / args.rows * 1e6:7.1f} us/row")
    print(f"  raw binary COPY            {copied:8.2f} s  {copied / args.rows * 1e6:7.1f} us/row")
    print(f"  -> create_many / raw COPY  {loaded / copied:6.2f}x  (target <= 2)")
    print(f"  memories + indexes         {sizes['memories'] / 2**20:8.1f} MB")
    print(f"  plain + indexes            {sizes['plain'] / 2**20:8.1f} MB")
    size = sizes["memories"] / sizes["plain"]
    print(f"  -> size ratio              {size:6.2f}x  (target <= 1.2)")
    mine, plain = timings["raw on memories"], timings["raw on plain"]
    for label, timing in timings.items():
        print(f"  {label:<26} p50 {timing.p50_us / 1000:8.2f} ms")
    print(f"  -> raw query ratio         {mine.p50_us / plain.p50_us:6.2f}x  (target <= 1.1)")
    print(f"  -> similar / raw on plain  {timings['similar'].p50_us / plain.p50_us:6.2f}x")


if __name__ == "__main__":
    main()
