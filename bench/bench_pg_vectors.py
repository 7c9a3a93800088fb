"""PostgreSQL vector search: ``memories.similar(limit=10)`` against the raw engine query, as
ratios in one run.

For each size (memories of 384 dimensions, spread over 10 users; one user's are searched,
so a search looks at a tenth of the table), on a PostgreSQL with pgvector:

* ``similar``: exact (pgvector lists candidates, settled in float64);
* ``raw pgvector``: the statement by hand with psycopg2, ``SELECT ... WHERE user_id = %s
  AND deleted_at IS NULL ORDER BY embedding <=> %s::vector LIMIT 10`` (float32 order,
  no settling);
* ``old scan``: what ``similar`` did before: every matching row to Python, scored there
  (:func:`clonestore.vectors.nearest_reference` over ``backend.select``);
* ``fallback``: ``similar`` on a server without pgvector (exact SQL over the stored arrays),
  when ``--plain`` names one;
* ``hnsw``: ``similar(approximate=True)`` with ``vector_index="hnsw"`` (built when the store
  opens, timed), p50/p99 and recall@10 against the exact answer, per ``ef_search``.

The embeddings are clustered (points around 200 random centres), as real embeddings are;
queries are fresh points from the same distribution.

    python bench/bench_pg_vectors.py [--pgvector URL] [--plain URL] [--sizes 1000,10000]
        [--queries 30] [--ef-search 40,100,200]

``--pgvector`` names a server with pgvector (default: a throwaway one from ``pgserver``);
``--plain`` a server without it (e.g. postgresql://postgres@127.0.0.1:5432/postgres).
Throwaway databases are made on them and dropped after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import psycopg2
from timing import Timing, measure_interleaved, throwaway_postgres

import clonestore
from clonestore.query import And, Cond
from clonestore.records import TABLES
from clonestore.vectors import nearest_reference

DIMS = 384
USERS = 10
LIMIT = 10
# Every column of the rows, as similar() returns them.
RAW_SQL = (
    "SELECT " + ", ".join(c.name for c in TABLES["memories"].columns) + " FROM memories "
    "WHERE user_id = %s AND deleted_at IS NULL ORDER BY embedding <=> %s::vector LIMIT 10"
)


@contextmanager
def pgserver_url() -> Iterator[str]:
    """A throwaway PostgreSQL 16 with pgvector from pgserver."""
    import pgserver

    tmp = tempfile.mkdtemp(prefix="clonestore-bench-pg-")
    os.chmod(tmp, 0o755)  # as root, pgserver's postgres user must reach the data
    server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
    try:
        uri = server.get_uri()
        socket_dir = uri.partition("host=")[2]
        from urllib.parse import quote

        yield f"postgresql://postgres@{quote(socket_dir, safe='')}/postgres"
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def given(url: str) -> Iterator[str]:
    yield url


def embeddings(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    labels = rng.integers(0, len(centres), n)
    return centres[labels] + 0.6 * rng.standard_normal((n, DIMS))


def load(store: Any, n: int, centres: np.ndarray, seed: int) -> list[str]:
    """``n`` memories over 10 users (create_many in batches: COPY); the users' ids."""
    rng = np.random.default_rng(seed)
    users = [store.users.create(email=f"u{i}@example.com", name=f"U{i}").id for i in range(USERS)]
    batch = 5000
    for start in range(0, n, batch):
        count = min(batch, n - start)
        vectors = embeddings(rng, centres, count).tolist()
        store.memories.create_many(
            [
                {"user_id": users[(start + i) % USERS], "content": f"m{start + i}", "embedding": v}
                for i, v in enumerate(vectors)
            ]
        )
    with psycopg2.connect(store.backend.url) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE memories")
    return users


def timed(fn: Callable[[int], Any], calls: int) -> Timing:
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - start)
    return Timing(samples)


def line(label: str, timing: Timing, base: Timing | None = None, extra: str = "") -> None:
    ratio = f"  {timing.p50_us / base.p50_us:5.2f}x raw" if base else ""
    print(
        f"  {label:<26} p50 {timing.p50_us / 1000:9.2f} ms  p99 {timing.p99_us / 1000:9.2f} ms"
        f"{ratio}{extra}",
        flush=True,
    )


def bench_size(args: argparse.Namespace, pgvector: str, n: int) -> None:
    print(f"\n{n} memories x {DIMS} dims, 10 users (searching one: {n // USERS} rows)")
    centres = np.random.default_rng(1).standard_normal((200, DIMS))
    queries = embeddings(np.random.default_rng(2), centres, args.queries).tolist()
    spec = TABLES["memories"]
    with throwaway_postgres(pgvector, "bench_vectors") as url:
        started = time.perf_counter()
        with clonestore.open(url) as store:
            users = load(store, n, centres, seed=3)
            print(f"  loaded in {time.perf_counter() - started:.1f} s", flush=True)
            user = users[0]
            conn = psycopg2.connect(url)
            cur = conn.cursor()

            def raw(i: int) -> Any:
                query = "[" + ",".join(map(repr, queries[i % len(queries)])) + "]"
                cur.execute(RAW_SQL, (user, query))
                return cur.fetchall()

            def similar(i: int) -> Any:
                return store.memories.similar(user, queries[i % len(queries)], limit=LIMIT)

            rounds = max(1, min(10, args.queries))
            calls = max(rounds, args.queries)
            found = measure_interleaved(
                {"raw": (raw, calls), "similar": (similar, calls)}, rounds=rounds, warmup=3
            )
            line("raw pgvector", found["raw"])
            line("similar (exact)", found["similar"], found["raw"])
            where = And((Cond("user_id", "eq", user), Cond("deleted_at", "isnull", True)))

            def old_scan(i: int) -> Any:
                rows = store.backend.select(spec, where)
                query = queries[i % len(queries)]
                return nearest_reference(rows, "embedding", query, "cosine", LIMIT)

            line("old scan (Python)", timed(old_scan, 3 if n >= 50_000 else 10), found["raw"])
            exact = [
                [r.memory.content for r in store.memories.similar(user, q, limit=LIMIT)]
                for q in queries
            ]
            conn.close()
            if args.plain:
                bench_fallback(args, n, centres, queries, exact, found["raw"])
        for ef in args.ef_search:
            bench_hnsw(url, user, queries, exact, ef, found["raw"])


def bench_fallback(
    args: argparse.Namespace,
    n: int,
    centres: np.ndarray,
    queries: list[list[float]],
    exact: list[list[str]],
    raw: Timing,
) -> None:
    with throwaway_postgres(args.plain, "bench_vectors") as url, clonestore.open(url) as store:
        users = load(store, n, centres, seed=3)
        engine = store.health()["vector_search"]["engine"]
        user = users[0]
        same = all(
            [r.memory.content for r in store.memories.similar(user, q, limit=LIMIT)] == want
            for q, want in zip(queries[:3], exact, strict=False)
        )
        calls = 3 if n >= 50_000 else 10
        timing = timed(
            lambda i: store.memories.similar(user, queries[i % len(queries)], limit=LIMIT), calls
        )
        line(f"fallback ({engine}, no pgvector)", timing, raw, f"  same answers: {same}")


def bench_hnsw(
    url: str, user: str, queries: list[list[float]], exact: list[list[str]], ef: int, raw: Timing
) -> None:
    started = time.perf_counter()
    options: dict[str, Any] = {"vector_dimension": DIMS, "vector_index": "hnsw", "ef_search": ef}
    with clonestore.open(url, **options) as store:
        built = time.perf_counter() - started
        results: list[list[str]] = []

        def approximate(i: int) -> Any:
            found = store.memories.similar(
                user, queries[i % len(queries)], limit=LIMIT, approximate=True
            )
            if i < len(queries):
                results.append([r.memory.content for r in found])
            return found

        timing = timed(approximate, len(queries) * 2)
        recall = statistics.fmean(
            len(set(got) & set(want)) / LIMIT for got, want in zip(results, exact, strict=True)
        )
        line(f"hnsw ef_search={ef}", timing, raw, f"  recall@10 {recall:.3f}  (open {built:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pgvector", help="a PostgreSQL server with pgvector")
    parser.add_argument("--plain", help="a PostgreSQL server without pgvector")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--ef-search", default="40,100,200")
    args = parser.parse_args()
    args.ef_search = [int(x) for x in args.ef_search.split(",") if x]
    sizes = [int(x) for x in args.sizes.split(",")]
    with given(args.pgvector) if args.pgvector else pgserver_url() as url:
        for n in sizes:
            bench_size(args, url, n)


if __name__ == "__main__":
    main()
