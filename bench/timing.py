"""Timing and throwaway databases shared by the benchmarks in this folder."""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "Timing",
    "add_postgres_url",
    "database",
    "mariadb_connect",
    "measure",
    "measure_interleaved",
    "throughput",
    "throwaway_mariadb",
    "throwaway_postgres",
]


class Timing:
    """Per-call latencies of one measurement."""

    def __init__(self, samples_ns: list[int]) -> None:
        ordered = sorted(samples_ns)
        self.mean_us = statistics.fmean(ordered) / 1000
        self.p50_us = ordered[len(ordered) // 2] / 1000
        self.p99_us = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000

    @property
    def per_second(self) -> float:
        return 1e6 / self.mean_us


def measure(fn: Callable[[int], Any], calls: int, warmup: int = 100) -> Timing:
    for i in range(warmup):
        fn(i)
    samples = []
    gc.collect()
    gc.disable()
    try:
        for i in range(calls):
            start = time.perf_counter_ns()
            fn(warmup + i)
            samples.append(time.perf_counter_ns() - start)
    finally:
        gc.enable()
    return Timing(samples)


def measure_interleaved(
    fns: dict[str, tuple[Callable[[int], Any], int]], rounds: int = 10, warmup: int = 50
) -> dict[str, Timing]:
    """Time several ways of doing the same thing in alternating rounds, so that a
    slow moment of the machine weighs on all of them alike."""
    for fn, _ in fns.values():
        for i in range(warmup):
            fn(i)
    samples: dict[str, list[int]] = {label: [] for label in fns}
    for r in range(rounds):
        for label, (fn, calls) in fns.items():
            per_round = max(1, calls // rounds)
            gc.collect()
            gc.disable()
            try:
                for i in range(per_round):
                    start = time.perf_counter_ns()
                    fn(warmup + r * per_round + i)
                    samples[label].append(time.perf_counter_ns() - start)
            finally:
                gc.enable()
    return {label: Timing(values) for label, values in samples.items()}


def throughput(call: Callable[[int], Any], threads: int, seconds: float) -> float:
    """Calls per second of ``call`` from ``threads`` threads released together, for
    ``seconds`` (each thread numbers its calls k, k + threads, k + 2 * threads...)."""
    counts = [0] * threads
    stop = threading.Event()
    start = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        start.wait()
        i = k
        while not stop.is_set():
            call(i)
            i += threads
            counts[k] += 1

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - began)


def add_postgres_url(parser: argparse.ArgumentParser) -> None:
    """``--postgres-url``: the server throwaway databases are made on (default
    ``$CLONESTORE_BENCH_POSTGRES_URL``, then ``$CLONESTORE_TEST_POSTGRES_URL``, then
    postgresql://postgres@127.0.0.1:5432/postgres)."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CLONESTORE_BENCH_POSTGRES_URL")
        or os.environ.get("CLONESTORE_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )


# ----------------------------------------------------------------------------- databases


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextmanager
def throwaway_postgres(
    server_url: str, prefix: str = "clonestore_bench", template: str | None = None
) -> Iterator[str]:
    """A fresh PostgreSQL database on the server at ``server_url`` (a copy of the
    database ``template`` names, if given), dropped afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _with_database(server_url, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def mariadb_connect(url: str, database: str | None = None) -> Any:
    """A PyMySQL connection to the server of a ``mariadb://`` URL (and ``database``)."""
    from urllib.parse import unquote

    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
        database=database, charset="utf8mb4",
    )  # fmt: skip


@contextmanager
def throwaway_mariadb(server_url: str, prefix: str = "clonestore_bench") -> Iterator[str]:
    """A fresh MariaDB database on the server of ``server_url``, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = mariadb_connect(server_url)
    admin.autocommit(True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield _with_database(server_url, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@contextmanager
def database(backend: str, postgres_url: str) -> Iterator[str]:
    """A fresh database URL for one backend (memory, sqlite, postgres), removed afterwards."""
    if backend == "memory":
        yield f"memory://bench-{uuid.uuid4().hex[:8]}"
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    with throwaway_postgres(postgres_url, "bench_plugins") as url:
        yield url
