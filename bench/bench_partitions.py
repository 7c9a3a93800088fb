"""Time partitions (``layout=partitioned``) against the plain layout at many turns.

One database is filled with ``--turns`` turns by SQL (``INSERT ... SELECT
generate_series``, triggers off: the rows are made, not validated): 100 users,
sessions of ``--per-session`` turns each, spread evenly over ``--months`` months
ending now, a turn a minute after its session's start. A copy of it
(``CREATE DATABASE ... TEMPLATE``) is then opened with ``layout=partitioned``,
which converts it (timed: the conversion path of an existing database). On both,
in alternating rounds:

* ``add_turn`` to open sessions started now (the current month's partition; the
  partitioned layout also checks the id's uniqueness over every partition);
* ``get_with_turns`` of a session from the first month and of one from the last
  (``created_at >= session.created_at`` skips the months before the session);
* the turns of one month (``count`` over ``created_at`` in ``[month, month + 1)``);
* the raw driver (psycopg2) running the very SELECT ``get_with_turns`` sends for
  its turns, on each database: the ratio the house measures speed by.

    python bench/bench_partitions.py --turns 10000000
    python bench/bench_partitions.py --turns 200000 --calls 300     # a quick look

Databases are throwaway ones on ``--postgres-url`` (see ``timing.py``), dropped
afterwards. Numbers and the machine they came from: docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import add_postgres_url, measure_interleaved, throwaway_postgres

USERS = 100
TURN: dict[str, Any] = {
    "user_transcript": "What did we talk about yesterday?",
    "llm_response": "We talked about your trip to Lisbon.",
    "llm_latency_ms": 310,
    "llm_cost": Decimal("0.002300"),
}


def _columns(cur: Any, table: str) -> list[str]:
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (table,),
    )
    return [name for (name,) in cur.fetchall()]


def fill(url: str, turns: int, per_session: int, months: int) -> dict[str, Any]:
    """Create the schema through a store, then the rows by SQL; what was made."""
    started = time.perf_counter()
    with clonestore.open(url) as store:
        users = [store.users.create(email=f"u{i}@example.com", name="U").id
                 for i in range(USERS)]  # fmt: skip
        session = store.sessions.create(user_id=users[0])
        turn = store.sessions.add_turn(session.id, **TURN)
    sessions = turns // per_session
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=30.4 * months)
    step = (end - start) / sessions
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # no triggers, no FK checks
        users_sql = "ARRAY[" + ", ".join(f"'{u}'" for u in users) + "]"
        columns = _columns(cur, "sessions")
        overrides = {
            "id": "'s' || g",
            "user_id": f"({users_sql})[g %% {USERS} + 1]",
            "created_at": "%(start)s + g * %(step)s",
            "started_at": "%(start)s + g * %(step)s",
            "updated_at": "%(start)s + g * %(step)s",
            "total_turns": str(per_session),
            "last_turn_index": str(per_session),
        }
        values = ", ".join(overrides.get(c, f't."{c}"') for c in columns)
        cur.execute(
            f"INSERT INTO sessions ({', '.join(chr(34) + c + chr(34) for c in columns)}) "
            f"SELECT {values} FROM generate_series(0, %(last)s) AS g, sessions t "
            "WHERE t.id = %(template)s",
            {"start": start, "step": step, "last": sessions - 1, "template": session.id},
        )
        columns = _columns(cur, "turns")
        overrides = {
            "id": "'t' || g",
            "session_id": f"'s' || (g / {per_session})",
            "user_id": f"({users_sql})[(g / {per_session}) %% {USERS} + 1]",
            "turn_index": f"g %% {per_session} + 1",
            "created_at": f"%(start)s + (g / {per_session}) * %(step)s "
            f"+ (g %% {per_session} + 1) * interval '1 minute'",
            "updated_at": f"%(start)s + (g / {per_session}) * %(step)s "
            f"+ (g %% {per_session} + 1) * interval '1 minute'",
        }
        values = ", ".join(overrides.get(c, f't."{c}"') for c in columns)
        chunk = 1_000_000
        for low in range(0, turns, chunk):
            high = min(turns, low + chunk) - 1
            cur.execute(
                f"INSERT INTO turns ({', '.join(chr(34) + c + chr(34) for c in columns)}) "
                f"SELECT {values} FROM generate_series(%(low)s, %(high)s) AS g, turns t "
                "WHERE t.id = %(template)s",
                {"start": start, "step": step, "low": low, "high": high, "template": turn.id},
            )
            print(f"  turns: {high + 1:,} of {turns:,} ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip
        cur.execute("ANALYZE")
    conn.close()
    return {"sessions": sessions, "start": start, "end": end, "users": users,
            "seconds": time.perf_counter() - started}  # fmt: skip


def _size(url: str) -> str:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_postgres_url(parser)
    parser.add_argument("--turns", type=int, default=10_000_000)
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    print(f"{args.turns:,} turns, {args.per_session} per session, over {args.months} months")
    with throwaway_postgres(args.postgres_url, "bench_parts") as plain:
        made = fill(plain, args.turns, args.per_session, args.months)
        print(f"filled in {made['seconds']:.0f} s ({_size(plain)})")
        template = plain.rsplit("/", 1)[1]
        with throwaway_postgres(args.postgres_url, "bench_parts", template) as copy:
            started = time.perf_counter()
            clonestore.open(f"{copy}?layout=partitioned").close()
            converted = time.perf_counter() - started
            print(f"converted to layout=partitioned in {converted:.0f} s ({_size(copy)})")
            run(plain, f"{copy}?layout=partitioned", made, args.calls)


def run(plain_url: str, partitioned_url: str, made: dict[str, Any], calls: int) -> None:
    stores = {"plain": clonestore.open(plain_url), "partitioned": clonestore.open(partitioned_url)}
    raw = {name: psycopg2.connect(url.split("?")[0])
           for name, url in (("plain", plain_url), ("partitioned", partitioned_url))}  # fmt: skip
    for conn in raw.values():
        conn.autocommit = True
    try:
        first = "s0"
        last = f"s{made['sessions'] - 1}"
        open_sessions = {
            name: [store.sessions.create(user_id=made["users"][i]).id for i in range(50)]
            for name, store in stores.items()
        }
        sent: list[tuple[str, Any]] = []
        backend: Any = stores["plain"].backend
        execute = backend.execute

        def spy(sql: str, params: Any, mode: int) -> Any:
            sent.append((sql, params))
            return execute(sql, params, mode)

        backend.execute = spy
        stores["plain"].sessions.get_with_turns(first)
        backend.execute = execute
        turns_sql = next((s, p) for s, p in sent if '"turns"' in s)
        month = made["end"].replace(day=1, hour=0, minute=0, second=0) - timedelta(days=200)
        month = month.replace(day=1)
        after = (month + timedelta(days=32)).replace(day=1)
        period = {"created_at__gte": month, "created_at__lt": after}

        def raw_turns(conn: Any, session_id: str) -> Any:
            sql, params = turns_sql
            params = tuple(session_id if p == first else p for p in params)
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

        fns: dict[str, Any] = {}
        for name, store in stores.items():
            sessions = open_sessions[name]
            fns[f"add_turn {name}"] = (
                lambda i, s=store, o=sessions: s.sessions.add_turn(o[i % len(o)], **TURN), calls)
            fns[f"get_with_turns, first month, {name}"] = (
                lambda i, s=store: s.sessions.get_with_turns(first), calls)
            fns[f"get_with_turns, last month, {name}"] = (
                lambda i, s=store: s.sessions.get_with_turns(last), calls)
            fns[f"one month's turns (count), {name}"] = (
                lambda i, s=store: s.turns.count(where=period), max(10, calls // 20))
            fns[f"raw SELECT of the first session's turns, {name}"] = (
                lambda i, c=raw[name]: raw_turns(c, first), calls)
        for name, conn in raw.items():
            with conn.cursor() as cur:
                sql, params = turns_sql
                cur.execute("EXPLAIN (ANALYZE, SUMMARY) " + sql, params)
                plan = [row[0] for row in cur.fetchall()]
            scans = sum("Index" in line and "Scan" in line for line in plan)
            print(f"{name}: the first session's turns: {scans} index scans, "
                  f"{plan[-2].strip()}, {plan[-1].strip()}")  # fmt: skip
        timings = measure_interleaved(fns, rounds=10, warmup=20)
        width = max(map(len, timings))
        for label, timing in timings.items():
            print(f"{label:<{width}}  mean {timing.mean_us:9.1f} us  p50 {timing.p50_us:9.1f}"
                  f"  p99 {timing.p99_us:9.1f}")  # fmt: skip
        for what in ("add_turn", "get_with_turns, first month,", "get_with_turns, last month,",
                     "one month's turns (count),"):  # fmt: skip
            ratio = timings[f"{what} partitioned"].mean_us / timings[f"{what} plain"].mean_us
            print(f"{what.rstrip(',')}: partitioned / plain = {ratio:.2f}")
        for name in stores:
            store_us = timings[f"get_with_turns, first month, {name}"].mean_us
            raw_us = timings[f"raw SELECT of the first session's turns, {name}"].mean_us
            print(f"get_with_turns / raw SELECT of its turns, {name}: {store_us / raw_us:.2f}")
    finally:
        for store in stores.values():
            store.close()
        for conn in raw.values():
            conn.close()


if __name__ == "__main__":
    random.seed(0)
    main()
