"""``sessions.user_statistics`` for a user with a long history: kept totals against
summing the sessions, and against the raw driver running the same statements.

One user gets ``--sessions`` ended sessions (default 100k: 10M turns at 100 turns
a session; a session carries its turns' totals, so ``user_statistics`` never
reads turns, and the turn count does not enter its cost) and 5 open ones with
turns; other users own ``--others`` more sessions. Timed, in alternating rounds:

* **kept**: ``user_statistics(user)``: one ``session_totals`` row by primary key
  plus the user's open sessions through ``(user_id, ended_at)``;
* **summed**: ``_computed_statistics(user)``, what ``user_statistics`` did before
  (and does with ``since=``): an aggregate over every session of the user;
* **raw, same statements**: the two statements of *kept*, by sqlite3 / psycopg2.

Target (issue 26 item 3): kept <= 5 ms on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from decimal import Decimal
from typing import Any

from timing import add_postgres_url, database, measure_interleaved

import clonestore
from clonestore.query import Cond

TARGET_MS = 5.0
_LIVE = (
    "SELECT COUNT(*), SUM(total_turns), SUM(total_cost), SUM(total_latency_ms), "
    "MIN(started_at), MAX(started_at) FROM sessions WHERE user_id = {p} AND ended_at IS NULL"
)
_TOTALS = "SELECT * FROM session_totals WHERE id = {p}"


def _fill(store: clonestore.Store, sessions: int, others: int) -> str:
    user = store.users.create(email="heavy@example.com", name="Heavy")
    start = store.clock() - timedelta(days=365)
    chunk = 5000
    for first in range(0, sessions, chunk):
        rows = [
            {"user_id": user.id, "started_at": start + timedelta(minutes=i)}
            for i in range(first, min(sessions, first + chunk))
        ]
        store.sessions.create_many(rows)
    # Each ended session as if 100 turns had been added: the totals add_turn keeps.
    store.backend.update(
        store.tables["sessions"],
        Cond("user_id", "eq", user.id),
        {"ended_at": store.clock(), "total_turns": 100, "last_turn_index": 100,
         "total_latency_ms": 80_000, "total_cost": Decimal("0.123456")},
    )
    owners = [store.users.create(email=f"o{i}@example.com", name="O").id for i in range(100)]
    for first in range(0, others, chunk):
        store.sessions.create_many(
            [{"user_id": owners[i % len(owners)], "started_at": start}
             for i in range(first, min(others, first + chunk))]
        )
    for _ in range(5):
        session = store.sessions.create(user_id=user.id)
        for _ in range(3):
            store.sessions.add_turn(session.id, llm_latency_ms=700, llm_cost=Decimal("0.002"))
    store.sessions._totals.recount([user.id])  # as migration 0011's backfill does
    return user.id


def _raw(url: str, user_id: str) -> Any:
    if url.startswith("sqlite"):
        from peewee import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///"):].partition("?")[0])
        p = "?"

        def run(i: int) -> Any:
            return (conn.execute(_TOTALS.format(p=p), (user_id,)).fetchall(),
                    conn.execute(_LIVE.format(p=p), (user_id,)).fetchall())

        return run
    import psycopg2

    pg = psycopg2.connect(url)
    pg.autocommit = True
    cur = pg.cursor()

    def run_pg(i: int) -> Any:
        cur.execute(_TOTALS.format(p="%s"), (user_id,))
        first = cur.fetchall()
        cur.execute(_LIVE.format(p="%s"), (user_id,))
        return first, cur.fetchall()

    return run_pg


def bench(backend: str, url: str, sessions: int, others: int, calls: int) -> dict[str, float]:
    with clonestore.open(url) as store:
        user_id = _fill(store, sessions, others)
        if url.startswith("postgres"):  # what autovacuum does after a bulk load
            import psycopg2

            admin = psycopg2.connect(url)
            admin.autocommit = True
            admin.cursor().execute("VACUUM ANALYZE")
            admin.close()
        kept = store.sessions.user_statistics(user_id)
        assert kept == store.sessions._computed_statistics(user_id), "kept != summed"
        assert kept.total_sessions == sessions + 5
        fns = {
            "kept": (lambda i: store.sessions.user_statistics(user_id), calls),
            "summed": (
                lambda i: store.sessions._computed_statistics(user_id),
                max(20, calls // 20),
            ),
        }
        if not url.startswith("memory"):
            fns["raw, same statements"] = (_raw(url, user_id), calls)
        timings = measure_interleaved(fns, rounds=5, warmup=5)
    for label, timing in timings.items():
        print(f"  {label:22} p50 {timing.p50_us:10.1f} us   p99 {timing.p99_us:10.1f} us")
    return {label: timing.p50_us for label, timing in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,postgres")
    parser.add_argument("--sessions", type=int, default=100_000,
                        help="ended sessions of the timed user")
    parser.add_argument("--others", type=int, default=100_000, help="other users' sessions")
    parser.add_argument("--calls", type=int, default=500, help="timed calls of kept")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    ok = True
    for backend in args.backends.split(","):
        print(f"\n== {backend}: {args.sessions} ended sessions of one user "
              f"(= {args.sessions * 100:,} turns), {args.others} others")
        with database(backend, args.postgres_url) as url:
            row = bench(backend, url, args.sessions, args.others, args.calls)
        kept_ms = row["kept"] / 1000
        good = kept_ms <= TARGET_MS or backend == "memory"
        ok &= good
        raw = row.get("raw, same statements")
        ratio = f", kept / raw = {row['kept'] / raw:.2f}x" if raw else ""
        print(f"  kept {kept_ms:.3f} ms (target <= {TARGET_MS} ms) "
              f"{'PASS' if good else 'FAIL'}; summed / kept = {row['summed'] / row['kept']:.0f}x"
              f"{ratio}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
