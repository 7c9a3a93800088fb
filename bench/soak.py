"""Soak: a mixed workload under injected faults, then a check that no acknowledged write was lost.

    python bench/soak.py --url postgresql://postgres@127.0.0.1:5432/soak --seconds 300
    python bench/soak.py --url sqlite:////tmp/soak.db --seconds 60 --threads 4
    python bench/soak.py --url mariadb://root@127.0.0.1:3306/soak --seconds 60

Threads create users, sessions, turns, memories and update users (with
``expected_version``) while a fault injector runs: on PostgreSQL it
terminates the store's connections (``pg_terminate_backend``) at random
intervals, on MariaDB it ``KILL``s the connections to the soak's database; on
SQLite a competing connection of its own holds the write lock for random spells
(opened with the driver clonestore runs on: two SQLite libraries in one process,
such as pysqlite3's and the standard library's, do not see each other's locks and
corrupt the file between them).
Every write that returned success is recorded; at the end each is read back,
and every session's totals are compared with the sum of its turns.

Prints operations, errors by class and lost writes. Exits 1 if a write was
lost, a session's totals disagree with its turns, or an exception other than a
clonestore error escaped. The workload (:class:`Ledger`, :func:`run_workload`)
is also used by ``tests/reliability``.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from peewee import sqlite3  # the driver Peewee (so clonestore) runs on: pysqlite3 if installed

import clonestore
from clonestore import ClonestoreError, Conflict

__all__ = [
    "Ledger",
    "kill_connections",
    "kill_mariadb_connections",
    "lock_sqlite",
    "run_workload",
    "verify",
]


class Ledger:
    """Writes the store acknowledged, and what the workload saw go wrong."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.escaped: list[BaseException] = []
        self.users: dict[str, str] = {}  # id -> email
        self.names: dict[str, set[str]] = {}  # user id -> names it may have now
        self.sessions: dict[str, str] = {}  # id -> user id
        self.turns: dict[str, tuple[str, int, Decimal]] = {}  # id -> session, latency, cost
        self.memories: dict[str, str] = {}  # id -> content

    def failed(self, exc: BaseException) -> None:
        with self.lock:
            self.errors[type(exc).__name__] += 1
            if not isinstance(exc, ClonestoreError):
                self.escaped.append(exc)


def _one_step(store: clonestore.Store, ledger: Ledger, rng: random.Random, mine: dict[str, Any]):
    """One random operation; records what the store acknowledged."""
    roll = rng.random()
    if roll < 0.12 or not mine["users"]:
        email = f"soak-{uuid.uuid4().hex}@example.com"
        user = store.users.create(email=email, name="n0")
        with ledger.lock:
            ledger.users[user.id] = email
            ledger.names[user.id] = {"n0"}
        mine["users"].append(user.id)
    elif roll < 0.25 or not mine["sessions"]:
        session = store.sessions.create(user_id=rng.choice(mine["users"]))
        with ledger.lock:
            ledger.sessions[session.id] = session.user_id
        mine["sessions"].append(session.id)
    elif roll < 0.60:
        latency = rng.randrange(0, 500)
        cost = Decimal(rng.randrange(0, 10**6)) / 10**6
        turn = store.sessions.add_turn(
            rng.choice(mine["sessions"]), llm_latency_ms=latency, llm_cost=cost,
            user_transcript="'; DROP TABLE users; --",
        )
        with ledger.lock:
            ledger.turns[turn.id] = (turn.session_id, latency, cost)
    elif roll < 0.72:
        user_id = rng.choice(mine["users"])
        name = f"n{rng.randrange(10**6)}"
        with ledger.lock:
            ledger.names[user_id].add(name)  # may apply even if the call fails
        current = store.users.get(user_id)
        try:
            store.users.update(user_id, expected_version=current.version, name=name)
        except Conflict:
            pass  # only this thread writes this user: a retried commit that had applied
        else:
            with ledger.lock:
                ledger.names[user_id] = {name}
    elif roll < 0.80:
        memory = store.memories.add(rng.choice(mine["users"]), "tea", [rng.random(), 1.0])
        with ledger.lock:
            ledger.memories[memory.id] = memory.content
    elif roll < 0.90:
        store.sessions.find_many(where={"user_id": rng.choice(mine["users"])}, limit=20)
    else:
        store.sessions.get_with_turns(rng.choice(mine["sessions"]))


def run_workload(
    store: clonestore.Store, ledger: Ledger, stop: threading.Event, seed: int = 0
) -> None:
    """Random operations on ``store`` until ``stop`` is set, recording into ``ledger``."""
    rng = random.Random(seed)
    mine: dict[str, Any] = {"users": [], "sessions": []}
    while not stop.is_set():
        try:
            _one_step(store, ledger, rng, mine)
        except Exception as exc:
            ledger.failed(exc)
        with ledger.lock:
            ledger.ops += 1


def verify(store: clonestore.Store, ledger: Ledger) -> list[str]:
    """What was lost or is inconsistent (empty when all is well)."""
    problems: list[str] = []
    for user_id, email in ledger.users.items():
        user = store.users.get_or_none(user_id)
        if user is None or user.email != email:
            problems.append(f"user {user_id} lost")
        elif user.name not in ledger.names[user_id]:
            problems.append(f"user {user_id} has name {user.name!r}, acknowledged otherwise")
    for turn_id, (session_id, latency, cost) in ledger.turns.items():
        turn = store.turns.get_or_none(turn_id)
        if turn is None or (turn.session_id, turn.latency_ms, turn.cost) != (
            session_id, latency, cost
        ):
            problems.append(f"turn {turn_id} lost")
    for memory_id in ledger.memories:
        if store.memories.get_or_none(memory_id) is None:
            problems.append(f"memory {memory_id} lost")
    for session_id in ledger.sessions:
        got = store.sessions.get_or_none(session_id)
        if got is None:
            problems.append(f"session {session_id} lost")
            continue
        turns = store.turns.find_many(where={"session_id": session_id})
        sums = (len(turns), sum(t.latency_ms for t in turns), sum(t.cost for t in turns))
        if (got.total_turns, got.total_latency_ms, got.total_cost) != sums:
            problems.append(f"session {session_id} totals {got.total_turns} disagree with turns")
    return problems


def kill_connections(admin_url: str, application_name: str) -> int:
    """Terminate every server connection whose application_name is the given one."""
    import psycopg2

    conn = psycopg2.connect(admin_url, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def kill_mariadb_connections(url: str) -> int:
    """``KILL`` every other server connection to the URL's database; how many."""
    from urllib.parse import unquote, urlsplit

    import pymysql

    parts = urlsplit(url)
    conn = pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
        connect_timeout=5, autocommit=True,
    )  # fmt: skip
    killed = 0
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND ID <> CONNECTION_ID()",
                (unquote(parts.path.lstrip("/")),),
            )
            for (pid,) in cur.fetchall():
                try:
                    cur.execute(f"KILL {int(pid)}")
                    killed += 1
                except pymysql.err.OperationalError:
                    pass  # gone already
    finally:
        conn.close()
    return killed


def _hold_lock(path: str, seconds: float, held: Any = None) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        if held is not None:
            held.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@contextmanager
def lock_sqlite(path: str, seconds: float) -> Iterator[multiprocessing.Process]:
    """Another process holding the database's write lock for ``seconds`` (started, joined).

    Yields once the other process holds the lock (a spawned interpreter can take seconds
    to start on a loaded machine)."""
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    proc = context.Process(target=_hold_lock, args=(path, seconds, held))
    proc.start()
    try:
        if not held.wait(60):
            raise RuntimeError("the lock-holding process did not take the lock within 60 s")
        yield proc
    finally:
        proc.join(seconds + 30)


def _injector(url: str, application_name: str, stop: threading.Event, rng: random.Random,
              counts: collections.Counter[str]) -> Callable[[], None]:
    def run() -> None:
        while not stop.wait(rng.uniform(0.2, 1.5)):
            if url.startswith("postgres"):
                counts["connections killed"] += kill_connections(url, application_name)
            elif url.startswith("mariadb"):
                counts["connections killed"] += kill_mariadb_connections(url)
            else:
                _hold_lock(url.split("://", 1)[1][1:], rng.uniform(0.05, 0.6))
                counts["locks held"] += 1
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="sqlite:///soak.db")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    name = f"clonestore-soak-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = (
        {"application_name": name, "pool_size": args.threads + 2, "pool_timeout": 5}
        if args.url.startswith("postgres")
        else {"pool_size": args.threads + 2, "pool_timeout": 5}
        if args.url.startswith("mariadb")
        else {"busy_timeout": 0.3}
    )
    ledger, stop, faults = Ledger(), threading.Event(), collections.Counter[str]()
    rng = random.Random(args.seed)
    started = time.monotonic()
    with clonestore.open(args.url, **options) as store:
        workers = [
            threading.Thread(target=run_workload, args=(store, ledger, stop, args.seed + i))
            for i in range(args.threads)
        ]
        workers.append(threading.Thread(target=_injector(args.url, name, stop, rng, faults)))
        for thread in workers:
            thread.start()
        stop.wait(args.seconds)
        stop.set()
        for thread in workers:
            thread.join()
        problems = _verify_retrying(store, ledger)
    elapsed = time.monotonic() - started
    print(f"url: {store!r}  seconds: {elapsed:.1f}  threads: {args.threads}")
    print(f"operations: {ledger.ops}  ({ledger.ops / elapsed:.0f}/s)")
    print("faults injected: " + (", ".join(f"{k} {v}" for k, v in faults.items()) or "none"))
    print("errors by class: " + (", ".join(f"{k} {v}" for k, v in ledger.errors.most_common())
                                 or "none"))
    print(f"acknowledged: users {len(ledger.users)}, sessions {len(ledger.sessions)}, "
          f"turns {len(ledger.turns)}, memories {len(ledger.memories)}")
    print(f"writes lost or inconsistent: {len(problems)}")
    for problem in problems[:20]:
        print("  " + problem)
    for exc in ledger.escaped[:5]:
        print(f"  escaped: {type(exc).__module__}.{type(exc).__name__}: {exc}")
    return 1 if problems or ledger.escaped else 0


def _verify_retrying(store: clonestore.Store, ledger: Ledger) -> list[str]:
    for _ in range(20):  # the last kill may have landed on a pooled connection
        try:
            return verify(store, ledger)
        except clonestore.StorageUnavailable:
            time.sleep(0.2)
    return verify(store, ledger)


if __name__ == "__main__":
    sys.exit(main())
