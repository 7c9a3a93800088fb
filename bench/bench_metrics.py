"""The metrics plugin's overhead, and the query log's, measured in one run.

On each backend (memory, sqlite, postgres), in alternating rounds so a slow
moment of the machine weighs on all alike:

* ``users.get`` on a store without plugins, with ``plugins=["metrics"]``, and
  (SQL backends) with the query log on (``slow_query_ms`` set high, so every
  statement is timed and none is logged);
* ``users.update`` without and with the metrics plugin.

Target: the metrics plugin costs at most 10% on a PostgreSQL ``users.get``.
Wall-clock ratios move with the machine's load (and the server's); the
client's CPU time per call (``cpu``), measured in the same alternating rounds,
is what the plugin itself adds in this process, and is steadier.

    python bench/bench_metrics.py                        # memory, sqlite, postgres
    python bench/bench_metrics.py --backends postgres --calls 20000

PostgreSQL: a throwaway database on the server named by ``--postgres-url``
(default ``$CLONESTORE_BENCH_POSTGRES_URL``, then ``$CLONESTORE_TEST_POSTGRES_URL``,
then postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Timing, add_postgres_url, database, measure_interleaved

TARGET = 1.10


def _row(label: str, timing: Timing, base: Timing) -> str:
    ratio = timing.mean_us / base.mean_us
    return (f"  {label:<28} mean {timing.mean_us:8.1f} us  p50 {timing.p50_us:8.1f} us  "
            f"p99 {timing.p99_us:8.1f} us  x{ratio:5.3f}")


def cpu_per_call(
    fns: dict[str, Callable[[int], Any]], calls: int, rounds: int
) -> dict[str, float]:
    """Microseconds of this process's CPU per call, in alternating rounds."""
    spent = dict.fromkeys(fns, 0.0)
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for label, fn in fns.items():
            started = time.process_time()
            for i in range(per_round):
                fn(i)
            spent[label] += time.process_time() - started
    return {label: total / (per_round * rounds) * 1e6 for label, total in spent.items()}


def run_backend(backend: str, url: str, calls: int, rounds: int) -> dict[str, float]:
    plain = clonestore.open(url)
    metered = clonestore.open(url, plugins=["metrics"])
    stores = {"no plugins": plain, "metrics": metered}
    if backend != "memory":
        stores["query log (slow_query_ms)"] = clonestore.open(url, slow_query_ms=60_000)
    try:
        user = plain.users.create(email="bench@example.com", name="Bench")
        gets: dict[str, tuple[Callable[[int], Any], int]] = {
            label: ((lambda i, s=store: s.users.get(user.id)), calls)
            for label, store in stores.items()
        }
        timings = measure_interleaved(gets, rounds=rounds)
        cpu = cpu_per_call({label: fn for label, (fn, _) in gets.items()}, calls, rounds)
        base = timings["no plugins"]
        print(f"{backend}: users.get")
        for label, timing in timings.items():
            added = cpu[label] - cpu["no plugins"]
            print(f"{_row(label, timing, base)}  cpu {cpu[label]:6.1f} us ({added:+.1f})")
        writes = {
            label: ((lambda i, s=store: s.users.update(user.id, name=f"n{i}")), calls // 4)
            for label, store in (("no plugins", plain), ("metrics", metered))
        }
        wtimings = measure_interleaved(writes, rounds=rounds)
        print(f"{backend}: users.update")
        for label, timing in wtimings.items():
            print(_row(label, timing, wtimings["no plugins"]))
        numbers = metered.metrics.percentiles("user.get")
        print(f"  metrics' own view of user.get: {numbers['count']} calls, "
              f"p50 {numbers['p50_ms'] * 1000:.1f} us, p99 {numbers['p99_ms'] * 1000:.1f} us")
        return {
            "get": timings["metrics"].mean_us / base.mean_us,
            "get_p50": timings["metrics"].p50_us / base.p50_us,
            "get_cpu_added_us": cpu["metrics"] - cpu["no plugins"],
            "get_p50_us": base.p50_us,
            "update": wtimings["metrics"].mean_us / wtimings["no plugins"].mean_us,
        }
    finally:
        for store in stores.values():
            store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,postgres")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    add_postgres_url(parser)
    args = parser.parse_args()
    ratios = {}
    for backend in args.backends.split(","):
        with database(backend, args.postgres_url) as url:
            ratios[backend] = run_backend(backend, url, args.calls, args.rounds)
    if "postgres" in ratios:
        pg = ratios["postgres"]
        verdict = "met" if pg["get_p50"] <= TARGET else "MISSED"
        print(f"target: metrics on a PostgreSQL users.get within {TARGET:.2f}x: "
              f"x{pg['get_p50']:.3f} at the median, x{pg['get']:.3f} on the mean ({verdict}); "
              f"CPU added per call {pg['get_cpu_added_us']:.1f} us, "
              f"{100 * pg['get_cpu_added_us'] / pg['get_p50_us']:.1f}% of the median call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
