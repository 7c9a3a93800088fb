"""Point reads from many threads on a small PostgreSQL pool: clonestore against raw psycopg2.

In one run, on a throwaway database of 1,000 users, counts ``users.get`` calls
per second from 4 and from 8 threads sharing a pool of 4 connections, and the
same reads through the raw driver sharing 4 connections the same way (a lock,
a list of idle connections, a condition to wait on). The ways take turns in
short windows, so a slow moment of the shared machine weighs on all alike;
medians over the windows. What it shows: how much throughput clonestore's
pool loses when threads outnumber its connections, against the raw floor.

    python bench/bench_threads.py [--seconds 0.5] [--rounds 6]

PostgreSQL: a throwaway database on ``--postgres-url`` (default
``$CLONESTORE_BENCH_POSTGRES_URL``, then ``$CLONESTORE_TEST_POSTGRES_URL``, then
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
from collections.abc import Callable
from typing import Any

import psycopg2

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import add_postgres_url, throughput, throwaway_postgres

POOL = 4


class RawPool:
    """The raw floor: ``size`` psycopg2 connections, each with its cursor, handed out
    under one lock."""

    def __init__(self, url: str, size: int) -> None:
        self.idle: list[tuple[Any, Any]] = []
        for _ in range(size):
            conn = psycopg2.connect(url)
            conn.autocommit = True
            self.idle.append((conn, conn.cursor()))
        self.all = list(self.idle)
        self.available = threading.Condition()

    def get(self, id: str) -> Any:
        with self.available:
            while not self.idle:
                self.available.wait()
            entry = self.idle.pop()
        try:
            entry[1].execute("SELECT * FROM users WHERE id = %s", (id,))
            return entry[1].fetchone()
        finally:
            with self.available:
                self.idle.append(entry)
                self.available.notify()

    def close(self) -> None:
        for conn, _ in self.all:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one window")
    parser.add_argument("--rounds", type=int, default=6, help="windows per way")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    with (
        throwaway_postgres(args.postgres_url) as url,
        clonestore.open(url, pool_size=POOL, pool_timeout=60) as store,
    ):
        users = store.users.create_many(
            {"email": f"t{i}@example.com", "name": f"T{i}"} for i in range(1000)
        )
        ids = [u.id for u in users]
        raw = RawPool(url, POOL)
        ways: dict[str, Callable[[int], Any]] = {
            "clonestore": lambda i: store.users.get(ids[i % len(ids)]),
            "raw driver": lambda i: raw.get(ids[i % len(ids)]),
        }
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for threads in (POOL, 2 * POOL):
                for label, call in ways.items():
                    rate = throughput(call, threads, args.seconds)
                    rates.setdefault((label, threads), []).append(rate)
        raw.close()
    print(f"users.get calls/s on a pool of {POOL} (median of {args.rounds} windows)")
    print(f"{'way':<12} {'4 threads':>10} {'8 threads':>10} {'8 vs 4':>8}")
    for label in ways:
        four = statistics.median(rates[label, POOL])
        eight = statistics.median(rates[label, 2 * POOL])
        print(f"{label:<12} {four:>10.0f} {eight:>10.0f} {eight / four - 1:>+8.0%}")
    cs = statistics.median(rates["clonestore", 2 * POOL])
    floor = statistics.median(rates["raw driver", 2 * POOL])
    print(f"clonestore / raw at 8 threads: {cs / floor:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
