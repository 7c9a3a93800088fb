"""``sqlite://`` under ``open_async``: the SQLite backend on aiosqlite.

The same statements, codecs, transactions (``BEGIN IMMEDIATE``), WAL mode,
busy timeout and error translation as :class:`~.sqlite.SqliteBackend`; only
the connections differ. Each statement is awaited on an aiosqlite
connection (SQLite runs in that connection's own thread, so the event loop
never blocks), taken from a pool of ``pool_size`` connections (default 5)
for the statement, or held by the calling task for a whole transaction. A
``:memory:`` database is one connection (every connection would be a database
of its own): a transaction holds it, so other tasks wait, as threads wait for
the synchronous backend's lock.

Per-task connection state is Peewee's ``playhouse.pwasyncio`` (so the
migrations, run through Peewee, use the task's connection), with the greenlet
bridge of :mod:`clonestore.bridge`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import aiosqlite
from playhouse.pwasyncio import AsyncSqliteConnection, AsyncSqliteDatabase

from clonestore import StorageUnavailable
from clonestore.bridge import PerTask
from clonestore.spi import withhold

from ..sql._async_connections import AsyncConnections
from ..sql._async_pool import ConnectionPool
from ..sql._backend import ALL, MANY, ONE, ROWCOUNT, SQLBackend, _TxState
from ..sql._errors import closed_error
from ..sql._fields import SQLITE_TYPES
from ..sql._options import positive_int, read_options
from ._backend import DRIVER, OPTIONS, SqliteBackend, _parse_path, foreign_keys_off
from ._vectors import SqliteVectors

__all__ = ["AsyncSqliteBackend"]

ASYNC_OPTIONS: Final = {**OPTIONS, "pool_size": (positive_int, 5)}

_Base: Any = AsyncSqliteDatabase


class _Database(_Base):  # type: ignore[misc]
    """pwasyncio's SQLite database with clonestore's column types and its pool."""

    field_types = {**AsyncSqliteDatabase.field_types, **SQLITE_TYPES}

    def __init__(self, path: str, pool: ConnectionPool[Any], **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._pool = pool

    async def _create_pool_async(self) -> Any:
        return self._pool

    async def _pool_acquire(self, pool: Any) -> Any:
        return AsyncSqliteConnection(await pool.acquire())

    async def _pool_release(self, conn: Any) -> None:
        if conn is not None and conn.conn is not None:
            self._pool.release(conn.conn)

    async def _pool_close(self) -> None:
        await self._pool.close()


def _reusable(conn: Any) -> bool:
    """Whether an aiosqlite connection may serve another caller: open, no transaction left."""
    try:
        return conn._connection is not None and not conn.in_transaction
    except Exception:  # closed underneath
        return False


async def _fetch(conn: Any, sql: str, params: Any, mode: int) -> Any:
    """Run one statement on an aiosqlite connection; what ``mode`` asks for."""
    if mode == ROWCOUNT:
        cursor = await conn.execute(sql, params)
        count = cursor.rowcount
        await cursor.close()
        return count
    if mode == MANY:
        cursor = await conn.executemany(sql, params)
        await cursor.close()
        return None
    rows = await conn.execute_fetchall(sql, params)  # one hop to the connection's thread
    if mode == ONE:
        return rows[0] if rows else None
    if mode == ALL:
        return list(rows)
    return None


class AsyncSqliteBackend(AsyncConnections, SqliteBackend):
    """SQLite storage for ``open_async``, implementing :class:`clonestore.spi.Backend`
    inside the greenlet bridge."""

    begin_sql = "BEGIN IMMEDIATE"
    fetch = staticmethod(_fetch)

    def __init__(self, url: str = "sqlite:///:memory:", **options: Any) -> None:
        # No ``vector_search``: the connections live in aiosqlite's threads, where this
        # backend loads no extension and registers no aggregate, so the core scores
        # vectors; writes mark the vector tables a sqlite-vec backend keeps as stale. No
        # ``backup``: the online backup API needs a connection of this thread (use
        # ``clonestore backup``). The synchronous class implements both: withheld here.
        withhold(self, "vector_search", "backup")
        path, query = _parse_path(url)
        opts = read_options("sqlite", query, options, ASYNC_OPTIONS)
        self.url = url
        self.path = path
        self.memory = path == ":memory:"
        self.busy_timeout = opts["busy_timeout"]
        self._lock = None
        pragmas: list[tuple[str, Any]] = [
            ("busy_timeout", int(self.busy_timeout * 1000)),
            ("foreign_keys", "on"),  # enforced, as by the synchronous backend
        ]
        if not self.memory:
            pragmas += [("journal_mode", "wal"), ("synchronous", opts["synchronous"])]
        self.label = f"sqlite://{'/' + path if not self.memory else '/:memory:'}"
        self.pool = ConnectionPool[Any](
            self._connect,
            lambda conn: conn.close(),
            _reusable,
            size=1 if self.memory else opts["pool_size"],
            timeout=self.busy_timeout,
            exhausted=lambda: StorageUnavailable(
                f"{self.label}: no connection became free in time; retry, or raise "
                "pool_size / busy_timeout"
            ),
        )
        database = _Database(
            path, self.pool, pragmas=pragmas, timeout=self.busy_timeout, lock_type="IMMEDIATE"
        )
        SQLBackend.__init__(self, database)
        self.vectors = SqliteVectors(self, extension=False)
        self._tx = PerTask(_TxState)
        self.use_query_log(opts["log_queries"], opts["slow_query_ms"])

    def __repr__(self) -> str:
        return f"<AsyncSqliteBackend {self.label}{' closed' if self._closed else ''}>"

    async def _connect(self) -> Any:
        # aiosqlite's thread runs a connection of the driver the synchronous backend uses
        # (pysqlite3 when installed), never the standard library's by default: two SQLite
        # libraries in one process do not see each other's locks on a file, so a sync and
        # an async store on one file could both write at once.
        path = self.path
        try:
            conn = await aiosqlite.Connection(
                lambda: DRIVER.connect(path, isolation_level=None), iter_chunk_size=64
            )
            await self.database._add_conn_hooks(conn)
        except Exception as exc:
            raise self.translate(exc) from exc
        return conn

    @contextmanager
    def schema_session(self) -> Iterator[None]:
        """Hold a connection and the write lock (``BEGIN IMMEDIATE``) while the schema changes."""
        if self._closed:
            raise closed_error(self.name)
        with (
            self.database.connection_context(),
            foreign_keys_off(self.database),
            self.database.atomic(),
        ):
            yield

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._close_pool()
