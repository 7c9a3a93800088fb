"""PostgreSQL without pgvector: ``similar`` over one owner's N x 384 memories against
numpy scoring the same float32 vectors in memory (exact cosine top 10), as a ratio in
one run (issue 20 item 5).

    python bench/bench_pg_fallback.py [--rows 10000] [--queries 10] [--postgres-url URL]

``--postgres-url`` names a server (default: ``$CLONESTORE_TEST_POSTGRES_URL``, the
machine's PostgreSQL 15 without pgvector); a throwaway database is made on it and
dropped after. The store must report ``vector_search`` engine ``sql`` (no pgvector).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from timing import add_postgres_url, throwaway_postgres

import clonestore

DIMS = 384
LIMIT = 10


def numpy_top(matrix: np.ndarray, norms: np.ndarray, query: np.ndarray) -> list[int]:
    """Exact cosine top-LIMIT in numpy (float64 over the float32 values)."""
    scores = (matrix @ query) / (norms * np.linalg.norm(query))
    best = np.argpartition(-scores, LIMIT)[:LIMIT]
    return best[np.argsort(-scores[best], kind="stable")].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=10)
    add_postgres_url(parser)
    args = parser.parse_args()
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((args.rows, DIMS)).astype(np.float32)
    queries = rng.standard_normal((args.queries, DIMS)).astype(np.float32)
    with throwaway_postgres(args.postgres_url) as url, clonestore.open(url) as store:
        engine = store.health()["vector_search"]["engine"]
        user = store.users.create(email="f@example.com", name="F").id
        for start in range(0, args.rows, 5000):
            store.memories.create_many(
                [
                    {"user_id": user, "content": f"m{i}", "embedding": vectors[i]}
                    for i in range(start, min(args.rows, start + 5000))
                ]
            )
        matrix = vectors.astype(np.float64)
        norms = np.linalg.norm(matrix, axis=1)
        ours, theirs, same = [], [], True
        for query in queries:
            start = time.perf_counter()
            found = store.memories.similar(user, query, limit=LIMIT)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            best = numpy_top(matrix, norms, query.astype(np.float64))
            theirs.append(time.perf_counter() - start)
            same = same and [r.memory.content for r in found] == [f"m{i}" for i in best]
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{args.rows:,} x {DIMS} memories of one owner, engine {engine}, "
              f"{args.queries} queries")  # fmt: skip
        print(f"  similar (limit {LIMIT})   p50 {a * 1000:9.2f} ms")
        print(f"  numpy, in memory       p50 {b * 1000:9.2f} ms")
        print(f"  ratio {a / b:6.1f}x numpy (target <= 5); same answers: {same}")


if __name__ == "__main__":
    main()
