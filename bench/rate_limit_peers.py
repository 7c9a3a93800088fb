"""What bench_plugins.py measures clonestore's rate limiter against: the raw
one-statement upsert through the driver (the floor), pyrate-limiter's SQLite and
PostgreSQL buckets, and the ``limits`` package's memory storage. The peers are
optional imports: a missing one returns None and is skipped."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

RAW_TABLE = (
    "CREATE TABLE IF NOT EXISTS raw_windows (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
    "endpoint TEXT NOT NULL, window_seconds BIGINT NOT NULL, window_start {ts} NOT NULL, "
    "count BIGINT NOT NULL, quota BIGINT NOT NULL, "
    "UNIQUE (user_id, endpoint, window_seconds, window_start))"
)
RAW_UPSERT = (
    "INSERT INTO raw_windows (id, user_id, endpoint, window_seconds, window_start, count, quota) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, 1, {p}) "
    "ON CONFLICT (user_id, endpoint, window_seconds, window_start) "
    "DO UPDATE SET count = raw_windows.count + 1, quota = excluded.quota RETURNING count"
)


class RawUpsert:
    """The floor: the same one-statement upsert, straight through the driver."""

    def __init__(self, url: str) -> None:
        self.local = threading.local()
        self.url = url
        self.sqlite = url.startswith("sqlite")
        conn = self.conn()
        ts = "TEXT" if self.sqlite else "TIMESTAMPTZ"
        self.execute(conn, RAW_TABLE.format(ts=ts), ())
        if not self.sqlite:  # the same persistence as the plugin's counters
            (kind,) = self.execute(
                conn, "SELECT relpersistence FROM pg_class WHERE relname = 'ratelimit_windows'", ()
            )
            self.persistence = "UNLOGGED" if kind == "u" else "LOGGED"
            self.execute(conn, f"ALTER TABLE raw_windows SET {self.persistence}", ())
        self.sql = RAW_UPSERT.format(p="?" if self.sqlite else "%s")

    def conn(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            if self.sqlite:
                conn = sqlite3.connect(
                    urlsplit(self.url).path, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=wal")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=10000")
            else:
                import psycopg2

                conn = psycopg2.connect(self.url)
                conn.autocommit = True
            self.local.conn = conn
        return conn

    def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> Any:
        if self.sqlite:
            return conn.execute(sql, params).fetchone()
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone() if cur.description else None

    def check(self, user: str, endpoint: str, limit: int, window: int) -> bool:
        now = time.time()
        start = datetime.fromtimestamp(now - now % window, UTC)
        start_param = start.isoformat() if self.sqlite else start
        (count,) = self.execute(
            self.conn(),
            self.sql,
            (str(uuid.uuid4()), user, endpoint, window, start_param, limit),
        )
        return bool(count <= limit)


def pyrate_limiter(
    kind: str, url: str, limit: int, table: str
) -> tuple[Callable[[str], bool], Callable[[str], bool]] | None:
    """A pyrate-limiter Limiter on its SQLite or PostgreSQL bucket, or None if not installed.

    Returns ``(try_now, try_waiting)``: ``try_acquire`` without blocking, and
    with a 100 ms wait. Without blocking, pyrate-limiter also refuses a call
    when another thread holds its lock, so under contention it admits fewer
    than the limit; the waiting form is the one held to exact admission.
    """
    try:
        from pyrate_limiter import Duration, Limiter, Rate, SQLiteBucket
    except ImportError:
        return None
    rates = [Rate(limit, Duration.MINUTE)]
    if kind == "sqlite":
        path = urlsplit(url).path + f".pyrate-{table}"
        bucket: Any = SQLiteBucket.init_from_file(
            rates, db_path=path, table=table, create_new_table=True
        )
    else:
        try:
            from psycopg_pool import ConnectionPool
            from pyrate_limiter import PostgresBucket
        except ImportError:
            return None
        pool = ConnectionPool(url, min_size=2, max_size=10, open=True)
        bucket = PostgresBucket(pool, table, rates)
    limiter = Limiter(bucket)
    return (
        lambda key: bool(limiter.try_acquire(key, blocking=False)),
        lambda key: bool(limiter.try_acquire(key, blocking=True, timeout=0.1)),
    )


def limits_limiter(limit: int) -> Callable[[str], bool] | None:
    """The ``limits`` package's fixed window on its memory storage, or None."""
    try:
        from limits import RateLimitItemPerMinute, storage, strategies
    except ImportError:
        return None
    limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    item = RateLimitItemPerMinute(limit)
    return lambda key: bool(limiter.hit(item, key))
