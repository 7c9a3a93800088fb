"""Bulk import of memories: ``memories.create_many`` of N x 384 float32 embeddings over 10
owners against the engine's own fastest load, as ratios in one run (issue 20 item 6).

* ``memory://``: ``create_many`` (no raw peer: it must beat SQLite's);
* SQLite: ``create_many`` on a fresh file against the driver's ``executemany`` of
  (id, owner, content, float32 blob) rows into a plain table, one transaction, with
  clonestore's durability (WAL, ``synchronous=normal``); and the
  engine's share alone: every statement ``create_many`` sent (rows, indexes, the
  ``vec0`` and text indexes) replayed by the driver on a copy of the database;
* PostgreSQL with pgvector: ``create_many`` (COPY, capability ``bulk_copy``) against a
  raw binary ``COPY`` of (id, owner, content, ``vector(384)``) rows built with numpy.

The embeddings are given as numpy float32 rows, as models return them. Each way runs
``--repeat`` times on fresh storage; medians.

    python bench/bench_bulk_vectors.py [--rows 100000] [--repeat 1] [--pgvector URL]
    python bench/bench_bulk_vectors.py --rows 10000 --no-pgvector   # memory:// and SQLite
    python bench/bench_bulk_vectors.py --rows 10000 --no-pgvector --clock cpu

``--pgvector`` names a PostgreSQL server with pgvector (default: a throwaway one from
``pgserver``, as the tests use); a throwaway database is made on it and dropped after.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import peewee
import psycopg2
from bench_pg_vectors import given, pgserver_url
from clonestore_peewee.sql._backend import MANY
from timing import throwaway_postgres

import clonestore

DIMS = 384
#: What the memory:// and SQLite ways are timed with (``--clock``): wall time, or this
#: process's CPU time (user and system), which a machine shared with other work slows
#: far less (SQLite's writes in WAL mode without fsync are the process's own system time).
clock: Callable[[], float] = time.perf_counter
OWNERS = 10


def vectors(rows: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((rows, DIMS)).astype(np.float32)


def create_many(url: str, matrix: np.ndarray) -> float:
    """Seconds for ``create_many`` of the rows (10 owners made first, not timed)."""
    with clonestore.open(url) as store:
        owners = [store.users.create(email=f"u{i}@example.com", name="U").id for i in range(OWNERS)]
        rows = [
            {"user_id": owners[i % OWNERS], "content": f"m{i:07d}", "embedding": matrix[i]}
            for i in range(len(matrix))
        ]
        start = clock()
        store.memories.create_many(rows)
        return clock() - start


def raw_sqlite(path: str, matrix: np.ndarray) -> float:
    """Seconds for the driver's executemany of (id, owner, content, float32 blob)."""
    conn = peewee.sqlite3.connect(path)
    for pragma in ("journal_mode=wal", "synchronous=normal"):  # clonestore's durability
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(
        "CREATE TABLE plain (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
        "content TEXT NOT NULL, embedding BLOB NOT NULL)"
    )
    owners = [str(uuid.uuid4()) for _ in range(OWNERS)]
    start = clock()
    rows = [
        (str(uuid.uuid4()), owners[i % OWNERS], f"m{i:07d}", matrix[i].tobytes())
        for i in range(len(matrix))
    ]
    with conn:
        conn.executemany("INSERT INTO plain VALUES (?, ?, ?, ?)", rows)
    elapsed = clock() - start
    conn.close()
    return elapsed


def sqlite_engine_share(path: str, matrix: np.ndarray) -> float:
    """Seconds the SQLite engine alone takes for ``create_many``'s statements: the call
    runs once on one copy of the database (10 owners made first) with every statement
    the backend sends recorded (SQL and parameters, the rows, the ``vec0`` index, the
    text index, the reads), then the driver replays them on a second copy, timed:
    clonestore's tables, indexes, foreign keys and index upkeep, no Python of its own."""
    import sqlite_vec

    with clonestore.open("sqlite:///" + path) as store:  # the schema, migrated
        owners = [store.users.create(email=f"u{i}@example.com", name="U").id for i in range(OWNERS)]
    replica = path + ".replica"
    shutil.copyfile(path, replica)
    sent: list[tuple[str, Any, int]] = []
    with clonestore.open("sqlite:///" + path) as store:
        backend: Any = store.backend
        execute = backend.execute

        def record(sql: str, params: Any, mode: int) -> Any:
            sent.append((sql, list(params) if mode == MANY else params, mode))
            return execute(sql, params, mode)

        backend.execute = record
        store.memories.create_many(
            {"user_id": owners[i % OWNERS], "content": f"m{i:07d}", "embedding": matrix[i]}
            for i in range(len(matrix))
        )
    conn = peewee.sqlite3.connect(replica, isolation_level=None)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    for pragma in ("journal_mode=wal", "synchronous=normal", "foreign_keys=on",
                   "secure_delete=on", "cache_size=-65536"):  # the backend's  # fmt: skip
        conn.execute(f"PRAGMA {pragma}")
    start = clock()
    for sql, params, mode in sent:
        if mode == MANY:
            conn.executemany(sql, params)
        else:
            conn.execute(sql, params).fetchall()
    elapsed = clock() - start
    conn.close()
    return elapsed


def _copy_buffer(matrix: np.ndarray) -> bytes:
    """PostgreSQL binary COPY of (uuid, uuid, text of 8 bytes, vector(DIMS)) rows."""
    n = len(matrix)
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", "S16"),
            ("owner_len", ">i4"),
            ("owner", "S16"),
            ("content_len", ">i4"),
            ("content", "S8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (DIMS,)),
        ]
    )
    out = np.zeros(n, row)
    out["fields"] = 4
    out["id_len"] = out["owner_len"] = 16
    out["id"] = [uuid.uuid4().bytes for _ in range(n)]
    owners = [uuid.uuid4().bytes for _ in range(OWNERS)]
    out["owner"] = [owners[i % OWNERS] for i in range(n)]
    out["content_len"] = 8
    out["content"] = [f"m{i:07d}".encode() for i in range(n)]
    out["vec_len"] = 4 + 4 * DIMS
    out["dim"] = DIMS
    out["vec"] = matrix
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header + out.tobytes() + (-1).to_bytes(2, "big", signed=True)


def raw_copy(url: str, matrix: np.ndarray) -> float:
    """Seconds for a raw binary COPY of the rows (buffer built with numpy, timed)."""
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cur.execute(
            f"CREATE TABLE plain (id uuid PRIMARY KEY, user_id uuid NOT NULL, "
            f"content text NOT NULL, embedding vector({DIMS}) NOT NULL)"
        )
    start = time.perf_counter()
    with conn, conn.cursor() as cur:
        cur.copy_expert(
            "COPY plain FROM STDIN WITH (FORMAT binary)", io.BytesIO(_copy_buffer(matrix))
        )
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def median(runs: int, way: Callable[[], float]) -> float:
    return statistics.median(way() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pgvector", help="a PostgreSQL server with pgvector")
    parser.add_argument(
        "--no-pgvector", action="store_true", help="memory:// and SQLite only (no PostgreSQL)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time memory:// and SQLite by wall time or by this process's CPU time",
    )
    args = parser.parse_args()
    if args.clock == "cpu":
        if not args.no_pgvector:
            parser.error("--clock cpu times this process only: add --no-pgvector")
        global clock
        clock = time.process_time
    matrix = vectors(args.rows)
    results: dict[str, float] = {}

    def fresh_sqlite(way: Callable[[str], float]) -> Callable[[], float]:
        def run() -> float:
            with tempfile.TemporaryDirectory() as tmp:
                return way(str(Path(tmp) / "bench.db"))

        return run

    results["memory:// create_many"] = median(args.repeat, lambda: create_many("memory://", matrix))
    results["SQLite raw executemany"] = median(
        args.repeat, fresh_sqlite(lambda path: raw_sqlite(path, matrix))
    )
    results["SQLite create_many"] = median(
        args.repeat, fresh_sqlite(lambda path: create_many("sqlite:///" + path, matrix))
    )
    results["SQLite engine's share"] = median(
        args.repeat, fresh_sqlite(lambda path: sqlite_engine_share(path, matrix))
    )
    if not args.no_pgvector:
        pgvector(args, matrix, results)
    report(args.rows, args.repeat, args.clock, results)


def pgvector(args: argparse.Namespace, matrix: np.ndarray, results: dict[str, float]) -> None:
    server: AbstractContextManager[str] = given(args.pgvector) if args.pgvector else pgserver_url()
    with server as url:

        def fresh_pg(way: Callable[[str], float]) -> Callable[[], float]:
            def run() -> float:
                with throwaway_postgres(url) as database:
                    return way(database)

            return run

        results["pgvector raw binary COPY"] = median(
            args.repeat, fresh_pg(lambda db: raw_copy(db, matrix))
        )
        results["pgvector create_many"] = median(
            args.repeat, fresh_pg(lambda db: create_many(db, matrix))
        )


def report(rows: int, repeat: int, clock_name: str, results: dict[str, float]) -> None:
    print(f"create_many of {rows:,} x {DIMS} float32 memories, {OWNERS} owners, "
          f"median of {repeat}, {clock_name} time:")  # fmt: skip
    for label, seconds in results.items():
        print(f"  {label:<28} {seconds:8.2f} s  {seconds / rows * 1e6:8.1f} us/row")
    raw = results["SQLite raw executemany"]
    sqlite = results["SQLite create_many"] / raw
    floor = results["SQLite engine's share"] / raw
    memory = results["memory:// create_many"] / results["SQLite create_many"]
    print(f"  SQLite create_many / raw executemany:   {sqlite:5.2f}x  (target <= 2)")
    print(f"  SQLite engine's share / raw executemany: {floor:4.2f}x  (its statements replayed)")
    if "pgvector create_many" in results:
        pg = results["pgvector create_many"] / results["pgvector raw binary COPY"]
        print(f"  pgvector create_many / raw binary COPY: {pg:5.2f}x  (target <= 2)")
    print(f"  memory:// / SQLite create_many:         {memory:5.2f}x  (target < 1)")


if __name__ == "__main__":
    main()
