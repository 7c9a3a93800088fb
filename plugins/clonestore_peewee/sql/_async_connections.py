"""What the SQL backends under ``open_async`` share: statements awaited on a pooled
connection, or on the one the calling task holds for its transaction.

Mixed into :class:`~.async_sqlite.AsyncSqliteBackend` and
:class:`~.async_postgres.AsyncPostgresBackend` before their synchronous engine
class, whose statements, codecs, options and error translation they keep.
Per-task connection state is Peewee's ``playhouse.pwasyncio``
(``database._state``), so Peewee's own statements (migrations) run on the
task's connection too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from clonestore import ClonestoreError, StorageUnavailable
from clonestore.bridge import await_

from ._async_pool import ConnectionPool
from ._backend import NONE
from ._errors import closed_error

__all__ = ["AsyncConnections"]


class AsyncConnections:
    """The engine hooks of :class:`~.backend.SQLBackend` over a :class:`ConnectionPool`."""

    name: str
    database: Any
    pool: ConnectionPool[Any]
    _closed: bool
    _tx: Any  # per task: depth, and whether the outermost transaction took its connection
    #: The statement opening a transaction.
    begin_sql = "BEGIN"
    #: Runs one statement on a driver connection; what the mode asks for.
    fetch: Callable[[Any, str, Any, int], Awaitable[Any]]
    translate: Callable[[BaseException], ClonestoreError]

    def _statement(self, sql: str) -> str:
        """The SQL as the driver takes it (placeholders)."""
        return sql

    def _lost(self, conn: Any) -> bool:
        """Whether a connection is gone (after a failed statement)."""
        return False

    def execute(self, sql: str, params: Any, mode: int) -> Any:
        if self._closed:
            raise closed_error(self.name)
        if params is None:  # a script without parameters, as the driver takes it (% signs stay)
            return await_(self._run(sql, (), mode))
        return await_(self._run(self._statement(sql), params, mode))

    async def _run(self, sql: str, params: Any, mode: int) -> Any:
        state = self.database._state._current()
        held = None if state.closed else state.conn.conn
        conn = held if held is not None else await self.pool.acquire()
        try:
            return await type(self).fetch(conn, sql, params, mode)
        except Exception as exc:
            error = self.translate(exc)
            if isinstance(error, StorageUnavailable) and self._lost(conn):
                self.pool.expire_idle()  # the idle ones are most likely lost too
            raise error from exc
        finally:
            if held is None:
                self.pool.release(conn)  # closed instead when lost or mid-transaction

    def begin_transaction(self) -> None:
        # A task already holding a connection (a schema session) keeps it after end_transaction.
        owned = self._tx.owned = bool(self.database._state._current().closed)
        if owned:
            try:
                await_(self.database.aconnect())  # held until end_transaction
            except ClonestoreError:
                raise
            except Exception as exc:
                raise self.translate(exc) from exc
        try:
            self.execute(self.begin_sql, (), NONE)
        except BaseException:
            if owned:
                self._give_back()
            raise

    def end_transaction(self, commit: bool) -> None:
        try:
            if commit:
                try:
                    self.execute("COMMIT", (), NONE)
                except ClonestoreError:
                    self._rollback_quietly()
                    raise
            else:
                self._rollback_quietly()
        finally:
            if self._tx.owned:
                self._give_back()

    def _give_back(self) -> None:
        state = self.database._state._current()
        conn = None if state.closed else state.conn.conn
        state.reset()
        if conn is not None:
            self.pool.release(conn)

    def _rollback_quietly(self) -> None:
        # Already failing: the caller raises the first error. A connection whose
        # rollback failed is not reused (the pool checks it is out of its transaction).
        with contextlib.suppress(Exception):
            self.execute("ROLLBACK", (), NONE)

    def _close_pool(self) -> None:
        with contextlib.suppress(Exception):  # closing anyway
            await_(self.pool.close())
