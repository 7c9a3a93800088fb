"""Row-level security in PostgreSQL: what ``row_security=on`` costs a ``for_user`` point
call, as ratios measured in one run.

A throwaway database owned by a throwaway role, ``--users`` users with a session each,
row security turned on for a second throwaway role (both dropped afterwards). Each point
call (a view made per call, as per request) is timed, interleaved, on:

* ``off``: the owner's store (no policy binds the owner, no setting is sent);
* ``on``: the application role's store opened with ``row_security=on`` (the policy on
  every statement, ``set_config`` in the same round trip);
* ``raw``: psycopg2 alone, the same ``SELECT`` by id as the owner.

The figure is ``on / off`` per call (the target: at most 1.10).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from timing import Timing, add_postgres_url, measure_interleaved

import clonestore


def _url(server: str, role: str, database: str) -> str:
    parts = urlsplit(server)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(("postgresql", f"{role}@{host}{port}", f"/{database}", "", ""))


def bench(server: str, users: int, calls: int, rounds: int) -> dict[str, float]:
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
                    rounds)  # fmt: skip
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"DROP ROLE IF EXISTS {app}")
            cur.execute(f"DROP ROLE IF EXISTS {owner}")
        admin.close()


def _run(owner_url: str, app_url: str, app: str, users: int, calls: int,
         rounds: int) -> dict[str, float]:  # fmt: skip
    with clonestore.open(owner_url) as off, clonestore.open(owner_url) as setup:
        made = [setup.users.create(email=f"u{i}@example.com", name=f"u{i}") for i in range(users)]
        sessions = [setup.sessions.create(user_id=u.id) for u in made]
        setup.backend.enable_row_security(list(setup.tables.values()), app)  # type: ignore[attr-defined]
        ids = [(u.id, s.id) for u, s in zip(made, sessions, strict=True)]
        raw = psycopg2.connect(owner_url)
        raw.autocommit = True
        cursor = raw.cursor()
        with clonestore.open(app_url, row_security=True) as on:

            def user_get(store: clonestore.Store):
                return lambda i: store.for_user(ids[i % users][0]).users.get(ids[i % users][0])

            def session_get(store: clonestore.Store):
                return lambda i: store.for_user(ids[i % users][0]).sessions.get(ids[i % users][1])

            def user_update(store: clonestore.Store):
                return lambda i: store.for_user(ids[i % users][0]).users.update(
                    ids[i % users][0], name=f"n{i}")

            def raw_get(i: int) -> object:
                cursor.execute("SELECT * FROM users WHERE id = %s", (ids[i % users][0],))
                return cursor.fetchone()

            ratios: dict[str, float] = {}
            for label, make in (("users.get", user_get), ("sessions.get", session_get),
                                ("users.update", user_update)):  # fmt: skip
                fns = {"off": (make(off), calls), "on": (make(on), calls)}
                if label == "users.get":
                    fns["raw"] = (raw_get, calls)
                timings = measure_interleaved(fns, rounds=rounds)
                extra = (f", raw {timings['raw'].p50_us:7.1f} us" if "raw" in timings else "")
                ratios[label] = _report(label, timings, extra)
        raw.close()
        _run_async(owner_url, app_url, ids, calls, rounds)
    return ratios


def _report(label: str, timings: dict[str, Timing], extra: str = "") -> float:
    ratio = timings["on"].p50_us / timings["off"].p50_us
    print(f"  {label:22} off {timings['off'].p50_us:7.1f} us, on "
          f"{timings['on'].p50_us:7.1f} us (p50){extra}: on/off {ratio:.3f} "
          f"(mean {timings['on'].mean_us / timings['off'].mean_us:.3f})")
    return ratio


def _run_async(owner_url: str, app_url: str, ids: list[tuple[str, str]], calls: int,
               rounds: int) -> None:  # fmt: skip
    """The same point calls under ``open_async`` (each awaited on one event loop): outside
    a transaction a view's statement there is BEGIN + SET LOCAL, the statement, COMMIT."""
    users = len(ids)
    loop = asyncio.new_event_loop()
    try:
        off = loop.run_until_complete(clonestore.open_async(owner_url))
        on = loop.run_until_complete(clonestore.open_async(app_url, row_security=True))

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
            timings = measure_interleaved({"off": (make(off), calls), "on": (make(on), calls)},
                                          rounds=rounds)  # fmt: skip
            _report(label, timings)
        loop.run_until_complete(off.close())
        loop.run_until_complete(on.close())
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--calls", type=int, default=3000, help="calls per way and operation")
    parser.add_argument("--rounds", type=int, default=0,
                        help="alternations of the ways (default: blocks of 100 calls; each "
                        "store has its own connection, and on a loaded machine the first call "
                        "after a switch waits for its server process to be scheduled)")
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    print(f"row_security on vs off, PostgreSQL, {args.users} users, {args.calls} calls each "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    bench(args.postgres_url, args.users, args.calls, args.rounds or max(1, args.calls // 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
