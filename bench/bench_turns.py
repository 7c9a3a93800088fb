"""``sessions.add_turn`` against the raw driver running the statements it sends.

In one run per backend, times ``store.sessions.add_turn(session_id, ...)``
(a turn with transcripts, latencies and costs) and, through the raw driver
(sqlite3, psycopg2) on the same tables:

* **raw, same statements**: the very statements clonestore sent for one
  add_turn, replayed with a fresh turn id. On PostgreSQL that is one statement
  (the session's totals and the turn in one CTE); on SQLite, which has no
  data-modifying CTE, ``BEGIN IMMEDIATE``, ``UPDATE ... RETURNING``,
  ``INSERT``, ``COMMIT``.
* **raw, four round trips** (PostgreSQL): ``BEGIN``, the session's update,
  the turn's insert, ``COMMIT``: what add_turn sent before it was one statement.

memory:// is timed too (no raw peer). Target (issue "Costs that do not grow
with the data"): add_turn within 1.2x of the raw statements.

    python bench/bench_turns.py                       # memory, sqlite, postgres
    python bench/bench_turns.py --backends postgres --calls 3000

PostgreSQL: a throwaway database on ``--postgres-url`` (default
``$CLONESTORE_BENCH_POSTGRES_URL``, then ``$CLONESTORE_TEST_POSTGRES_URL``, then
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from peewee import sqlite3  # the driver Peewee (so clonestore) runs on: pysqlite3 if installed

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import add_postgres_url, database, measure_interleaved

TARGET = 1.2
TURN: dict[str, Any] = {
    "user_transcript": "What did we talk about yesterday?",
    "llm_response": "We talked about your trip to Lisbon.",
    "asr_latency_ms": 42,
    "rag_latency_ms": 18,
    "llm_latency_ms": 310,
    "tts_latency_ms": 95,
    "asr_cost": Decimal("0.000120"),
    "llm_cost": Decimal("0.002300"),
    "tts_cost": Decimal("0.000450"),
}


class _Sequential:
    """A plugin that watches writes one by one, so add_turn runs as an update then an
    insert (four round trips on PostgreSQL): what it sent before one statement."""

    @clonestore.hookimpl
    def clonestore_before_write(self, store: Any, op: Any) -> None:
        return None


@contextmanager
def _recording(store: clonestore.Store) -> Iterator[list[tuple[str, Any]]]:
    """The statements the store's SQL backend runs inside the block, with parameters."""
    backend: Any = store.backend
    original = backend.execute
    seen: list[tuple[str, Any]] = []

    def execute(sql: str, params: Any, mode: int) -> Any:
        seen.append((sql, params))
        return original(sql, params, mode)

    backend.__dict__["execute"] = execute
    try:
        yield seen
    finally:
        del backend.__dict__["execute"]


#: A replayed statement: its SQL, its parameters (None where the fresh turn id goes),
#: the position of the turn's number among them and of the session's count among the
#: columns it returns (-1: none).
Replayed = tuple[str, list[Any], int, int]


def _columns(sql: str, after: str) -> list[str]:
    """The quoted column names listed after ``after`` up to the closing parenthesis."""
    tail = sql.split(after, 1)[1]
    listed = tail.split(")", 1)[0] if after.endswith("(") else tail
    return [part.strip().split(".")[-1].strip('"') for part in listed.split(",")]


def _replay(statements: list[tuple[str, Any]], turn_id: str) -> list[Replayed]:
    """The statements, each with the turn id's place marked for a fresh id per call; when
    the session's update and the turn's insert are separate, the insert takes the turn's
    number from the update's result, as add_turn does."""
    out: list[Replayed] = []
    for sql, params in statements:
        values = [None if v == turn_id else v for v in (params or ())]
        number_at = count_at = -1
        if sql.startswith('UPDATE "sessions"'):
            count_at = _columns(sql, " RETURNING ").index("last_turn_index")
        elif sql.startswith('INSERT INTO "turns"'):
            number_at = _columns(sql, '"turns" (').index("turn_index")
        out.append((sql, values, number_at, count_at))
    return out


def _raw_runner(url: str, statements: list[Replayed]) -> Callable[[int], Any]:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")

        def execute_sqlite(sql: str, params: list[Any]) -> list[Any]:
            return conn.execute(sql, params).fetchall()

        run = execute_sqlite
    else:
        import psycopg2

        pg = psycopg2.connect(url)
        pg.autocommit = True
        cursor = pg.cursor()

        def execute_postgres(sql: str, params: list[Any]) -> list[Any]:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

        run = execute_postgres

    def replay(i: int) -> Any:
        fresh = str(uuid.uuid4())
        number = None
        result: list[Any] = []
        for sql, params, number_at, count_at in statements:
            values = [fresh if v is None else v for v in params]
            if number_at >= 0:
                values[number_at] = number
            result = run(sql, values)
            if count_at >= 0:
                number = result[0][count_at]
        return result

    return replay


def bench(backend: str, url: str, calls: int) -> dict[str, float]:
    store = clonestore.open(url)
    sequential = clonestore.open(url, plugins=[_Sequential()])
    try:
        user = store.users.create(email=f"turns-{uuid.uuid4().hex[:8]}@example.com", name="T")
        session = store.sessions.create(user_id=user.id)
        fns: dict[str, tuple[Callable[[int], Any], int]] = {
            "clonestore add_turn": (lambda i: store.sessions.add_turn(session.id, **TURN), calls)
        }
        if backend != "memory":
            with _recording(store) as seen:
                turn = store.sessions.add_turn(session.id, **TURN)
            fns["raw, same statements"] = (_raw_runner(url, _replay(seen, turn.id)), calls)
            if backend == "postgres":
                with _recording(sequential) as seen:
                    turn = sequential.sessions.add_turn(session.id, **TURN)
                fns["raw, four round trips"] = (_raw_runner(url, _replay(seen, turn.id)), calls)
        timings = measure_interleaved(fns)
        total = store.sessions.get(session.id).total_turns
        expected = store.turns.count(where={"session_id": session.id})
        assert total == expected, f"session counts {total} turns, {expected} stored"
    finally:
        sequential.close()
        store.close()
    print(f"  {'add_turn':34} {'p50 µs':>9} {'p99 µs':>9}")
    for label, timing in timings.items():
        print(f"  {label:34} {timing.p50_us:9.1f} {timing.p99_us:9.1f}")
    return {label: timing.p50_us for label, timing in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,postgres")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per measurement")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    for backend in args.backends.split(","):
        print(f"\n== {backend}")
        with database(backend, args.postgres_url) as url:
            results[backend] = bench(backend, url, args.calls)
    ok = True
    print("\ntargets")
    for backend, row in results.items():
        raw = row.get("raw, same statements")
        if raw is None:
            continue
        ratio = row["clonestore add_turn"] / raw
        good = ratio <= TARGET
        ok &= good
        extra = ""
        if "raw, four round trips" in row:
            four = row["raw, four round trips"]
            extra = f"; raw one statement / raw four round trips = {raw / four:.2f}x"
        print(
            f"  {backend}: add_turn / raw same statements (p50) = {ratio:.2f}x "
            f"(target <= {TARGET}x) {'PASS' if good else 'FAIL'}{extra}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
