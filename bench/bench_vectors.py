"""Exact vector search: ``memories.similar(limit=10)`` against the engine's raw query.

For each size N (default 1k, 10k, 100k) one user holds N memories of 384-dim
embeddings, and nine other users hold N/10 more between them. In one run, per
backend, interleaved:

* ``clonestore``: ``store.memories.similar(user, query, limit=10)`` (exact,
  cosine), records and exact float64 scores;
* ``raw``: the engine's own query written by hand, returning the same rows:
  numpy ``argpartition`` over a float64 matrix of the user's vectors
  (memory://), sqlite-vec's ``vec0`` k-NN joined to the rows (SQLite; the
  backend without the extension is compared with the same raw sqlite-vec
  query, the fastest the engine offers);
* ``old scan``: what ``similar()`` did before the ``vector_search``
  capability, and what the core still does for backends without it: read the
  user's rows and score them in Python (fewer calls at 100k);

and Python memory per call (``tracemalloc`` peak of one call), which must not
grow with N. Setup writes rows with ``create_many`` in batches.

    python bench/bench_vectors.py                               # all sizes, all backends
    python bench/bench_vectors.py --sizes 1000,10000 --backends memory,sqlite
    python bench/bench_vectors.py --backends pgvector,postgres --postgres postgresql://...

Backends: ``memory``, ``sqlite`` (sqlite-vec), ``sqlite-portable``
(``vector_extension=false``), ``pgvector`` (``--pgvector URL``, default a throwaway
pgserver) and ``postgres`` (``--postgres URL``: a server without pgvector, the SQL
fallback, against the same distance written by hand in SQL). Each is a function in
``BACKENDS`` returning the store and its raw query; other backends add theirs there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

import clonestore
from clonestore.vectors import nearest_reference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Timing, measure_interleaved

DIMENSION = 384
LIMIT = 10
OTHER_USERS = 9
QUERIES = 16
BATCH = 2000

#: What a backend gives the benchmark: the store, and the raw query (a query vector ->
#: the best LIMIT rows with their engine distances).
Raw = Callable[[np.ndarray], Any]
Setup = Callable[
    [str, int, np.ndarray, list[np.ndarray]],
    AbstractContextManager[tuple[clonestore.Store, str, Raw]],
]


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIMENSION))


def _fill(store: clonestore.Store, mine: np.ndarray, theirs: list[np.ndarray]) -> str:
    """The user and the others, their memories written by create_many; the user's id."""
    user = store.users.create(email="me@example.com", name="Me").id
    others = [store.users.create(email=f"o{i}@example.com", name=f"O{i}").id
              for i in range(OTHER_USERS)]  # fmt: skip
    owners = [(user, mine), *zip(others, theirs, strict=True)]
    for owner, vectors in owners:
        for start in range(0, len(vectors), BATCH):
            chunk = vectors[start : start + BATCH]
            store.memories.create_many(
                [{"user_id": owner, "content": f"memory {start + i}", "embedding": v}
                 for i, v in enumerate(chunk.tolist())]
            )  # fmt: skip
    return user


@contextmanager
def _memory(folder: str, n: int, mine: np.ndarray, theirs: list[np.ndarray]) -> Iterator[Any]:
    store = clonestore.open("memory://")
    user = _fill(store, mine, theirs)
    rows = store.memories.for_owner(user)
    ids = [m.id for m in rows]
    matrix = np.array([m.embedding for m in rows])
    norms = np.linalg.norm(matrix, axis=1)
    by_id = {m.id: m for m in rows}

    def raw(query: np.ndarray) -> Any:
        similarity = (matrix @ query) / (norms * np.linalg.norm(query))
        top = np.argpartition(-similarity, LIMIT)[:LIMIT]
        top = top[np.argsort(-similarity[top])]
        return [(by_id[ids[i]], float(similarity[i])) for i in top]

    try:
        yield store, user, raw
    finally:
        store.close()


def _sqlite(extension: bool) -> Setup:
    @contextmanager
    def setup(folder: str, n: int, mine: np.ndarray, theirs: list[np.ndarray]) -> Iterator[Any]:
        from clonestore_peewee.sqlite._backend import DRIVER
        from clonestore_peewee.sqlite._vectors import load_extension

        path = os.path.join(folder, f"vectors-{n}-{extension}.db")
        flag = "" if extension else "?vector_extension=false"
        store = clonestore.open(f"sqlite:///{path}{flag}")
        want = "sqlite-vec" if extension else "portable"
        assert store.backend.health()["vector_search"].startswith(want)
        user = _fill(store, mine, theirs)
        if extension:
            conn = DRIVER.connect(path)
        else:  # the same raw query, on a copy of the data with sqlite-vec's tables
            conn = DRIVER.connect(os.path.join(folder, f"vectors-{n}-True.db"))
        assert load_extension(conn) is not None, "the raw query needs sqlite-vec"
        columns = ", ".join(f'm."{c}"' for c in store.tables["memories"].by_name)
        sql = (
            f"SELECT {columns}, c.distance FROM (SELECT id, distance FROM "
            f"memories__embedding__vec{DIMENSION} WHERE v_cosine MATCH ? AND k = ? "
            "AND owner = ?) AS c JOIN memories AS m ON m.id = c.id ORDER BY c.distance"
        )
        raw_user = conn.execute(
            "SELECT id FROM users WHERE email = 'me@example.com'"
        ).fetchone()[0]

        def raw(query: np.ndarray) -> Any:
            return conn.execute(sql, (query.astype("<f4").tobytes(), LIMIT, raw_user)).fetchall()

        try:
            yield store, user, raw
        finally:
            conn.close()
            store.close()

    return setup


#: PostgreSQL servers: ``pgvector`` one with pgvector (default: a throwaway pgserver),
#: ``postgres`` one without it (``--postgres``), for the SQL fallback.
SERVERS: dict[str, str] = {}


def _postgres(kind: str) -> Setup:
    """pgvector, compared with its raw ``ORDER BY embedding <=> q LIMIT 10``; or a
    server without it (the SQL fallback), compared with the same distance written by
    hand in SQL over the stored arrays (the fastest query that server offers)."""

    @contextmanager
    def setup(folder: str, n: int, mine: np.ndarray, theirs: list[np.ndarray]) -> Iterator[Any]:
        import psycopg2
        from timing import throwaway_postgres

        with throwaway_postgres(SERVERS[kind], "bench_vectors") as url:
            store = clonestore.open(url)
            engine = store.health()["vector_search"]["engine"]
            assert engine == ("pgvector" if kind == "pgvector" else "sql"), engine
            user = _fill(store, mine, theirs)
            conn = psycopg2.connect(url)
            cursor = conn.cursor()
            cursor.execute("ANALYZE memories")
            columns = ", ".join(f'"{c}"' for c in store.tables["memories"].by_name)
            if kind == "pgvector":
                distance = "embedding <=> %s::vector"
            else:
                distance = (
                    "(SELECT 1 - sum(x * y) / sqrt(sum(x * x) * sum(y * y)) "
                    "FROM unnest(embedding, %s::float8[]) AS t(x, y))"
                )
            sql = (
                f"SELECT {columns}, {distance} AS d FROM memories "
                "WHERE user_id = %s AND deleted_at IS NULL ORDER BY d LIMIT 10"
            )

            def raw(query: np.ndarray) -> Any:
                value: Any = "[" + ",".join(map(repr, query.tolist())) + "]"
                if kind != "pgvector":
                    value = query.tolist()
                cursor.execute(sql, (value, user))
                return cursor.fetchall()

            try:
                yield store, user, raw
            finally:
                conn.close()
                store.close()

    return setup


#: Backend name -> setup (in the order run: sqlite-portable reads sqlite's raw tables).
BACKENDS: dict[str, Setup] = {
    "memory": _memory,
    "sqlite": _sqlite(True),
    "sqlite-portable": _sqlite(False),
    "pgvector": _postgres("pgvector"),
    "postgres": _postgres("postgres"),
}


def _old_scan(store: clonestore.Store, user: str) -> Callable[[np.ndarray], Any]:
    """The Python scan: every row of the user read, scored in Python."""
    repo: Any = store.memories
    where = repo._where({"user_id": user})
    spec = store.tables["memories"]

    def scan(query: np.ndarray) -> Any:
        rows = store.backend.select(spec, where)
        return nearest_reference(rows, "embedding", query.tolist(), "cosine", LIMIT)

    return scan


def _peak_kib(fn: Callable[[], Any]) -> float:
    fn()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def run(sizes: list[int], backends: list[str], calls: int) -> list[dict[str, Any]]:
    results = []
    queries = list(_vectors(QUERIES, 99))
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            mine = _vectors(n, 1)
            theirs = list(np.array_split(_vectors(max(OTHER_USERS, n // 10), 2), OTHER_USERS))
            for name in backends:
                started = time.perf_counter()
                with BACKENDS[name](folder, n, mine, theirs) as (store, user, raw):
                    setup_s = time.perf_counter() - started
                    scan = old = _old_scan(store, user)
                    check = store.memories.similar(user, queries[0].tolist(), limit=LIMIT)
                    want = scan(queries[0])
                    assert [(r.memory.id, r.score) for r in check] == [
                        (row["id"], s) for row, s in want
                    ], "similar() differs from the reference"

                    def ours(i: int) -> Any:
                        q = queries[i % QUERIES].tolist()
                        return store.memories.similar(user, q, limit=LIMIT)

                    ways: dict[str, tuple[Callable[[int], Any], int]] = {
                        "clonestore": (ours, calls),
                        "raw": (lambda i: raw(queries[i % QUERIES]), calls),
                    }
                    scan_calls = max(3, calls // max(1, n // 1000))
                    ways["old scan"] = (lambda i, old=old: old(queries[i % QUERIES]), scan_calls)
                    rounds = min(5, scan_calls)
                    timings: dict[str, Timing] = measure_interleaved(ways, rounds, warmup=1)
                    results.append({
                        "backend": name,
                        "n": n,
                        "setup_s": setup_s,
                        "p50_ms": {k: t.p50_us / 1000 for k, t in timings.items()},
                        "kib": _peak_kib(lambda: ours(0)),
                        "scan_kib": (_peak_kib(lambda old=old: old(queries[0]))
                                     if n <= 10_000 else None),
                    })  # fmt: skip
                    _print(results[-1])
    return results


def _print(r: dict[str, Any]) -> None:
    p = r["p50_ms"]
    scan_kib = "-" if r["scan_kib"] is None else f"{r['scan_kib']:,.0f}"
    print(
        f"| {r['backend']} | {r['n']:,} | {p['clonestore']:.2f} | {p['raw']:.2f} | "
        f"{p['clonestore'] / p['raw']:.2f}x | {p['old scan']:.1f} | {r['kib']:,.0f} | "
        f"{scan_kib} | {r['setup_s']:.0f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--backends", help="default: all (postgres only with --postgres)")
    parser.add_argument("--calls", type=int, default=40, help="timed calls per way and size")
    parser.add_argument("--pgvector", help="a PostgreSQL with pgvector (default: pgserver)")
    parser.add_argument("--postgres", help="a PostgreSQL without pgvector (backend postgres)")
    args = parser.parse_args()
    backends = (
        args.backends.split(",")
        if args.backends
        else [name for name in BACKENDS if name != "postgres" or args.postgres]
    )
    if "postgres" in backends:
        if not args.postgres:
            parser.error("backend postgres needs --postgres URL (a server without pgvector)")
        SERVERS["postgres"] = args.postgres
    with contextlib.ExitStack() as stack:
        if "pgvector" in backends:
            SERVERS["pgvector"] = args.pgvector or stack.enter_context(_pgserver())
        _table(args, backends)


def _pgserver() -> AbstractContextManager[str]:
    from bench_pg_vectors import pgserver_url

    return pgserver_url()


def _table(args: argparse.Namespace, backends: list[str]) -> None:
    print(
        "| backend | memories | similar p50 ms | raw p50 ms | ratio | old scan p50 ms "
        "| KiB per call | old scan KiB | setup s |\n|---|---|---|---|---|---|---|---|---|"
    )
    run([int(s) for s in args.sizes.split(",")], backends, args.calls)


if __name__ == "__main__":
    main()
