"""What bench_plugins.py measures clonestore's rate limiter against: the raw
one-statement upsert through the driver (the floor), pyrate-limiter's SQLite and
PostgreSQL buckets, and the ``limits`` package's memory storage. The peers are
optional imports: a missing one returns None and is skipped."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from peewee import sqlite3  # the driver Peewee (so clonestore) runs on: pysqlite3 if installed

RAW_UPSERT = (
    "INSERT INTO ratelimit_windows (id, user_id, endpoint, window_seconds, window_start, "
    "window_end, count, quota, refused) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, 1, {p}, 0) "
    "ON CONFLICT (user_id, endpoint, window_seconds, window_start) "
    "DO UPDATE SET count = ratelimit_windows.count + 1, quota = excluded.quota RETURNING count"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RawUpsert:
    """The floor: the plugin's check as one hand-written upsert on the plugin's own
    table (``ratelimit_windows``, created by opening a store with the plugin),
    straight through the driver, returning only the count."""

    def __init__(self, url: str) -> None:
        self.local = threading.local()
        self.url = url
        self.sqlite = url.startswith("sqlite")
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

    def check(self, user: str, endpoint: str, limit: int, window: int) -> bool:
        now_us = time.time_ns() // 1000
        start_us = now_us - now_us % (window * 1_000_000)
        end_us = start_us + window * 1_000_000
        if self.sqlite:  # the backend keeps datetimes as microseconds since the epoch
            params: tuple[Any, ...] = (
                str(uuid.uuid4()),
                user,
                endpoint,
                window,
                start_us,
                end_us,
                limit,
            )
            (count,) = self.conn().execute(self.sql, params).fetchone()
        else:
            start = _EPOCH + timedelta(microseconds=start_us)
            end = _EPOCH + timedelta(microseconds=end_us)
            with self.conn().cursor() as cur:
                cur.execute(
                    self.sql, (str(uuid.uuid4()), user, endpoint, window, start, end, limit)
                )
                (count,) = cur.fetchone()
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
