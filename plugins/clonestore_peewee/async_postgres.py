"""``postgresql://`` under ``open_async``: the PostgreSQL backend on asyncpg.

The same statements, codecs, options (``pool_size``, ``pool_timeout``,
``connect_timeout``, ``stale_timeout``, ``statement_timeout``,
``application_name``, ``sslmode``, ``target_session_attrs``...), password
redaction, reconnection and error translation as
:class:`~.postgres.PostgresBackend`; only the connections differ. Each
statement is awaited on an asyncpg connection (prepared once per connection by
asyncpg's statement cache) taken from a pool of ``pool_size`` for the
statement, or held by the calling task for a whole transaction. A connection
found broken fails its call with ``StorageUnavailable`` and is closed with the
idle ones, so later calls reconnect. ``LISTEN`` (capability ``listen_notify``)
keeps its own psycopg2 connection in a background thread, as the synchronous
backend does; ``NOTIFY`` is a statement like any other.

Not offered here: ``sslrootcert``, ``sslcert`` and ``sslkey`` (asyncpg takes
certificates as an ``ssl.SSLContext``): they are refused when given.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from playhouse.pwasyncio import AsyncPostgresqlConnection, AsyncPostgresqlDatabase

from clonestore import ConfigurationError, StorageUnavailable
from clonestore.bridge import PerTask

from .async_connections import AsyncConnections
from .async_pool import ConnectionPool
from .backend import ALL, MANY, ONE, ROWCOUNT, SQLBackend, _TxState
from .codecs import load_json
from .fields import POSTGRES_TYPES
from .postgres import PostgresBackend

__all__ = ["AsyncPostgresBackend"]

_UNSUPPORTED: Final = ("sslrootcert", "sslcert", "sslkey")
_translate_placeholders = AsyncPostgresqlConnection._translate_placeholders

_Base: Any = AsyncPostgresqlDatabase


class _Database(_Base):  # type: ignore[misc]
    """pwasyncio's PostgreSQL database with clonestore's column types and its pool."""

    field_types = {**AsyncPostgresqlDatabase.field_types, **POSTGRES_TYPES}

    def __init__(self, name: str, pool: ConnectionPool[Any]) -> None:
        super().__init__(name)
        self._pool = pool

    async def _create_pool_async(self) -> Any:
        return self._pool

    async def _pool_acquire(self, pool: Any) -> Any:
        return AsyncPostgresqlConnection(await pool.acquire())

    async def _pool_release(self, conn: Any) -> None:
        if conn is not None and conn.conn is not None:
            self._pool.release(conn.conn)

    async def _pool_close(self) -> None:
        await self._pool.close()


def _parse_timestamptz(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)  # the session's TimeZone is UTC


def _reusable(conn: Any) -> bool:
    return not conn.is_closed() and not conn.is_in_transaction()


async def _fetch(conn: Any, sql: str, params: Any, mode: int) -> Any:
    """Run one statement on an asyncpg connection; what ``mode`` asks for."""
    if mode == ONE:
        return await conn.fetchrow(sql, *params)
    if mode == ALL:
        return await conn.fetch(sql, *params)
    if mode == MANY:
        await conn.executemany(sql, params)
        return None
    status = await conn.execute(sql, *params)
    if mode == ROWCOUNT:
        return int(status.rsplit(" ", 1)[-1])
    return None


class AsyncPostgresBackend(AsyncConnections, PostgresBackend):
    """PostgreSQL storage for ``open_async``, implementing :class:`clonestore.spi.Backend`
    inside the greenlet bridge."""

    # COPY runs on psycopg2's connections: large inserts here are batched INSERTs.
    capabilities = PostgresBackend.capabilities - {"bulk_copy"}
    fetch = staticmethod(_fetch)

    def __init__(self, url: str, **options: Any) -> None:
        params, opts = self._configure(url, options)
        given = [name for name in _UNSUPPORTED if params.get(name)]
        if given:
            raise ConfigurationError(
                f"postgresql:// under open_async does not take {', '.join(given)}; "
                "use clonestore.open() for certificate files"
            )
        settings = {"TimeZone": "UTC", "application_name": opts["application_name"]}
        if opts["statement_timeout"] is not None:
            settings["statement_timeout"] = str(int(opts["statement_timeout"] * 1000))
        self._connect_args: dict[str, Any] = {
            "host": params.get("host"),
            "port": params.get("port"),
            "user": params.get("user"),
            "password": params.get("password"),
            "database": params["dbname"],
            "timeout": opts["connect_timeout"],
            "server_settings": settings,
        }
        if params.get("sslmode"):
            self._connect_args["ssl"] = params["sslmode"]
        if params.get("target_session_attrs"):
            self._connect_args["target_session_attrs"] = params["target_session_attrs"]
        self.pool = ConnectionPool[Any](
            self._connect,
            lambda conn: conn.close(timeout=1),
            _reusable,
            size=self.pool_size,
            timeout=self.pool_timeout,
            exhausted=lambda: StorageUnavailable(
                f"{self.label}: no pooled connection became free in time (pool exhausted); "
                "retry, or raise pool_size / pool_timeout"
            ),
            stale_after=opts["stale_timeout"],
        )
        SQLBackend.__init__(self, _Database(params["dbname"], self.pool))
        self._tx = PerTask(_TxState)
        self._sql: dict[str, str] = {}
        self._listeners = []
        self._listeners_lock = threading.Lock()
        self.use_query_log(opts["log_queries"], opts["slow_query_ms"])

    def __repr__(self) -> str:
        return f"<AsyncPostgresBackend {self.label}{' closed' if self._closed else ''}>"

    async def _connect(self) -> Any:
        try:
            conn = await asyncpg.connect(**self._connect_args)
            # uuid as canonical text and json parsed by the fast loader, as the
            # synchronous backend reads them.
            await conn.set_type_codec(
                "uuid", encoder=str, decoder=str, schema="pg_catalog", format="text"
            )
            await conn.set_type_codec(
                "json", encoder=str, decoder=load_json, schema="pg_catalog", format="text"
            )
            # As text: asyncpg's binary codec turns the first and last datetimes into
            # -infinity and infinity (the session's TimeZone is UTC, so text is UTC too).
            await conn.set_type_codec(
                "timestamptz",
                encoder=datetime.isoformat,
                decoder=_parse_timestamptz,
                schema="pg_catalog",
                format="text",
            )
        except Exception as exc:
            raise self.translate(exc) from exc
        return conn

    def _statement(self, sql: str) -> str:
        query = self._sql.get(sql)
        if query is None:
            query = self._sql[sql] = _translate_placeholders(sql)
        return query

    def _lost(self, conn: Any) -> bool:
        return bool(conn.is_closed())

    # ------------------------------------------------------------------ lifecycle

    def _pool_use(self) -> dict[str, int]:
        return {"size": self.pool_size, "in_use": self.pool.in_use, "idle": self.pool.idle}

    def close(self) -> None:
        """Close every connection (and listener). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._listeners_lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.stop()
        self._close_pool()

