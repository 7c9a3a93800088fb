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

import contextlib
import struct
import sys
import threading
import weakref
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import numpy as np
from playhouse.pwasyncio import AsyncPostgresqlConnection, AsyncPostgresqlDatabase

from clonestore import ConfigurationError, StorageUnavailable
from clonestore.bridge import PerTask, await_
from clonestore.plugin_helpers import acting_user
from clonestore.spi import TableSpec

from ..sql._async_connections import AsyncConnections
from ..sql._async_pool import ConnectionPool
from ..sql._backend import ALL, MANY, NONE, ONE, ROWCOUNT, SQLBackend, _TxState
from ..sql._codecs import load_json
from ..sql._errors import closed_error
from ..sql._fields import POSTGRES_TYPES
from ._backend import PostgresBackend, SchemaIntrospection, search_path
from ._row_security import setting_sql
from ._vectors import received_matrix

__all__ = ["AsyncPostgresBackend"]

_UNSUPPORTED: Final = ("sslrootcert", "sslcert", "sslkey")
_translate_placeholders = AsyncPostgresqlConnection._translate_placeholders

_Base: Any = AsyncPostgresqlDatabase


class _Database(SchemaIntrospection, _Base):  # type: ignore[misc]
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
    pending = _WITHOUT_VECTOR_CODEC.get(conn)
    if pending is not None and pending[0][0] != pending[1]:
        await _vector_codec(conn, pending[0])
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


#: Connections opened before pgvector's type existed (the migration creating it had not run
#: yet): the backend's schema changes (a one-item list, counted by apply_table_options)
#: and the count when the connection last looked for the type.
_WITHOUT_VECTOR_CODEC: weakref.WeakKeyDictionary[Any, tuple[list[int], int]] = (
    weakref.WeakKeyDictionary()
)


async def _vector_codec(conn: Any, changes: list[int]) -> None:
    """pgvector's ``vector`` in binary (the float32 values) on ``conn``, or the connection
    noted to look again after the next schema change."""
    found = await conn.fetchrow(_VECTOR_SCHEMA)
    if found is None:
        _WITHOUT_VECTOR_CODEC[conn] = (changes, changes[0])
        return
    _WITHOUT_VECTOR_CODEC.pop(conn, None)
    await conn.set_type_codec(
        "vector",
        encoder=_vector_sent,
        decoder=_vector_received,
        schema=found[0],
        format="binary",
    )


_VECTOR_SCHEMA: Final = (
    "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
    "WHERE t.typname = 'vector' LIMIT 1"
)


def _vector_sent(value: Any) -> bytes:
    """pgvector's binary form: dimension and a zero (int16 each), then float32 items."""
    return struct.pack(f">HH{len(value)}f", len(value), 0, *value)


def _vector_received(data: bytes) -> list[float]:
    items = array("f", data[4:])
    if sys.byteorder == "little":
        items.byteswap()
    return items.tolist()


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
        if self.schema is not None:
            settings["search_path"] = search_path(self.schema)
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
        self._schema_changes = [0]
        database = _Database(params["dbname"], self.pool)
        database.schema = self.schema
        SQLBackend.__init__(self, database)
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
            await _vector_codec(conn, self._schema_changes)
        except Exception as exc:
            raise self.translate(exc) from exc
        return conn

    def sent_vectors(self, sql: str, params: Sequence[Any]) -> tuple[list[str], np.ndarray]:
        """As the synchronous backend's, from the rows (asyncpg receives bytea in binary)."""
        found = self.execute(sql, params, ALL)
        return [row[0] for row in found], received_matrix([bytes(row[1]) for row in found])

    def apply_table_options(self, specs: Sequence[TableSpec]) -> None:
        """As the synchronous backend; connections opened before pgvector was installed
        look for its type again."""
        super().apply_table_options(specs)
        self._schema_changes[0] += 1

    def _statement(self, sql: str) -> str:
        query = self._sql.get(sql)
        if query is None:
            query = self._sql[sql] = _translate_placeholders(sql)
        return query

    def _lost(self, conn: Any) -> bool:
        return bool(conn.is_closed())

    # ------------------------------------------------------------------ row_security

    def execute(self, sql: str, params: Any, mode: int) -> Any:
        if self.bound:
            if not self._bound_checked:
                self._check_bound()
            user = acting_user()
            if sql.startswith("ROLLBACK TO"):  # may undo the setting: sent again next time
                self._tx.user = None
            elif user is not None:
                if self._closed:
                    raise closed_error(self.name)
                if params is None:
                    return await_(self._run_acting(user, sql, (), mode))
                return await_(self._run_acting(user, self._statement(sql), params, mode))
        return super().execute(sql, params, mode)

    def begin_transaction(self) -> None:
        self._tx.user = None
        super().begin_transaction()

    async def _run_acting(self, user: str, sql: str, params: Any, mode: int) -> Any:
        """Run a statement of a view acting for ``user``: in a transaction, after the
        setting when the transaction does not act for that user yet (sent with its
        BEGIN when the view begins it); outside one, in a transaction of its own begun
        with the setting (asyncpg sends one statement per round trip: three here)."""
        state = self.database._state._current()
        tx = self._tx
        setting = setting_sql(user, False)
        if not state.closed:
            if tx.user != user:
                tx.user = user
                if sql == self.begin_sql:
                    return await self._run(f"BEGIN; {setting}", (), mode)
                await self._run(setting, (), NONE)
            return await self._run(sql, params, mode)
        conn = await self.pool.acquire()
        try:
            await conn.execute(f"BEGIN; {setting}")
            result = await type(self).fetch(conn, sql, params, mode)
            await conn.execute("COMMIT")
            return result
        except Exception as exc:
            with contextlib.suppress(Exception):  # already failing: the first error is raised
                await conn.execute("ROLLBACK")
            error = self.translate(exc)
            if isinstance(error, StorageUnavailable) and self._lost(conn):
                self.pool.expire_idle()
            raise error from exc
        finally:
            self.pool.release(conn)

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
