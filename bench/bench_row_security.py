"""Row-level security in PostgreSQL: what ``row_security=on`` costs a ``for_user`` point
call, as ratios measured in one run.

A throwaway database owned by a throwaway role, ``--users`` users with a session each,
row security turned on for a second throwaway role (both dropped afterwards). Each point
call (a view made per call, as per request) is timed, interleaved, on:

* ``off``: the owner's store (no policy binds the owner, no setting is sent);
* ``on``: the application role's store opened with ``row_security=on`` (the policy on
  every statement, ``SET LOCAL clonestore.user_id`` in the same round trip);
* ``raw``: psycopg2 alone, the same ``SELECT`` by id as the owner.

Each way spreads its blocks of calls over ``--stores`` stores opened alike (as many
server processes, block k on store k mod N): on a shared machine one server process can
run slower than another for a whole run (placed beside a busy process: 1.7x the CPU
time per call was seen for one connection of four, for the whole run), and with one
connection per way that luck alone moved the ratio by 0.2.

The figure is ``on / off`` per call (the target: at most 1.10).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from timing import Timing, add_postgres_url, measure_interleaved

import clonestore


def _url(server: str, role: str, database: str) -> str:
    parts = urlsplit(server)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(("postgresql", f"{role}@{host}{port}", f"/{database}", "", ""))


def bench(server: str, users: int, calls: int, rounds: int, stores: int = 4) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    owner, app, name = f"bench_rls_owner_{tag}", f"bench_rls_app_{tag}", f"bench_rls_{tag}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {owner} LOGIN")
        cur.execute(f"CREATE ROLE {app} LOGIN")
        cur.execute(f"CREATE DATABASE {name} OWNER {owner}")
    try:
        return _run(_url(server, owner, name), _url(server, app, name), app, users, calls,
                    rounds, stores)  # fmt: skip
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"DROP ROLE IF EXISTS {app}")
            cur.execute(f"DROP ROLE IF EXISTS {owner}")
        admin.close()


def _spread(made: Sequence[Callable[[int], object]], block: int) -> Callable[[int], object]:
    """One way's call over several stores: calls ``i`` in block ``i // block`` go to store
    ``(i // block) % len(made)``; every store is warmed up first."""
    for fn in made:
        for i in range(20):
            fn(i)
    return lambda i: made[(i // block) % len(made)](i)


def _run(owner_url: str, app_url: str, app: str, users: int, calls: int,
         rounds: int, stores: int) -> dict[str, float]:  # fmt: skip
    block = max(1, calls // rounds)
    with clonestore.open(owner_url) as setup, contextlib.ExitStack() as opened:
        made = [setup.users.create(email=f"u{i}@example.com", name=f"u{i}") for i in range(users)]
        sessions = [setup.sessions.create(user_id=u.id) for u in made]
        memories = [
            setup.memories.create(user_id=u.id, content=f"u{n} likes tea", memory_type="fact")
            for n, u in enumerate(made)
        ]
        setup.backend.enable_row_security(list(setup.tables.values()), app)  # type: ignore[attr-defined]
        ids = [(u.id, s.id, m.id) for u, s, m in zip(made, sessions, memories, strict=True)]
        offs = [opened.enter_context(clonestore.open(owner_url)) for _ in range(stores)]
        ons = [opened.enter_context(clonestore.open(app_url, row_security=True))
               for _ in range(stores)]  # fmt: skip
        raws = []
        for _ in range(stores):
            raw = psycopg2.connect(owner_url)
            raw.autocommit = True
            opened.callback(raw.close)
            raws.append(raw.cursor())

        def user_get(store: clonestore.Store) -> Callable[[int], object]:
            return lambda i: store.for_user(ids[i % users][0]).users.get(ids[i % users][0])

        def session_get(store: clonestore.Store) -> Callable[[int], object]:
            return lambda i: store.for_user(ids[i % users][0]).sessions.get(ids[i % users][1])

        def memory_get(store: clonestore.Store) -> Callable[[int], object]:
            return lambda i: store.for_user(ids[i % users][0]).memories.get(ids[i % users][2])

        def user_update(store: clonestore.Store) -> Callable[[int], object]:
            return lambda i: store.for_user(ids[i % users][0]).users.update(
                ids[i % users][0], name=f"n{i}")

        def raw_get(cursor: Any) -> Callable[[int], object]:
            def get(i: int) -> object:
                cursor.execute("SELECT * FROM users WHERE id = %s", (ids[i % users][0],))
                return cursor.fetchone()

            return get

        ratios: dict[str, float] = {}
        for label, make in (("users.get", user_get), ("sessions.get", session_get),
                            ("memories.get", memory_get),
                            ("users.update", user_update)):  # fmt: skip
            fns = {"off": (_spread([make(s) for s in offs], block), calls),
                   "on": (_spread([make(s) for s in ons], block), calls)}  # fmt: skip
            if label == "users.get":
                fns["raw"] = (_spread([raw_get(c) for c in raws], block), calls)
            timings = measure_interleaved(fns, rounds=rounds)
            extra = (f", raw {timings['raw'].p50_us:7.1f} us" if "raw" in timings else "")
            ratios[label] = _report(label, timings, extra)
        ratios.update(_run_async(owner_url, app_url, ids, calls, rounds, stores))
    return ratios


def _report(label: str, timings: dict[str, Timing], extra: str = "") -> float:
    ratio = timings["on"].p50_us / timings["off"].p50_us
    print(f"  {label:22} off {timings['off'].p50_us:7.1f} us, on "
          f"{timings['on'].p50_us:7.1f} us (p50){extra}: on/off {ratio:.3f} "
          f"(mean {timings['on'].mean_us / timings['off'].mean_us:.3f})")
    return ratio


def _run_async(owner_url: str, app_url: str, ids: list[tuple[str, str, str]], calls: int,
               rounds: int, stores: int) -> dict[str, float]:  # fmt: skip
    """The same point calls under ``open_async`` (each awaited on one event loop): outside
    a transaction a view's statement there is BEGIN + SET LOCAL, the statement, COMMIT."""
    users = len(ids)
    block = max(1, calls // rounds)
    ratios: dict[str, float] = {}
    loop = asyncio.new_event_loop()
    try:
        offs = [loop.run_until_complete(clonestore.open_async(owner_url)) for _ in range(stores)]
        ons = [loop.run_until_complete(clonestore.open_async(app_url, row_security=True))
               for _ in range(stores)]  # fmt: skip

        def user_get(store: clonestore.AsyncStore) -> Callable[[int], object]:
            return lambda i: loop.run_until_complete(
                store.for_user(ids[i % users][0]).users.get(ids[i % users][0]))

        def user_get_in_transaction(store: clonestore.AsyncStore) -> Callable[[int], object]:
            async def call(i: int) -> None:
                view = store.for_user(ids[i % users][0])
                async with view.transaction():
                    await view.users.get(ids[i % users][0])
                    await view.sessions.get(ids[i % users][1])

            return lambda i: loop.run_until_complete(call(i))

        print("  open_async:")
        for label, make in (("users.get", user_get),
                            ("users+sessions.get in tx", user_get_in_transaction)):  # fmt: skip
            fns = {"off": (_spread([make(s) for s in offs], block), calls),
                   "on": (_spread([make(s) for s in ons], block), calls)}  # fmt: skip
            ratios[f"async {label}"] = _report(label, measure_interleaved(fns, rounds=rounds))
        for store in offs + ons:
            loop.run_until_complete(store.close())
    finally:
        loop.close()
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--calls", type=int, default=3000, help="calls per way and operation")
    parser.add_argument("--rounds", type=int, default=0,
                        help="alternations of the ways (default: blocks of 100 calls; each "
                        "store has its own connection, and on a loaded machine the first call "
                        "after a switch waits for its server process to be scheduled)")
    parser.add_argument("--stores", type=int, default=4,
                        help="stores (server processes) each way spreads its calls over")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    print(f"row_security on vs off, PostgreSQL, {args.users} users, {args.calls} calls each "
          f"over {args.stores} stores (load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")
    bench(args.postgres_url, args.users, args.calls, args.rounds or max(1, args.calls // 100),
          args.stores)  # fmt: skip
    print(f"  (load average {os.getloadavg()[0]:.1f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
