"""The PostgreSQL backend's connection pool: one lock, one list, a cursor per connection.

Peewee's ``PooledPostgresqlDatabase`` checks a connection out through the
database's lock and the pool's lock, keeps a heap and a dict of connections in
use, and the backend made a new cursor for every statement: about half of a
point read's overhead over the raw driver. Here a checkout is a pop from the
idle list under one lock (no round trip), and each connection keeps its
cursor.

What the pool guarantees, as Peewee's did:

* at most ``size`` connections open at once (in use, idle or being opened);
* a caller finding every connection in use waits at most ``timeout`` seconds,
  then gets :class:`playhouse.pool.MaxConnectionsExceeded` (the backend's
  ``StorageUnavailable``, "pool exhausted"), never a hang;
* a connection older than ``stale_after`` seconds is closed instead of reused
  (checked when it is taken and when it is given back);
* a connection found broken (closed, or in an unknown transaction state after
  a lost server) is closed instead of reused, and :meth:`close_idle` lets the
  caller drop the idle ones too after a loss (they are likely broken as well);
* a connection given back inside a transaction is rolled back first, or
  closed if that fails.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg2.extensions
from playhouse.pool import MaxConnectionsExceeded

__all__ = ["Connection", "ConnectionPool"]

_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
_UNKNOWN = psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN


class Connection:
    """A pooled driver connection, the cursor every statement on it uses, and when it
    was opened (``time.monotonic()``)."""

    __slots__ = ("conn", "cursor", "opened")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cursor = conn.cursor()
        self.opened = time.monotonic()


def broken(conn: Any) -> bool:
    """Whether a connection is lost (as opposed to a failed statement on a live one)."""
    return conn is None or bool(conn.closed) or conn.get_transaction_status() == _UNKNOWN


class ConnectionPool:
    """At most ``size`` connections made by ``connect()``, handed out one caller at a time.

    :param connect: opens a driver connection (its errors reach the caller).
    :param size: connections open at most.
    :param timeout: seconds a caller waits for a free connection.
    :param stale_after: seconds after which a connection is renewed (None: never).
    """

    def __init__(
        self, connect: Callable[[], Any], *, size: int, timeout: float, stale_after: float | None
    ) -> None:
        self._connect = connect
        self.size = size
        self.timeout = timeout
        self._stale_after = stale_after
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)
        self._idle: list[Connection] = []  # newest last: the warmest is reused first
        self._count = 0  # open or being opened, counted against size
        self._waiting = 0
        self.closed = False

    def figures(self) -> dict[str, int]:
        """``size``; ``in_use``: connections checked out (or being opened); ``idle``:
        connections waiting in the pool (what ``health()["pool"]`` shows)."""
        with self._lock:
            idle = len(self._idle)
            return {"size": self.size, "in_use": self._count - idle, "idle": idle}

    def _usable(self, entry: Connection, now: float) -> bool:
        stale = self._stale_after
        return not broken(entry.conn) and (stale is None or now - entry.opened <= stale)

    def acquire(self) -> Connection:
        """A connection for the caller alone until :meth:`release` (or :meth:`discard`)."""
        dropped: list[Connection] = []
        deadline = None
        try:
            with self._lock:
                while True:
                    if self.closed:
                        raise MaxConnectionsExceeded("the connection pool is closed")
                    idle = self._idle
                    if idle:
                        now = time.monotonic()
                        while idle:
                            entry = idle.pop()
                            if self._usable(entry, now):
                                return entry
                            self._count -= 1
                            dropped.append(entry)
                    if self._count < self.size:
                        self._count += 1
                        break  # open one, outside the lock
                    if deadline is None:
                        deadline = time.monotonic() + self.timeout
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise MaxConnectionsExceeded(
                            "Max connections exceeded, timed out attempting to connect."
                        )
                    self._waiting += 1
                    try:
                        self._available.wait(remaining)
                    finally:
                        self._waiting -= 1
        finally:
            for entry in dropped:
                _close(entry)
        try:
            return Connection(self._connect())
        except BaseException:
            with self._lock:
                self._count -= 1
                self._available.notify()
            raise

    def release(self, entry: Connection) -> None:
        """Give a connection back: kept for the next caller, or closed when it is broken,
        stale, still in a transaction that cannot be rolled back, or the pool is closed."""
        conn = entry.conn
        keep = not self.closed and self._usable(entry, time.monotonic())
        if keep and conn.get_transaction_status() != _IDLE:
            try:  # the connections are in autocommit mode: conn.rollback() would do nothing
                entry.cursor.execute("ROLLBACK")
            except Exception:
                keep = False
        with self._lock:
            if keep and not self.closed:
                self._idle.append(entry)
            else:
                self._count -= 1
                keep = False
            if self._waiting:
                self._available.notify()
        if not keep:
            _close(entry)

    def discard(self, entry: Connection) -> None:
        """Close a connection checked out (found broken) instead of giving it back."""
        with self._lock:
            self._count -= 1
            if self._waiting:
                self._available.notify()
        _close(entry)

    def close_idle(self) -> None:
        """Close every idle connection (after a lost one: they are likely lost too)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._available.notify_all()
        for entry in idle:
            _close(entry)

    def close(self) -> None:
        """Close the idle connections now; those in use close when given back, and
        callers waiting for one get the pool's error."""
        with self._lock:
            self.closed = True
        self.close_idle()


def _close(entry: Connection) -> None:
    with contextlib.suppress(Exception):  # already broken or closing: no one to tell
        entry.conn.close()
