"""The ``mariadb://`` backend, on a connection pool (PyMySQL).

``mariadb://user:password@host:port/dbname?pool_size=10``. Options (keywords
to ``clonestore.open`` or URL query parameters):

=================  =======  ==================================================
pool_size          10       connections kept at most
pool_timeout       10       seconds to wait for a free connection, then
                            ``StorageUnavailable``
connect_timeout    5        seconds to wait for the server when connecting
stale_timeout      300      seconds after which an idle connection is renewed
=================  =======  ==================================================

The SQL is the shared layer's with the :data:`~.dialects.MARIADB` dialect:
text in ``utf8mb4_nopad_bin``, JSON as verbatim text, ``DATETIME(6)`` in UTC
(sessions run with ``time_zone = '+00:00'``), ``DECIMAL(18, 6)``; partial
unique constraints as generated scope columns; ``update`` and ``upsert``
emulated without ``RETURNING`` and ``ON CONFLICT``. Sessions run at ``READ
COMMITTED``: a locking read of a missing key takes no gap lock, so racing
upserts wait on each other's insert instead of deadlocking.

InnoDB rolls back the whole transaction on a deadlock: the call fails with
``Conflict``, and the rest of that transaction fails with ``Conflict`` too
(its savepoints are gone) until its outermost block ends; it never commits
half of it.

A connection found broken (server restart, ``KILL``) fails its call with
``StorageUnavailable`` and is discarded with the idle ones, so later calls
reconnect by themselves. ``mysql://`` is refused: only MariaDB is tested.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Final
from urllib.parse import unquote, urlsplit

import peewee
import pymysql
from playhouse.pool import PooledMySQLDatabase

from clonestore import ClonestoreError, ConfigurationError, Conflict, StorageUnavailable
from clonestore.secrets import redact_url
from clonestore.spi import TableSpec

from ..sql import _query_log as query_log
from ..sql._backend import ALL, MANY, NONE, ONE, ROWCOUNT, SQLBackend, fetch
from ..sql._dialects import MARIADB, DialectContext
from ..sql._errors import closed_error
from ..sql._options import (
    not_offered_row_security,
    positive_float,
    positive_int,
    read_options,
)
from ..sql._table_options import MARIADB_PURGE_TABLE, MARIADB_PURGE_UP_TO, mariadb_append_only

__all__ = ["MariadbBackend"]

OPTIONS: Final = {
    "pool_size": (positive_int, 10),
    "pool_timeout": (positive_float, 10.0),
    "connect_timeout": (positive_float, 5.0),
    "stale_timeout": (positive_float, 300.0),
    **query_log.OPTIONS,
    "row_security": (not_offered_row_security, False),
}

#: Every session: UTC wall-clock datetimes, READ COMMITTED, strict values.
_SESSION: Final = (
    "SET time_zone = '+00:00', tx_isolation = 'READ-COMMITTED', "
    "sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'"
)
#: Held (GET_LOCK) while the schema changes, so that concurrent starts migrate once.
_SCHEMA_LOCK: Final = "clonestore_schema"
_SCHEMA_LOCK_SECONDS: Final = 300
_IN_TRANSACTION: Final = pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS
#: Runs of a statement outside any transaction chosen as a deadlock's victim.
_DEADLOCK_TRIES: Final = 10


class _Context(DialectContext):
    dialect = MARIADB


class _Connection(pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL's connection, sharing one context for TLS-if-offered (no TLS options given):
    PyMySQL builds one per connection, loading the system's CA certificates (about 85 ms of
    CPU), even for a server without TLS. Contexts of explicit options stay per connection."""

    _preferred: ClassVar[ssl.SSLContext | None] = None

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if sslp != {}:
            context: ssl.SSLContext = super()._create_ssl_ctx(sslp)
            return context
        if _Connection._preferred is None:  # a race builds two equal ones: harmless
            _Connection._preferred = super()._create_ssl_ctx(sslp)
        return _Connection._preferred


class _Connecting(peewee.MySQLDatabase):
    """Peewee's MySQL database whose new connections (the pool's) are _Connection."""

    def _connect(self) -> Any:
        return _Connection(database=self.database, autocommit=True, **self.connect_params)


class _PooledDatabase(PooledMySQLDatabase, _Connecting):  # type: ignore[misc]
    """The pool with clonestore's column types and index DDL, checking connections
    without a round trip."""

    field_types = {**PooledMySQLDatabase.field_types, **MARIADB.field_types}
    context_class = _Context

    def _is_closed(self, conn: Any) -> bool:
        # Peewee pings every checkout; a dead connection is instead detected when
        # used: that call fails with StorageUnavailable and the connection is discarded.
        return _broken(conn)

    def _can_reuse(self, conn: Any) -> bool:
        if conn.server_status & _IN_TRANSACTION:  # left open by a failure: roll back
            try:
                conn.rollback()
            except Exception:
                return False
        return True


def _broken(conn: Any) -> bool:
    """Whether a connection is lost (PyMySQL closes it on a network error)."""
    return conn is None or not conn.open


def _parse(url: str) -> tuple[dict[str, Any], str, str]:
    parts = urlsplit(url)
    params: dict[str, Any] = {"host": unquote(parts.hostname or "127.0.0.1")}
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"invalid port in {redact_url(url)!r}") from None
    params["port"] = port or 3306
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigurationError(
            f"no database name in {redact_url(url)!r}; use mariadb://user@host/dbname"
        )
    return params, database, parts.query


class MariadbBackend(SQLBackend):
    """MariaDB storage implementing :class:`clonestore.spi.Backend`."""

    name = "mariadb"
    dialect = MARIADB
    #: ``append_only`` by triggers (see :mod:`.table_options`); no ``ephemeral``.
    #: ``upsert_returning`` and ``update_and_insert`` over the emulated statements.
    #: The capabilities without a protocol; the others (append_only, update_and_insert,
    #: migrations, text_search) are the shared SQL layer's protocols.
    capabilities: frozenset[str] = frozenset({"upsert_returning"})

    def __init__(self, url: str, **options: Any) -> None:
        params, dbname, query = _parse(url)
        opts = read_options("mariadb", query, options, OPTIONS)
        self.url = url
        self.label = redact_url(url)
        self.pool_size: int = opts["pool_size"]
        self.pool_timeout: float = opts["pool_timeout"]
        self._secrets = (params.get("password"),)
        database = _PooledDatabase(
            dbname,
            max_connections=self.pool_size,
            timeout=self.pool_timeout,
            stale_timeout=opts["stale_timeout"],
            connect_timeout=max(1, round(opts["connect_timeout"])),
            init_command=_SESSION,
            client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
            **params,
        )
        super().__init__(database)
        self.use_query_log(opts["log_queries"], opts["slow_query_ms"])
        # Peewee's per-thread connection state, read directly on the hot path.
        self._state = database._state

    def __repr__(self) -> str:
        return f"<MariadbBackend {self.label}{' closed' if self._closed else ''}>"

    # ------------------------------------------------------------------ schema

    def apply_table_options(self, specs: Sequence[TableSpec]) -> None:
        """Install (or replace, when the spec changed) the append-only triggers."""
        guarded = [spec for spec in specs if spec.append_only is not None]
        if not guarded:
            return
        rows = self.execute(
            "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE()",
            (),
            ALL,
        )
        existing = dict(rows)
        for spec in guarded:
            for name, (body, ddl) in mariadb_append_only(spec).items():
                if existing.get(name) != body:
                    self.execute(ddl, None, NONE)  # no parameters: its % signs stay

    def purge_up_to(self, spec: TableSpec, column: str, up_to: int) -> int:
        self.execute(
            f"SET {MARIADB_PURGE_TABLE} = %s, {MARIADB_PURGE_UP_TO} = %s",
            (spec.name, up_to),
            NONE,
        )
        try:
            removed: int = self.execute(
                f"DELETE FROM `{spec.name}` WHERE `{column}` <= %s", (up_to,), ROWCOUNT
            )
        finally:
            self.execute(
                f"SET {MARIADB_PURGE_TABLE} = NULL, {MARIADB_PURGE_UP_TO} = NULL", (), NONE
            )
        return removed

    def migration_plan(
        self, plugins: Mapping[str, str] | None = None, target: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """Refused: MariaDB commits each DDL statement, so a plan cannot be found by
        applying migrations and rolling back."""
        raise ConfigurationError(
            f"{self.label}: MariaDB commits every schema change at once, so migrations "
            "cannot be planned by rolling them back; plan on a SQLite or PostgreSQL copy"
        )

    # ------------------------------------------------------------------ connections

    def _checkout(self) -> None:
        try:
            self.database.connect()
        except Exception as exc:
            raise self.translate(exc) from exc

    def _discard(self) -> None:
        """Drop the calling thread's connection and every idle one."""
        database = self.database
        try:
            database.manual_close()
        except Exception:
            database._state.reset()  # forget it; the pool no longer counts it either
        database.close_idle()

    def execute(self, sql: str, params: Any, mode: int) -> Any:
        if self._tx.depth:
            return self._execute_once(sql, params, mode)
        # Outside a transaction the statement is the whole transaction: a deadlock's
        # victim (InnoDB rolled back only that statement) runs again.
        for _ in range(_DEADLOCK_TRIES - 1):
            try:
                return self._execute_once(sql, params, mode)
            except Conflict:
                time.sleep(random.uniform(0, 0.002))
        return self._execute_once(sql, params, mode)

    def _execute_once(self, sql: str, params: Any, mode: int) -> Any:
        if self._closed:
            raise closed_error(self.name)
        tx = self._tx
        if tx.doomed:
            raise Conflict(
                f"{self.label}: this transaction was rolled back by a deadlock; "
                "leave the transaction block and retry it"
            )
        state = self._state
        owned = state.closed  # else a transaction of this thread holds the connection
        if owned:
            self._checkout()
        try:
            cursor = state.conn.cursor()
            if mode == MANY:
                cursor.executemany(sql, params)
                return None
            cursor.execute(sql, params)
            return fetch(cursor, mode)
        except Exception as exc:
            error = self.translate(exc)
            if isinstance(error, Conflict) and tx.depth > 0:
                tx.doomed = True  # InnoDB rolled back the whole transaction
            if owned and isinstance(error, StorageUnavailable) and _broken(state.conn):
                self._discard()  # a timeout leaves the connection usable: keep it
                owned = False
            raise error from exc
        finally:
            if owned:
                self.database.close()

    def begin_transaction(self) -> None:
        database = self.database
        owned = database.is_closed()
        if owned:
            self._checkout()
        self._tx.owned = owned
        self._tx.doomed = False
        try:
            self.execute("BEGIN", (), NONE)
        except BaseException:
            self._release(owned, broken=True)
            raise

    def end_transaction(self, commit: bool) -> None:
        tx = self._tx
        owned = tx.owned
        doomed, tx.doomed = tx.doomed, False
        broken = False
        try:
            if doomed and commit:
                raise Conflict(
                    f"{self.label}: this transaction was rolled back by a deadlock, so "
                    "it cannot commit; retry it"
                )
            self.execute("COMMIT" if commit else "ROLLBACK", (), NONE)
        except ClonestoreError:
            broken = True
            if commit:
                self._rollback_quietly()
                raise
        finally:
            self._release(owned, broken)

    def _rollback_quietly(self) -> None:
        # Already failing: the caller raises the first error.
        with contextlib.suppress(Exception):
            self.database._state.conn.rollback()

    def _release(self, owned: bool, broken: bool) -> None:
        if not owned:
            return
        database = self.database
        if broken and _broken(database._state.conn):
            self._discard()
        elif not database.is_closed():
            database.close()

    @contextmanager
    def _key_serialized(self, name: str) -> Iterator[None]:
        """``GET_LOCK`` on the key while an emulated upsert looks for its row and inserts
        it: a duplicate insert would leave InnoDB shared locks that deadlock the racing
        upserts' transactions when they then lock the row."""
        lock = "cs:" + hashlib.sha1(f"{self.database.database}:{name}".encode()).hexdigest()
        row = self.execute("SELECT GET_LOCK(%s, %s)", (lock, self.pool_timeout), ONE)
        if row[0] != 1:
            raise StorageUnavailable(
                f"{self.label}: an upsert of the same key held its lock for "
                f"{self.pool_timeout} s; retry"
            )
        try:
            yield
        finally:
            self.execute("SELECT RELEASE_LOCK(%s)", (lock,), NONE)

    @contextmanager
    def schema_session(self) -> Iterator[None]:
        """Hold one connection and the schema lock (``GET_LOCK``) while the schema changes."""
        if self._closed:
            raise closed_error(self.name)
        with self.database.connection_context():
            row = self.execute(
                "SELECT GET_LOCK(%s, %s)", (_SCHEMA_LOCK, _SCHEMA_LOCK_SECONDS), ONE
            )
            if row[0] != 1:
                raise StorageUnavailable(
                    f"{self.label}: another process kept the schema lock for "
                    f"{_SCHEMA_LOCK_SECONDS} s"
                )
            try:
                yield
            finally:
                self.execute("SELECT RELEASE_LOCK(%s)", (_SCHEMA_LOCK,), NONE)

    # ------------------------------------------------------------------ lifecycle

    def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``url``, ``latency_ms``, server version and pool use;
        never raises."""
        started = time.perf_counter()
        out: dict[str, Any] = {"ok": False, "backend": self.name, "url": self.label}
        try:
            row = self.execute("SELECT VERSION()", (), ONE)
            out.update(ok=True, server_version=row[0])
        except Exception as exc:
            out["error"] = str(exc)
        out["latency_ms"] = (time.perf_counter() - started) * 1000
        database = self.database
        out["pool"] = {
            "size": self.pool_size,
            "in_use": len(database._in_use),
            "idle": len(database._connections),
        }
        return out

    def close(self) -> None:
        """Close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # closing anyway; nothing to report to
            self.database.close_all()
