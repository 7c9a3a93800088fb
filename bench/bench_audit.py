"""The audit plugin's cost on the hottest audited write: ``sessions.add_turn``.

In one run, per backend: ``sessions.add_turn`` on separate sessions of separate
users (one session per thread), through one store with a pool of 16, from 1, 4
and 8 threads, without and with the audit plugin; the two stores take turns in
short windows so a slow moment of the shared machine weighs on both alike
(medians over the windows). Printed: turns per second of each and the ratio
audited / unaudited (throughput; 1.0 = free), and at one thread the p50 latency
of each and its ratio (audited / unaudited; the issue's "at most 2x").

    python bench/bench_audit.py [--backends sqlite,postgres] [--seconds 1] [--rounds 3]

PostgreSQL: a throwaway database on ``--postgres-url`` (default
``$CLONESTORE_BENCH_POSTGRES_URL``, then ``$CLONESTORE_TEST_POSTGRES_URL``, then
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards. SQLite: a
file in a temporary folder. Exit status 1 when a target is missed (PostgreSQL:
audited at least 0.7x unaudited at 8 threads, p50 at most 2x at one thread;
SQLite: p50 at most 2x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import add_postgres_url, database, measure_interleaved, throughput

POOL = 16
THREADS = (1, 4, 8)


def _turns(store: clonestore.Store, threads: int) -> Callable[[int], Any]:
    """``add_turn`` on the session of thread ``i % threads`` (one user each)."""
    now = datetime.now(UTC)
    sessions = []
    for k in range(threads):
        user = store.users.create(email=f"u{k}-{uuid.uuid4().hex}@example.com", name=f"U{k}")
        sessions.append(store.sessions.create(user_id=user.id, started_at=now).id)

    def call(i: int) -> Any:
        return store.sessions.add_turn(
            sessions[i % threads], user_transcript="hello", llm_response="hi", llm_latency_ms=5
        )

    return call


def bench(url: str, seconds: float, rounds: int, threads: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    options: dict[str, Any] = (
        {"pool_size": POOL, "pool_timeout": 60} if url.startswith("postgresql") else {}
    )
    with (
        clonestore.open(url, **options) as plain,
        clonestore.open(url, plugins=["audit"], **options) as audited,
    ):
        one = measure_interleaved(
            {"plain": (_turns(plain, 1), 600), "audit": (_turns(audited, 1), 600)}, rounds=6
        )
        out["p50"] = (one["plain"].p50_us, one["audit"].p50_us)
        print(
            f"  1 thread p50: unaudited {one['plain'].p50_us:8.0f} µs, audited "
            f"{one['audit'].p50_us:8.0f} µs, ratio {one['audit'].p50_us / one['plain'].p50_us:.2f}x"
        )
        print(f"  {'threads':>7} {'unaudited/s':>12} {'audited/s':>10} {'audited/unaudited':>18}")
        for n in threads:
            calls = {"plain": _turns(plain, n), "audit": _turns(audited, n)}
            rates: dict[str, list[float]] = {"plain": [], "audit": []}
            for _ in range(rounds):
                for label, call in calls.items():
                    rates[label].append(throughput(call, n, seconds))
            base, with_audit = (statistics.median(rates[k]) for k in ("plain", "audit"))
            out[n] = (base, with_audit)
            print(f"  {n:7d} {base:12.0f} {with_audit:10.0f} {with_audit / base:17.2f}x")
        report = audited.audit.verify()
        print(f"  audit verify: ok={report.ok}, {report.checked} rows")
    return out


def verdict(backend: str, result: dict[str, Any]) -> bool:
    ok = True
    plain_p50, audit_p50 = result["p50"]
    if audit_p50 > 2 * plain_p50:
        print(f"  MISSED {backend}: audited p50 {audit_p50 / plain_p50:.2f}x > 2x at one thread")
        ok = False
    if backend == "postgres" and 8 in result:
        base, with_audit = result[8]
        if with_audit < 0.7 * base:
            print(f"  MISSED {backend}: audited {with_audit / base:.2f}x < 0.7x at 8 threads")
            ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one window")
    parser.add_argument("--rounds", type=int, default=3, help="windows per way and thread count")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    ok = True
    for backend in args.backends.split(","):
        print(f"{backend}: sessions.add_turn, separate sessions of separate users, pool {POOL}")
        with database(backend, args.postgres_url) as url:
            result = bench(url, args.seconds, args.rounds, THREADS)
        ok = verdict(backend, result) and ok
    print("all targets met" if ok else "targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
