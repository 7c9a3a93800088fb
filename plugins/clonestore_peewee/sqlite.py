"""The ``sqlite://`` backend.

``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
``sqlite:///:memory:``. Options (keywords or URL query): ``busy_timeout``
(seconds a writer waits for the lock, default 10) and ``synchronous``
(``normal``, the default and SQLite's advice for WAL, or ``full``), and
``vector_extension`` (default true: load sqlite-vec when the driver and the
package allow; false searches vectors without it, see :mod:`.sqlite_vectors`).

The driver is Peewee's: ``pysqlite3`` when installed (the ``vectors`` extra:
it can load extensions, which the standard library's ``sqlite3`` cannot here),
otherwise ``sqlite3``.

Concurrency: a file database runs in WAL mode with one connection per thread,
so readers never block the writer. Transactions start with ``BEGIN
IMMEDIATE``: a transaction takes the write lock up front instead of upgrading
a read lock later, which is where SQLite reports SQLITE_BUSY without waiting.
An in-memory database is one connection shared by the backend's threads,
guarded by a lock that a transaction holds until it ends (as memory:// does).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import peewee

from clonestore import BackendError, ClonestoreError, ConfigurationError, StorageUnavailable
from clonestore.spi import Expr, Row, TableSpec, with_copies

from . import query_log
from .backend import ALL, MANY, NONE, ONE, ROWCOUNT, SQLBackend, _change_values, fetch
from .compiler import walk
from .dialects import SQLITE
from .errors import closed_error
from .options import flag, positive_float, read_options
from .sqlite_vectors import SqliteVectors, load_extension, register_functions
from .statements import update_statement
from .table_options import SQLITE_PURGES, sqlite_append_only

__all__ = ["SqliteBackend"]

_SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL"}
#: Changes that move a row's vectors in or out of the vector tables.
_VECTOR_KEYS: Final = frozenset({"deleted_at", "user_id"})


def _synchronous(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in _SYNCHRONOUS:
        raise ValueError(f"expected one of {', '.join(_SYNCHRONOUS)}")
    return _SYNCHRONOUS[value.lower()]


# SQLite result codes (https://sqlite.org/rescode.html).
_SQLITE_READONLY: Final = 8
_SQLITE_CANTOPEN: Final = 14


def _file_problem(path: str) -> str:
    """What is wrong with a database file SQLite cannot open or write, and what to do."""
    file = os.path.abspath(path)
    directory = os.path.dirname(file)
    if not os.path.isdir(directory):
        return (
            f"the directory {directory} does not exist; create it first "
            "(clonestore creates the database file, not its directories)"
        )
    if os.path.isdir(file):
        return f"{file} is a directory; give the path of a database file"
    if os.path.exists(file) and not os.access(file, os.R_OK):
        return f"{file} cannot be read by this process; check its permissions"
    if (os.path.exists(file) and not os.access(file, os.W_OK)) or not os.access(
        directory, os.W_OK
    ):
        return (
            f"{file} or its directory is read-only; make both writable by this process "
            "(SQLite writes the -wal and -shm files beside the database)"
        )
    return ""


OPTIONS: Final = {
    "busy_timeout": (positive_float, 10.0),
    "synchronous": (_synchronous, "NORMAL"),
    "vector_extension": (flag, True),
    **query_log.OPTIONS,
}

#: The driver module Peewee chose: pysqlite3's dbapi2 when installed, else sqlite3.
DRIVER: Any = peewee.sqlite3  # type: ignore[attr-defined]


class _Connection(DRIVER.Connection):  # type: ignore[misc]
    """A driver connection that can be weakly referenced (the base class cannot)."""


_EXTENSION: dict[str, str | None] = {}


def extension_version() -> str | None:
    """sqlite-vec's version when the driver can load it (probed once), else None."""
    if "version" not in _EXTENSION:
        conn = DRIVER.connect(":memory:")
        try:
            _EXTENSION["version"] = load_extension(conn)
        finally:
            conn.close()
    return _EXTENSION["version"]


# Peewee's stubs leave out the connection internals overridden here.
_PeeweeSqliteDatabase: Any = peewee.SqliteDatabase


def close_optimized(conn: sqlite3.Connection) -> None:
    """Close a connection after ``PRAGMA optimize``.

    SQLite's advice for long-lived databases: each connection refreshes the planner
    statistics of the tables it used (sampled, see ``analysis_limit``) as it closes,
    so the planner keeps choosing the ordered indexes as tables grow.
    """
    with contextlib.suppress(sqlite3.Error, DRIVER.Error):  # read-only or busy: stats wait
        conn.execute("PRAGMA optimize")
    conn.close()


class _SqliteDatabase(_PeeweeSqliteDatabase):  # type: ignore[misc]
    """Peewee's SQLite database with clonestore's column types and connections."""

    field_types = {**peewee.SqliteDatabase.field_types, **SQLITE.field_types}

    def __init__(
        self, path: str, *, shared: sqlite3.Connection | None, extension: bool, **kwargs: Any
    ) -> None:
        self._shared = shared
        self._extension = extension
        # Every connection this database opened (one per thread for a file).
        self.opened: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        super().__init__(path, **kwargs)

    def _connect(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        conn: sqlite3.Connection = super()._connect()
        self.opened.add(conn)
        return conn

    def _close(self, conn: sqlite3.Connection) -> None:
        if conn is not self._shared:
            close_optimized(conn)

    def _add_conn_hooks(self, conn: sqlite3.Connection) -> None:
        super()._add_conn_hooks(conn)
        register_functions(conn)
        if self._extension:
            load_extension(conn)


def _parse_path(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URLs have no host: use sqlite:///relative.db or sqlite:////absolute.db, "
            f"got {url!r}"
        )
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    return (path or ":memory:"), parts.query


class SqliteBackend(SQLBackend):
    """SQLite storage implementing :class:`clonestore.spi.Backend`."""

    name = "sqlite"
    dialect = SQLITE
    #: ``append_only`` by triggers (see :mod:`.table_options`); no ``ephemeral``:
    #: SQLite has no per-table durability, so such tables stay ordinary ones.
    #: ``bulk_copy``: SQLite has no COPY; its bulk load is what ``insert_many`` does, one
    #: prepared INSERT stepped for every row by the driver in C inside one transaction
    #: (bench/bench_copy.py measures it against the raw driver's ``executemany``).
    capabilities: frozenset[str] = frozenset(
        {"append_only", "bulk_copy", "update_and_insert", "upsert_returning", "vector_search"}
    )

    def __init__(self, url: str = "sqlite:///:memory:", **options: Any) -> None:
        path, query = _parse_path(url)
        opts = read_options("sqlite", query, options, OPTIONS)
        self.url = url
        self.path = path
        self.memory = path == ":memory:"
        self.busy_timeout: float = opts["busy_timeout"]
        pragmas: list[tuple[str, Any]] = [
            ("busy_timeout", int(self.busy_timeout * 1000)),
            ("analysis_limit", 1000),  # PRAGMA optimize samples, never reads whole tables
        ]
        shared: sqlite3.Connection | None = None
        extension = opts["vector_extension"] and extension_version() is not None
        if self.memory:
            # One database per backend: a single connection every thread uses,
            # serialized by self._lock.
            shared = DRIVER.connect(
                ":memory:", isolation_level=None, check_same_thread=False, factory=_Connection
            )
            self._lock: threading.RLock | None = threading.RLock()
        else:
            pragmas += [("journal_mode", "wal"), ("synchronous", opts["synchronous"])]
            self._lock = None  # a file database has a connection per thread
        database = _SqliteDatabase(
            path,
            shared=shared,
            extension=extension,
            pragmas=pragmas,
            timeout=self.busy_timeout,
            lock_type="IMMEDIATE",
            check_same_thread=False,
            factory=_Connection,
        )
        super().__init__(database)
        self.vectors = SqliteVectors(self, extension)
        if shared is not None:
            database._add_conn_hooks(shared)
        # Peewee's per-thread connection state, read directly on the hot path.
        self._state = database._state
        self.label = f"sqlite://{'/' + path if not self.memory else '/:memory:'}"
        self.use_query_log(opts["log_queries"], opts["slow_query_ms"])

    def __repr__(self) -> str:
        return f"<SqliteBackend {self.label}{' closed' if self._closed else ''}>"

    # ------------------------------------------------------------------ statements

    def _execute(self, sql: str, params: Any, mode: int) -> Any:
        if self._closed:
            raise closed_error(self.name)
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            state = self._state
            conn = state.conn if not state.closed else self.database.connection()
            if mode == MANY:
                conn.executemany(sql, params)
                return None
            return fetch(conn.execute(sql, params), mode)
        except Exception as exc:
            raise SQLITE.translate(exc, self.label) from exc
        finally:
            if lock is not None:
                lock.release()

    def _begin(self) -> None:
        # The in-memory database's lock is held until the transaction ends.
        with self._lock_held(release=False):
            self._execute("BEGIN IMMEDIATE", (), NONE)

    def _end(self, commit: bool) -> None:
        try:
            if commit:
                try:
                    self._execute("COMMIT", (), NONE)
                except ClonestoreError:
                    self._rollback_quietly()
                    raise
            else:
                self._rollback_quietly()
                self.vectors.forget()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _rollback_quietly(self) -> None:
        # Already failing: the caller raises the first error.
        with contextlib.suppress(Exception):
            conn = self.database.connection()
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    @contextmanager
    def schema_session(self) -> Iterator[None]:
        """Hold the write lock (``BEGIN IMMEDIATE``) while the schema changes."""
        if self._closed:
            raise closed_error(self.name)
        with self._lock_held(), self.database.atomic():
            yield

    @contextmanager
    def _lock_held(self, release: bool = True) -> Iterator[None]:
        """Hold the in-memory database's lock (released at the end, or on error only)."""
        lock = self._lock
        if lock is None:
            yield
            return
        lock.acquire()
        try:
            yield
        except BaseException:
            lock.release()
            raise
        if release:
            lock.release()

    # ------------------------------------------------------------------ table options

    def apply_table_options(self, specs: Sequence[TableSpec]) -> None:
        """Install (or replace, when the spec changed) the append-only triggers; with
        sqlite-vec, rebuild vector tables a backend without it left stale."""
        self.vectors.prepare(specs)
        guarded = [spec for spec in specs if spec.append_only is not None]
        if not guarded:
            return
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {SQLITE_PURGES} "
            "(table_name TEXT PRIMARY KEY, up_to INTEGER NOT NULL)",
            (),
            NONE,
        )
        rows = self._execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'", (), ALL
        )
        existing = dict(rows)
        for spec in guarded:
            for name, ddl in sqlite_append_only(spec).items():
                if existing.get(name) == ddl:
                    continue
                self._execute(f'DROP TRIGGER IF EXISTS "{name}"', (), NONE)
                self._execute(ddl, (), NONE)

    def _purge(self, spec: TableSpec, column: str, up_to: int) -> int:
        self._execute(
            f"INSERT OR REPLACE INTO {SQLITE_PURGES} (table_name, up_to) VALUES (?, ?)",
            (spec.name, up_to),
            NONE,
        )
        removed: int = self._execute(
            f'DELETE FROM "{spec.name}" WHERE "{column}" <= ?', (up_to,), ROWCOUNT
        )
        self._execute(f"DELETE FROM {SQLITE_PURGES} WHERE table_name = ?", (spec.name,), NONE)
        return removed

    # ------------------------------------------------------------------ vectors

    def _vector_table(self, table: TableSpec) -> bool:
        known: dict[str, bool] = self.__dict__.setdefault("_has_vectors", {})  # by table
        has = known.get(table.name)
        if has is None:
            has = known[table.name] = any(c.kind == "vector" for c in table.columns)
        return has

    def update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
    ) -> Row | None:
        """Capability ``update_and_insert`` in one transaction: ``UPDATE ... RETURNING``
        only the copied columns, then the insert (SQLite has no data-modifying CTE)."""
        if self._vector_table(table) or self._vector_table(into):
            return super().update_and_insert(table, where, changes, into, row, copied)
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        increments = _change_values(changes, values)
        sources = tuple(dict.fromkeys(copied.values())) or ("id",)
        key = ("update_returning", info.name, walk(where, values), tuple(changes), increments,
               sources)  # fmt: skip
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, update_statement(compiler, info, where, changes, increments, sources)
            )
        load = statement.load
        assert load is not None
        with self.transaction():
            found = self._execute(statement.sql, statement.params(values), ALL)
            if not found:
                return None
            if len(found) > 1:
                raise BackendError(f"update_and_insert: {len(found)} rows of {table.name} matched")
            inserted = with_copies(row, load(found[0]), copied)
            SQLBackend.insert(self, into, inserted)  # no vectors to index (checked above)
            return inserted

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert one row (and its vector into the vector tables, in one transaction)."""
        if not self._vector_table(table):
            return super().insert(table, row)
        with self.transaction():
            super().insert(table, row)
            self.vectors.add(table, [row])
        return None

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert rows, all or none (their vectors too)."""
        if not self._vector_table(table) or not rows:
            return super().insert_many(table, rows)
        with self.transaction():
            super().insert_many(table, rows)
            self.vectors.add(table, rows)
        return None

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """Update rows; a change of a vector, the owner or ``deleted_at`` (soft delete,
        restore) moves the rows' vectors in the same transaction."""
        if not self._vector_table(table) or not any(
            name in _VECTOR_KEYS or table.by_name[name].kind == "vector" for name in changes
        ):
            return super().update(table, where, changes)
        with self.transaction():
            rows = super().update(table, where, changes)
            self.vectors.remove(table, [row["id"] for row in rows])
            self.vectors.add(table, rows)
        return rows

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Remove matching rows for good, their vectors too."""
        if not self._vector_table(table):
            return super().delete(table, where)
        with self.transaction():
            self.vectors.remove(table, [row["id"] for row in self.select(table, where)])
            return super().delete(table, where)

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        returning: Sequence[str] | None = None,
    ) -> Row:
        """Insert or update one row, its vector too (which needs the whole row back)."""
        if not self._vector_table(table):
            return super().upsert(table, key, insert_row, changes, returning)
        with self.transaction():
            row = super().upsert(table, key, insert_row, changes)
            self.vectors.remove(table, [row["id"]])
            self.vectors.add(table, [row])
        return row if returning is None else {name: row[name] for name in returning}

    def drop_spec_tables(self, specs: Sequence[TableSpec]) -> None:
        """Drop the tables of ``specs`` and their vector tables."""
        for spec in specs:
            if self._vector_table(spec):
                self.vectors.drop(spec)
        super().drop_spec_tables(specs)

    def where_sql(self, table: TableSpec, where: Expr) -> tuple[str, str, list[Any]]:
        """``where`` as SQL on the table: its alias, the condition (empty for none)
        and the condition's parameters."""
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        statement = self.select_statement(info, where, values)
        head, _, condition = statement.sql.partition(" WHERE ")
        alias = head.rsplit(" AS ", 1)[1]
        return alias, condition, list(statement.params(values))

    def nearest(
        self,
        table: TableSpec,
        where: Expr,
        column: str,
        query: Sequence[float],
        metric: str,
        limit: int,
        cutoff: float | None = None,
        approximate: bool = False,
    ) -> list[tuple[Row, float]]:
        """Capability ``vector_search``: exact nearest-k (see :mod:`.sqlite_vectors`);
        there is no approximate index, so ``approximate`` searches are exact too."""
        spec = (self._tables.get(table.name) or self.table_info(table)).spec
        if column not in spec.by_name or spec.by_name[column].kind != "vector":
            raise ConfigurationError(f"{table.name}.{column} is not a vector column")
        return self.vectors.nearest(spec, where, column, query, metric, limit, cutoff)

    def translate(self, exc: BaseException) -> ClonestoreError:
        """The clonestore error for a driver exception."""
        error = SQLITE.translate(exc, self.label)
        code = getattr(error.orig, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF) in (_SQLITE_CANTOPEN, _SQLITE_READONLY):
            hint = "" if self.memory else _file_problem(self.path)
            if hint:
                return StorageUnavailable(f"{self.label}: {hint}", orig=error.orig)
        return error

    # ------------------------------------------------------------------ lifecycle

    def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``latency_ms``, SQLite version and journal mode; never raises."""
        started = time.perf_counter()
        out: dict[str, Any] = {"ok": False, "backend": self.name, "path": self.path}
        try:
            row = self._execute("SELECT sqlite_version()", (), ONE)
            journal = self._execute("PRAGMA journal_mode", (), ONE)
            out.update(ok=True, server_version=row[0], journal_mode=journal[0])
            out["vector_search"] = (
                f"sqlite-vec {extension_version()}" if self.vectors.extension else "portable"
            )
        except Exception as exc:
            out["error"] = str(exc)
        out["latency_ms"] = (time.perf_counter() - started) * 1000
        return out

    def close(self) -> None:
        """Close every connection (and listener). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._lock_held():
            for conn in list(self.database.opened):
                with contextlib.suppress(Exception):  # closing anyway
                    close_optimized(conn)
            if self.database._shared is not None:
                self.database._shared.close()
