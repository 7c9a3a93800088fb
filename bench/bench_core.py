"""Repository calls through clonestore against plain Peewee and the raw driver.

In one run, on the same database, times: get by id, get by email, create,
update, a page of 50, and create_many of 10,000 rows, through

* clonestore (``store.users``),
* plain Peewee (models reflected from the same tables with playhouse.reflection),
* the raw driver (sqlite3, the very module Peewee runs on, pysqlite3's when
  installed; psycopg2, with ``execute_values`` for bulk; PyMySQL, whose ``executemany``
  sends multi-row inserts),
* SQLAlchemy 2 Core and ORM (a peer users would pick instead; left out when
  SQLAlchemy is not installed),

at 1k, 10k and 100k seeded users (``--rows``), and prints medians (µs per
call; ms for bulk) and ratios. Within each phase every call is timed in
alternating rounds across the ways, so a slow moment of the shared machine
weighs on all of them alike. memory:// is timed with the same repository
calls. Targets (DESIGN section 8 and the issue "Costs that do not grow with
the data"): point calls (get, find_by_email, create, update) within 2x of
sqlite3 and 1.2x of psycopg2 and ahead of SQLAlchemy Core; bulk within 1.5x
of ``execute_values``.

    python bench/bench_core.py                       # memory, sqlite, postgres, mariadb
    python bench/bench_core.py --backends memory,sqlite --rows 1000 --calls 2000
    CLONESTORE_BENCH_POSTGRES_URL=postgresql://postgres@host/db python bench/bench_core.py

PostgreSQL: a throwaway database is created on the server named by
``--postgres-url`` (default: ``$CLONESTORE_BENCH_POSTGRES_URL``, then
``$CLONESTORE_TEST_POSTGRES_URL``, then postgresql://postgres@127.0.0.1:5432/postgres)
and dropped afterwards.
MariaDB: the same on ``--mariadb-url`` (default: ``$CLONESTORE_BENCH_MARIADB_URL``,
then ``$CLONESTORE_TEST_MARIADB_URL``, then mariadb://root@127.0.0.1:3306/), against
clonestore and raw PyMySQL only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from peewee import (
    sqlite3,  # the driver module Peewee (so clonestore) runs on: pysqlite3 if installed
)

import clonestore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import (
    add_postgres_url,
    mariadb_connect,
    measure_interleaved,
    throwaway_mariadb,
    throwaway_postgres,
)

OPS = ("get", "get_by_email", "create", "update", "page_50")
BULK = "create_many"


# ----------------------------------------------------------------------------- runners


#: A way of timing: yields the calls of each phase (reads, single writes, bulk) by name,
#: each taking the call's number.
Phases = Iterator[dict[str, Callable[[int], Any]]]


class Run:
    """Timings of one way of talking to one database."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.us: dict[str, float] = {}


def seed_users(store: clonestore.Store, n: int, tag: str) -> list[clonestore.User]:
    seeded: list[clonestore.User] = []
    for start in range(0, n, 10_000):
        seeded += store.users.create_many(
            {"email": f"seed-{tag}-{i}@example.com", "name": f"Seed {i}", "settings": {"i": i}}
            for i in range(start, min(n, start + 10_000))
        )
    return seeded


def analyze(store: clonestore.Store) -> None:
    """Planner statistics as a running deployment has them (autovacuum on PostgreSQL,
    PRAGMA optimize on SQLite), not as a fresh bulk load leaves them."""
    store.backend.database.execute_sql("ANALYZE")  # type: ignore[attr-defined]


def time_clonestore(store: clonestore.Store, seeded: list[clonestore.User], args: Any) -> Phases:
    users = store.users
    n = len(seeded)
    yield {
        "get": lambda i: users.get(seeded[i % n].id),
        "get_by_email": lambda i: users.find_by_email(seeded[i % n].email),
        "page_50": lambda i: users.page(size=50),
    }
    tag = uuid.uuid4().hex[:8]
    yield {
        "create": lambda i: users.create(
            email=f"cs-{tag}-{i}@example.com", name="New", settings={"i": i}
        ),
        "update": lambda i: users.update(seeded[i % n].id, name=f"N{i}"),
    }

    def bulk(r: int) -> None:
        users.create_many(
            {"email": f"bulk-{tag}-{r}-{i}@example.com", "name": "Bulk", "settings": {"i": i}}
            for i in range(args.bulk)
        )

    yield {BULK: bulk}


def time_peewee(db: Any, seeded: list[clonestore.User], args: Any) -> Phases:
    """Plain Peewee on the same tables, models reflected from the database."""
    from playhouse.reflection import generate_models

    models = generate_models(db, table_names=["users"])
    User = models["users"]
    template = User.select().limit(1).dicts().get()
    n = len(seeded)
    yield {
        "get": lambda i: User.get_by_id(seeded[i % n].id),
        "get_by_email": lambda i: User.get(User.email_key == seeded[i % n].email.casefold()),
        "page_50": lambda i: list(
            User.select().where(User.deleted_at.is_null()).order_by(User.created_at, User.id)
            .limit(51)
        ),
    }
    tag = uuid.uuid4().hex[:8]

    def row(i: int, prefix: str) -> dict[str, Any]:
        email = f"{prefix}-{tag}-{i}@example.com"
        return {**template, "id": str(uuid.uuid4()), "email": email, "email_key": email}

    yield {
        "create": lambda i: User.insert(row(i, "pw")).execute(),
        "update": lambda i: User.update(name=f"P{i}", version=User.version + 1)
        .where(User.id == seeded[i % n].id)
        .execute(),
    }

    def bulk(r: int) -> None:
        with db.atomic():
            User.insert_many([row(i, f"pwb{r}") for i in range(args.bulk)]).execute()

    yield {BULK: bulk}


def time_sqlalchemy(url: str, orm: bool, seeded: list[clonestore.User], args: Any) -> Phases:
    """SQLAlchemy 2 on the same tables (reflected): Core with one connection, or the ORM
    with a session per call (what a request handler does), both with compiled-statement
    caching as SQLAlchemy does by default."""
    import sqlalchemy as sa
    from sqlalchemy.ext.automap import automap_base
    from sqlalchemy.orm import Session

    engine = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg2://", 1),
        # On SQLite, the same driver module (and SQLite library) as the other ways.
        **({"module": sqlite3} if url.startswith("sqlite") else {}),
    )
    if url.startswith("sqlite"):
        # The same durability as the other ways: WAL with synchronous=NORMAL.
        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA journal_mode=wal")
            dbapi_conn.execute("PRAGMA synchronous=normal")

    meta = sa.MetaData()
    users = sa.Table("users", meta, autoload_with=engine)
    n = len(seeded)
    tag = uuid.uuid4().hex[:8]
    with engine.connect() as conn:
        template = dict(conn.execute(sa.select(users).limit(1)).mappings().one())

    def row(i: int, prefix: str) -> dict[str, Any]:
        email = f"{prefix}-{tag}-{i}@example.com"
        return {**template, "id": str(uuid.uuid4()), "email": email, "email_key": email}

    by_id = sa.select(users).where(users.c.id == sa.bindparam("id"))
    by_email = (
        sa.select(users)
        .where(users.c.email_key == sa.bindparam("key"), users.c.deleted_at.is_(None))
        .limit(1)
    )
    page = (
        sa.select(users)
        .where(users.c.deleted_at.is_(None))
        .order_by(users.c.created_at, users.c.id)
        .limit(51)
    )
    if not orm:
        conn = engine.connect()
        yield {
            "get": lambda i: conn.execute(by_id, {"id": seeded[i % n].id}).first(),
            "get_by_email": lambda i: conn.execute(
                by_email, {"key": seeded[i % n].email.casefold()}
            ).first(),
            "page_50": lambda i: conn.execute(page).all(),
        }
        conn.rollback()

        def create(i: int) -> None:
            conn.execute(sa.insert(users), row(i, "sac"))
            conn.commit()

        def update(i: int) -> None:
            conn.execute(
                sa.update(users)
                .where(users.c.id == seeded[i % n].id)
                .values(name=f"S{i}", version=users.c.version + 1)
            )
            conn.commit()

        yield {"create": create, "update": update}

        def bulk(r: int) -> None:
            conn.execute(sa.insert(users), [row(i, f"sacb{r}") for i in range(args.bulk)])
            conn.commit()

        yield {BULK: bulk}
        conn.close()
    else:
        base = automap_base(metadata=meta)
        base.prepare()
        User = base.classes.users

        def get(i: int) -> Any:
            with Session(engine) as session:
                return session.get(User, seeded[i % n].id)

        def find(i: int) -> Any:
            with Session(engine) as session:
                key = seeded[i % n].email.casefold()
                return session.scalars(
                    sa.select(User).where(User.email_key == key, User.deleted_at.is_(None))
                ).first()

        def page50(i: int) -> Any:
            with Session(engine) as session:
                return session.scalars(
                    sa.select(User)
                    .where(User.deleted_at.is_(None))
                    .order_by(User.created_at, User.id)
                    .limit(51)
                ).all()

        yield {"get": get, "get_by_email": find, "page_50": page50}

        def create(i: int) -> None:
            with Session(engine) as session:
                session.add(User(**row(i, "sao")))
                session.commit()

        def update(i: int) -> None:
            with Session(engine) as session:
                user = session.get(User, seeded[i % n].id)
                user.name = f"O{i}"
                user.version = user.version + 1
                session.commit()

        yield {"create": create, "update": update}

        def bulk(r: int) -> None:
            with Session(engine) as session:
                session.add_all([User(**row(i, f"saob{r}")) for i in range(args.bulk)])
                session.commit()

        yield {BULK: bulk}
    engine.dispose()


def _peers(url: str, seeded: list[clonestore.User], args: Any) -> list[tuple[Run, Phases]]:
    """SQLAlchemy Core and ORM runs, when SQLAlchemy is installed (a bench-only peer)."""
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        print("SQLAlchemy is not installed: its columns are left out", file=sys.stderr)
        return []
    core, orm = Run("sqlalchemy core"), Run("sqlalchemy orm")
    return [
        (core, time_sqlalchemy(url, False, seeded, args)),
        (orm, time_sqlalchemy(url, True, seeded, args)),
    ]


def time_raw(conn: Any, paramstyle: str, seeded: list[clonestore.User], args: Any) -> Phases:
    """The raw DB-API driver on the same tables: the floor."""
    p = "?" if paramstyle == "qmark" else "%s"
    cur = conn.cursor()
    cur.execute("SELECT * FROM users LIMIT 1")
    columns = [d[0] for d in cur.description]
    template = list(cur.fetchone())
    # MariaDB's generated scope columns (its partial uniques) are not written.
    kept = [i for i, name in enumerate(columns) if not name.endswith("_scope")]
    columns, template = [columns[i] for i in kept], [template[i] for i in kept]
    pymysql = type(conn).__module__.startswith("pymysql")
    if paramstyle != "qmark" and not pymysql:
        from psycopg2.extras import Json

        # psycopg2 reads json columns as dicts; send them back as JSON.
        template = [Json(v) if isinstance(v, dict) else v for v in template]
    id_at, email_at, key_at = (columns.index(c) for c in ("id", "email", "email_key"))
    n = len(seeded)

    def fetch_one(sql: str, params: tuple[Any, ...]) -> Any:
        cur.execute(sql, params)
        return cur.fetchone()

    def page(i: int) -> list[Any]:
        cur.execute(
            "SELECT * FROM users WHERE deleted_at IS NULL ORDER BY created_at, id LIMIT 51"
        )
        return list(cur.fetchall())

    yield {
        "get": lambda i: fetch_one(f"SELECT * FROM users WHERE id = {p}", (seeded[i % n].id,)),
        "get_by_email": lambda i: fetch_one(
            f"SELECT * FROM users WHERE email_key = {p} AND deleted_at IS NULL LIMIT 1",
            (seeded[i % n].email.casefold(),),
        ),
        "page_50": page,
    }
    tag = uuid.uuid4().hex[:8]

    def row(i: int, prefix: str) -> tuple[Any, ...]:
        values = list(template)
        email = f"{prefix}-{tag}-{i}@example.com"
        values[id_at], values[email_at], values[key_at] = str(uuid.uuid4()), email, email
        return tuple(values)

    insert = f"INSERT INTO users ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})"

    def create(i: int) -> None:
        cur.execute(insert, row(i, "raw"))
        conn.commit()

    def update(i: int) -> None:
        cur.execute(
            f"UPDATE users SET name = {p}, version = version + 1 WHERE id = {p}",
            (f"R{i}", seeded[i % n].id),
        )
        conn.commit()

    yield {"create": create, "update": update}

    def bulk(r: int) -> None:
        rows = [row(i, f"rawb{r}") for i in range(args.bulk)]
        if paramstyle == "qmark" or pymysql:
            cur.executemany(insert, rows)  # PyMySQL: multi-row INSERTs
        else:
            from psycopg2.extras import execute_values

            execute_values(cur, f"INSERT INTO users ({', '.join(columns)}) VALUES %s", rows,
                           page_size=1000)
        conn.commit()

    yield {BULK: bulk}


def in_phases(args: Any, *ways: tuple[Run, Phases]) -> None:
    """Take every way through the same phase before the next begins (reads, then single
    writes, then bulk), so each phase sees tables of the same size; within a phase each
    call is timed in alternating rounds across the ways (a slow moment of the shared
    machine weighs on all of them alike), its median kept in ``run.us``."""
    pending = list(ways)
    while pending:
        phase: dict[str, tuple[Run, dict[str, Callable[[int], Any]]]] = {}
        for run, phases in list(pending):
            try:
                phase[run.label] = (run, next(phases))
            except StopIteration:
                pending.remove((run, phases))
        ops = dict.fromkeys(op for _, calls in phase.values() for op in calls)
        for op in ops:
            timed = {label: calls[op] for label, (_, calls) in phase.items() if op in calls}
            if op == BULK:
                for label, ms in _bulk_rounds(timed, args.bulk_repeats).items():
                    phase[label][0].us[op] = ms
                continue
            calls = max(args.calls // 10, 50) if op == "page_50" else args.calls
            timings = measure_interleaved(
                {label: (fn, calls) for label, fn in timed.items()}, rounds=10, warmup=50
            )
            for label, timing in timings.items():
                phase[label][0].us[op] = timing.p50_us


def _bulk_rounds(fns: dict[str, Callable[[int], Any]], repeats: int) -> dict[str, float]:
    """Median ms of each bulk call, the ways taking turns."""
    samples: dict[str, list[float]] = {label: [] for label in fns}
    for r in range(repeats):
        for label, fn in fns.items():
            start = time.perf_counter()
            fn(r)
            samples[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) * 1000 for label, values in samples.items()}


# ----------------------------------------------------------------------------- backends


def bench_memory(args: Any) -> list[Run]:
    with clonestore.open("memory://") as store:
        seeded = seed_users(store, args.rows, "mem")
        run = Run("clonestore")
        in_phases(args, (run, time_clonestore(store, seeded, args)))
        return [run]


def bench_sqlite(args: Any) -> list[Run]:
    import peewee

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        runs = [Run("clonestore"), Run("peewee"), Run("raw driver")]
        # The same durability everywhere: WAL with synchronous=NORMAL, as clonestore uses.
        pragmas = {"journal_mode": "wal", "synchronous": "normal"}
        with clonestore.open(f"sqlite:///{path}") as store:
            seeded = seed_users(store, args.rows, "sqlite")
            analyze(store)
            db = peewee.SqliteDatabase(path, pragmas=pragmas)
            conn = sqlite3.connect(path)
            for name, value in pragmas.items():
                conn.execute(f"PRAGMA {name}={value}")
            peers = _peers(f"sqlite:///{path}", seeded, args)
            runs += [run for run, _ in peers]
            in_phases(
                args,
                (runs[0], time_clonestore(store, seeded, args)),
                (runs[1], time_peewee(db, seeded, args)),
                (runs[2], time_raw(conn, "qmark", seeded, args)),
                *peers,
            )
            db.close()
            conn.close()
    return runs


def bench_postgres(args: Any) -> list[Run]:
    import psycopg2
    from playhouse.db_url import connect

    with throwaway_postgres(args.postgres_url) as url:
        runs = [Run("clonestore"), Run("peewee"), Run("raw driver")]
        with clonestore.open(url) as store:
            seeded = seed_users(store, args.rows, "pg")
            analyze(store)
            db = connect(url)
            conn = psycopg2.connect(url)
            peers = _peers(url, seeded, args)
            runs += [run for run, _ in peers]
            in_phases(
                args,
                (runs[0], time_clonestore(store, seeded, args)),
                (runs[1], time_peewee(db, seeded, args)),
                (runs[2], time_raw(conn, "format", seeded, args)),
                *peers,
            )
            db.close()
            conn.close()
    return runs


def bench_mariadb(args: Any) -> list[Run]:
    with throwaway_mariadb(args.mariadb_url) as url:
        runs = [Run("clonestore"), Run("raw driver")]
        with clonestore.open(url) as store:
            seeded = seed_users(store, args.rows, "maria")
            store.backend.database.execute_sql("ANALYZE TABLE users")  # type: ignore[attr-defined]
            conn = mariadb_connect(url, url.rsplit("/", 1)[1])
            try:
                with conn.cursor() as cur:  # the session clonestore's connections run with
                    cur.execute("SET time_zone = '+00:00', tx_isolation = 'READ-COMMITTED'")
                in_phases(
                    args,
                    (runs[0], time_clonestore(store, seeded, args)),
                    (runs[1], time_raw(conn, "format", seeded, args)),
                )
            finally:
                conn.close()  # else its open transaction keeps the database from dropping
    return runs


# ----------------------------------------------------------------------------- report


def report(results: dict[tuple[str, int], list[Run]]) -> None:
    print(f"\n{'backend':<10} {'users':>7} {'call':<14} " + " ".join(f"{r:>14}" for r in
          ("clonestore", "peewee", "raw driver", "cs/raw", "peewee/raw", "sa core/raw",
           "sa orm/raw")))
    for (backend, rows), runs in results.items():
        by = {r.label: r for r in runs}
        for op in (*OPS, BULK):
            cs = by["clonestore"].us[op]
            pw = by["peewee"].us[op] if "peewee" in by else None
            raw = by["raw driver"].us[op] if "raw driver" in by else None
            unit = "ms" if op == BULK else "µs"

            def fmt(v: float | None, unit: str = unit) -> str:
                return "-" if v is None else f"{v:.1f} {unit}"

            def ratio(a: float | None, b: float | None) -> str:
                return "-" if a is None or b is None else f"{a / b:.2f}x"

            core = by["sqlalchemy core"].us[op] if "sqlalchemy core" in by else None
            orm = by["sqlalchemy orm"].us[op] if "sqlalchemy orm" in by else None
            print(f"{backend:<10} {rows:>7} {op:<14} {fmt(cs):>14} {fmt(pw):>14} {fmt(raw):>14} "
                  f"{ratio(cs, raw):>14} {ratio(pw, raw):>14} {ratio(core, raw):>14} "
                  f"{ratio(orm, raw):>14}")
    for (backend, rows), runs in results.items():
        if backend == "memory" and ("sqlite", rows) in results:
            print(f"\nmemory:// speed-up over sqlite:// at {rows} users (same clonestore call):")
            mem, lite = runs[0].us, results["sqlite", rows][0].us
            for op in (*OPS, BULK):
                print(f"  {op:<14} {lite[op] / mem[op]:.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,postgres,mariadb")
    parser.add_argument(
        "--rows", default="1000,10000,100000", help="users seeded before timing (sizes, each run)"
    )
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per single-row op")
    parser.add_argument("--bulk", type=int, default=10_000, help="rows per create_many")
    parser.add_argument("--bulk-repeats", type=int, default=3)
    add_postgres_url(parser)
    parser.add_argument(
        "--mariadb-url",
        default=os.environ.get("CLONESTORE_BENCH_MARIADB_URL")
        or os.environ.get("CLONESTORE_TEST_MARIADB_URL")
        or "mariadb://root@127.0.0.1:3306/",
    )
    args = parser.parse_args(argv)
    runners = {
        "memory": bench_memory,
        "sqlite": bench_sqlite,
        "postgres": bench_postgres,
        "mariadb": bench_mariadb,
    }
    results: dict[tuple[str, int], list[Run]] = {}
    for name in args.backends.split(","):
        if name not in runners:
            parser.error(f"unknown backend {name!r}; choose from {', '.join(runners)}")
        for rows in (int(n) for n in str(args.rows).split(",")):
            print(f"timing {name} at {rows:,} users ...", file=sys.stderr, flush=True)
            results[name, rows] = runners[name](argparse.Namespace(**{**vars(args), "rows": rows}))
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
