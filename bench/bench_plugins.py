"""The cache, rate-limit and audit plugins, measured against peers and raw drivers.

In one run, on each backend (memory, sqlite, postgres):

* rate-limit checks: checks per second and p50/p99 latency of
  ``store.ratelimit.check_and_increment`` (fixed window; sliding window and
  token bucket too), against pyrate-limiter (its SQLite and PostgreSQL
  buckets), the ``limits`` package (memory storage) and the raw one-statement
  upsert on the same table through the driver (sqlite3, psycopg2) as the floor; then exact
  admission: 8 threads make 400 attempts at limit 100 through each.
* audit overhead: a write (``users.update``, ``users.create``) with and
  without the audit plugin.
* cache: a hit at L1 (in process) and at L2 (the backend table), and a cached
  ``users.get`` against an uncached one.

Targets: a check at least 4x faster than pyrate-limiter's PostgreSQL bucket and
within 1.2x of the raw upsert; exact admission everywhere; audit at most 2x a
plain write on PostgreSQL and 3x on SQLite; a cached ``users.get`` at most 3 µs.

    python bench/bench_plugins.py                       # memory, sqlite, postgres
    python bench/bench_plugins.py --backends sqlite --calls 5000

Peers are optional: pip install pyrate-limiter "psycopg[binary,pool]" limits
(all in the ``dev`` extra); a missing one is reported and skipped.
PostgreSQL: a throwaway database is created on the server named by
``--postgres-url`` (default ``$CLONESTORE_BENCH_POSTGRES_URL``, then
``$CLONESTORE_TEST_POSTGRES_URL``, then postgresql://postgres@127.0.0.1:5432/postgres)
and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rate_limit_peers import RawUpsert, limits_limiter, pyrate_limiter
from timing import Timing, add_postgres_url, database, measure, measure_interleaved

LIMIT = 100
EXACT_THREADS = 8
EXACT_ATTEMPTS = 400
HUGE = 10**9  # throughput runs: every call admitted, so every call takes the same path


# ----------------------------------------------------------------------------- timing


def admitted_by_threads(attempt: Callable[[], bool]) -> int:
    """How many of EXACT_ATTEMPTS attempts from EXACT_THREADS threads were admitted."""
    admitted = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(EXACT_THREADS)

    def work() -> None:
        barrier.wait()
        try:
            admitted.append(sum(1 for _ in range(EXACT_ATTEMPTS // EXACT_THREADS) if attempt()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(EXACT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(admitted)


# ----------------------------------------------------------------------------- databases


# ----------------------------------------------------------------------------- rate limiting


def bench_ratelimit(
    backend: str, url: str, args: Any, out: dict[str, Any], *, durable: bool = False
) -> None:
    from clonestore_ratelimit import RateLimitPlugin

    store = clonestore.open(url, plugins=[RateLimitPlugin(durable=durable)])
    fns: dict[str, tuple[Callable[[int], Any], int]] = {}
    exact: dict[str, Callable[[], bool]] = {}
    notes: list[str] = []
    tag = uuid.uuid4().hex[:6]
    try:
        limiter = store.ratelimit
        for algorithm in ("fixed_window", "sliding_window", "token_bucket"):
            label = f"clonestore {algorithm}"
            fns[label] = (
                lambda i, a=algorithm: limiter.check_and_increment(
                    "bench-user", f"{a}-{tag}", HUGE, 60, algorithm=a
                ),
                args.calls,
            )
            exact[label] = lambda a=algorithm: (
                limiter.check_and_increment(
                    "bench-user", f"exact-{a}-{tag}", LIMIT, 3600, algorithm=a
                ).allowed
            )
        if backend in ("sqlite", "postgres"):
            raw = RawUpsert(url)
            fns["raw upsert (driver)"] = (lambda i: raw.check("u", tag, HUGE, 60), args.calls)
            exact["raw upsert (driver)"] = lambda: raw.check("u", f"x{tag}", LIMIT, 3600)
            peer = pyrate_limiter(backend, url, HUGE, f"t{tag}")
            waiting = pyrate_limiter(backend, url, LIMIT, f"e{tag}")
            contended = pyrate_limiter(backend, url, LIMIT, f"c{tag}")
            if peer is None or waiting is None or contended is None:
                notes.append(f"pyrate-limiter {backend} bucket skipped: not installed")
            else:
                label = f"pyrate-limiter {backend} bucket"
                fns[label] = (lambda i: peer[0]("bench-user"), args.peer_calls)
                exact[label] = lambda: waiting[1]("bench-user")
                notes.append(
                    f"pyrate-limiter without blocking, {EXACT_THREADS} threads: admitted "
                    f"{admitted_by_threads(lambda: contended[0]('bench-user'))}/"
                    f"{EXACT_ATTEMPTS} (it refuses while another thread holds its lock)"
                )
        else:
            peer_limits = limits_limiter(HUGE)
            exact_limits = limits_limiter(LIMIT)
            if peer_limits is None or exact_limits is None:
                notes.append("limits skipped: not installed")
            else:
                fns["limits memory storage"] = (lambda i: peer_limits("bench-user"), args.calls)
                exact["limits memory storage"] = lambda: exact_limits("bench-user")
        timings = measure_interleaved(fns)
        admitted = {label: admitted_by_threads(attempt) for label, attempt in exact.items()}
    finally:
        store.close()
    title = "rate-limit check" + (" (durable)" if durable else "")
    print(f"  {title:34} {'checks/s':>10} {'p50 µs':>9} {'p99 µs':>9} {'admitted':>9}")
    for label, timing in timings.items():
        print(
            f"  {label:34} {timing.per_second:10,.0f} {timing.p50_us:9.1f} "
            f"{timing.p99_us:9.1f} {admitted[label]:>5}/{EXACT_ATTEMPTS}"
        )
    for note in notes:
        print(f"  note: {note}")
    key = f"{backend} (durable counters)" if durable else backend
    out[key] = {label: (timings[label], admitted[label]) for label in timings}


# ----------------------------------------------------------------------------- audit and cache


def _time_writes(url: str, plugins: list[str], writes: int) -> tuple[Timing, Timing]:
    """Median cost of users.update and users.create on a store with ``plugins``."""
    store = clonestore.open(url, plugins=plugins)
    try:
        tag = uuid.uuid4().hex[:8]
        user = store.users.create(email=f"audit-{tag}@example.com", name="A")
        update = measure(lambda i: store.users.update(user.id, name=f"N{i}"), writes)
        create = measure(
            lambda i: store.users.create(email=f"c-{tag}-{i}@example.com", name="C"), writes
        )
        return update, create
    finally:
        store.close()


#: Audit's cost per write (audited / plain, p50) by backend (issue 16).
AUDIT_TARGETS = {"postgres": 2.0, "sqlite": 3.0}
#: A cached users.get served from L1, p50 µs.
CACHE_HIT_TARGET_US = 3.0


def bench_audit(url: str, args: Any) -> dict[str, float]:
    u0, c0 = _time_writes(url, [], args.writes)
    u1, c1 = _time_writes(url, ["audit"], args.writes)
    print(f"  {'audit overhead per write':34} {'without µs':>10} {'with µs':>9} {'ratio':>9}")
    ratios = {}
    for label, base, audited in (("users.update", u0, u1), ("users.create", c0, c1)):
        ratios[label] = audited.p50_us / base.p50_us
        print(
            f"  {label:34} {base.p50_us:10.1f} {audited.p50_us:9.1f} {ratios[label]:8.2f}x"
        )
    return ratios


def bench_cache(url: str, args: Any) -> float:
    from clonestore_cache import CachePlugin

    rows = []
    store = clonestore.open(url, plugins=["cache"])
    l2_only = clonestore.open(url, plugins=[CachePlugin(l1_size=0)])
    plain = clonestore.open(url)
    try:
        store.cache.set_embedding("bench-q", [0.1] * 1536)
        store.cache.get_embedding("bench-q")
        rows.append(
            (
                "embedding hit, L1",
                measure(lambda i: store.cache.get_embedding("bench-q"), args.calls),
            )
        )
        rows.append(
            (
                "embedding hit, L2",
                measure(lambda i: l2_only.cache.get_embedding("bench-q"), args.calls),
            )
        )
        store.cache.set_llm_response("bench-p", "hello " * 50, "openai")
        rows.append(
            (
                "llm response hit, L1",
                measure(lambda i: store.cache.get_llm_response("bench-p"), args.calls),
            )
        )
        rows.append(
            (
                "llm response hit, L2",
                measure(lambda i: l2_only.cache.get_llm_response("bench-p"), args.calls),
            )
        )
        user = store.users.create(email=f"cache-{uuid.uuid4().hex[:8]}@example.com", name="C")
        rows.append(
            ("users.get, cached (L1)", measure(lambda i: store.users.get(user.id), args.calls))
        )
        rows.append(
            ("users.get, no cache plugin", measure(lambda i: plain.users.get(user.id), args.calls))
        )
    finally:
        store.close()
        l2_only.close()
        plain.close()
    print(f"  {'cache':34} {'p50 µs':>10} {'p99 µs':>9}")
    for label, timing in rows:
        print(f"  {label:34} {timing.p50_us:10.1f} {timing.p99_us:9.1f}")
    return dict(rows)["users.get, cached (L1)"].p50_us


# ----------------------------------------------------------------------------- main


def verdict(results: dict[str, Any], audits: dict[str, Any], hits: dict[str, float]) -> bool:
    ok = True
    print("\ntargets")
    for backend, ratios in audits.items():
        target = AUDIT_TARGETS.get(backend)
        if target is None:
            continue
        for label, ratio in ratios.items():
            good = ratio <= target
            ok &= good
            print(
                f"  {backend}: audited / plain {label} (p50) = {ratio:.2f}x "
                f"(target <= {target:.0f}x) {'PASS' if good else 'FAIL'}"
            )
    for backend, hit in hits.items():
        good = hit <= CACHE_HIT_TARGET_US
        ok &= good
        print(
            f"  {backend}: users.get L1 hit (p50) = {hit:.1f} µs "
            f"(target <= {CACHE_HIT_TARGET_US:.0f} µs) {'PASS' if good else 'FAIL'}"
        )
    exact = True
    for backend, rows in results.items():
        for label, (_timing, admitted) in rows.items():
            if admitted is not None and admitted != LIMIT:
                exact = False
                print(f"  FAIL exact admission: {backend} {label} admitted {admitted}, not {LIMIT}")
    ok &= exact
    print(
        f"  exact admission ({LIMIT} of {EXACT_ATTEMPTS} from {EXACT_THREADS} threads): "
        f"{'everywhere' if exact else 'NOT everywhere'}"
    )
    for backend in ("sqlite", "postgres", "postgres (durable counters)"):
        rows = results.get(backend)
        if not rows:
            continue
        ours = rows["clonestore fixed_window"][0]
        raw = rows["raw upsert (driver)"][0]
        ratio = ours.p50_us / raw.p50_us
        good = ratio <= 1.2
        ok &= good
        print(
            f"  {backend}: clonestore check / raw upsert (p50) = {ratio:.2f}x "
            f"(target <= 1.2x) {'PASS' if good else 'FAIL'}"
        )
        engine = backend.split()[0]
        peer = rows.get(f"pyrate-limiter {engine} bucket")
        if peer is not None:
            speedup = peer[0].p50_us / ours.p50_us
            target = 4.0 if backend == "postgres" else None
            good = target is None or speedup >= target
            ok &= good
            goal = f"(target >= {target:.0f}x) {'PASS' if good else 'FAIL'}" if target else ""
            print(
                f"  {backend}: clonestore check is {speedup:.1f}x faster than "
                f"pyrate-limiter (p50) {goal}"
            )
    memory = results.get("memory")
    if memory and "limits memory storage" in memory:
        ours = memory["clonestore fixed_window"][0]
        peer = memory["limits memory storage"][0]
        print(
            f"  memory: a clonestore check takes {ours.p50_us / peer.p50_us:.1f}x as long as "
            f"a limits check (p50; no target: memory:// is a full transactional backend)"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,postgres")
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per measurement")
    parser.add_argument("--peer-calls", type=int, default=1000, help="timed calls for peers")
    parser.add_argument("--writes", type=int, default=1000, help="timed writes (audit)")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    audits: dict[str, Any] = {}
    hits: dict[str, float] = {}
    for backend in args.backends.split(","):
        print(f"\n== {backend}")
        with database(backend, args.postgres_url) as url:
            bench_ratelimit(backend, url, args, results)
            if backend == "postgres":
                bench_ratelimit(backend, url, args, results, durable=True)
            audits[backend] = bench_audit(url, args)
            hits[backend] = bench_cache(url, args)
    return 0 if verdict(results, audits, hits) else 1


if __name__ == "__main__":
    sys.exit(main())
