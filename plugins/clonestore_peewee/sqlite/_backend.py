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
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import peewee

from clonestore import BackendError, ClonestoreError, ConfigurationError, StorageUnavailable
from clonestore.query import Expr, OrderBy
from clonestore.spi import Row, TableSpec
from clonestore.spi_reference import with_copies

from ..sql import _query_log as query_log
from ..sql._backend import ALL, MANY, NONE, ONE, ROWCOUNT, SQLBackend, _change_values, fetch
from ..sql._compiler import walk
from ..sql._dialects import SQLITE
from ..sql._errors import closed_error
from ..sql._options import flag, not_offered_row_security, positive_float, read_options
from ..sql._statements import update_statement
from ..sql._table_options import SQLITE_PURGES, sqlite_append_only
from ._vectors import MAX_DIMENSION, SqliteVectors, load_extension, register_functions

__all__ = ["SqliteBackend"]

log = logging.getLogger("clonestore.sqlite")

_SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL"}
#: Tries of the checkpoint that truncates the log after an erasure (readers may hold it).
_SCRUB_ATTEMPTS: Final = 5
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
    "row_security": (not_offered_row_security, False),
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


@contextmanager
def foreign_keys_off(database: Any) -> Iterator[None]:
    """Foreign keys unenforced on this connection for the block, as SQLite's procedure
    for changing a table's schema asks (a table is rebuilt by dropping it: with
    enforcement on, the drop would fail or delete through the keys pointing at it).
    Set before the block's transaction begins: the pragma does nothing inside one. A
    migration that rebuilds tables checks ``PRAGMA foreign_key_check`` itself."""
    database.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        database.execute_sql("PRAGMA foreign_keys = ON")


class SqliteBackend(SQLBackend):
    """SQLite storage implementing :class:`clonestore.spi.Backend`."""

    name = "sqlite"
    dialect = SQLITE
    #: ``append_only`` by triggers (see :mod:`.table_options`); no ``ephemeral``:
    #: SQLite has no per-table durability, so such tables stay ordinary ones.
    #: ``bulk_copy``: SQLite has no COPY; its bulk load is what ``insert_many`` does, one
    #: prepared INSERT stepped for every row by the driver in C inside one transaction
    #: (bench/bench_copy.py measures it against the raw driver's ``executemany``).
    #: ``select_columns``: the driver's rows turned into columns in C, only the columns
    #: needing it converted (a page of 50 users without a dict per row).
    #: The capabilities without a protocol; the others (append_only, update_and_insert,
    #: vector_search, vector_dimensions, scrub, migrations, backup, text_search,
    #: select_columns) are the protocols this class implements.
    capabilities: frozenset[str] = frozenset({"bulk_copy", "upsert_returning"})

    #: SQLite 3.51 runs a keyset page about 12% slower with a bound LIMIT: limits up to
    #: a page's (the largest page, 1,000, and the row telling whether more follow) are
    #: written into the SQL.
    literal_limits = 1001

    def __init__(self, url: str = "sqlite:///:memory:", **options: Any) -> None:
        path, query = _parse_path(url)
        opts = read_options("sqlite", query, options, OPTIONS)
        self.url = url
        self.path = path
        self._vector_specs: list[TableSpec] = []
        self.memory = path == ":memory:"
        self.busy_timeout: float = opts["busy_timeout"]
        pragmas: list[tuple[str, Any]] = [
            ("busy_timeout", int(self.busy_timeout * 1000)),
            ("analysis_limit", 1000),  # PRAGMA optimize samples, never reads whole tables
            # Freed content is overwritten with zeros, so erased data leaves the file.
            ("secure_delete", "on"),
            # Foreign keys are enforced (SQLite's default is off, per connection).
            ("foreign_keys", "on"),
            # sqlite-vec writes a vector into its chunk (1,024 vectors a column, 1.5 MB
            # a column at 384 dims) through a blob handle that walks the chunk's pages:
            # with SQLite's default 2 MB cache the two metric columns' chunks evict each
            # other, and 10,000 x 384 vectors went into vec0 in 0.86-1.2 s instead of
            # 0.28 s (a ceiling: pages are taken as used).
            ("cache_size", -65536),
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

    def execute(self, sql: str, params: Any, mode: int) -> Any:
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

    def begin_transaction(self) -> None:
        # The in-memory database's lock is held until the transaction ends.
        with self._lock_held(release=False):
            self.execute("BEGIN IMMEDIATE", (), NONE)

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
        """Hold the write lock (``BEGIN IMMEDIATE``) while the schema changes, foreign
        keys unenforced (see :func:`foreign_keys_off`)."""
        if self._closed:
            raise closed_error(self.name)
        with self._lock_held(), foreign_keys_off(self.database), self.database.atomic():
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
        self._vector_specs = [s for s in specs if self.vectors.vector_columns(s)]
        guarded = [spec for spec in specs if spec.append_only is not None]
        if not guarded:
            return
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {SQLITE_PURGES} "
            "(table_name TEXT PRIMARY KEY, up_to INTEGER NOT NULL)",
            (),
            NONE,
        )
        rows = self.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'", (), ALL
        )
        existing = dict(rows)
        for spec in guarded:
            for name, ddl in sqlite_append_only(spec).items():
                if existing.get(name) == ddl:
                    continue
                self.execute(f'DROP TRIGGER IF EXISTS "{name}"', (), NONE)
                self.execute(ddl, (), NONE)

    def purge_up_to(self, spec: TableSpec, column: str, up_to: int) -> int:
        self.execute(
            f"INSERT OR REPLACE INTO {SQLITE_PURGES} (table_name, up_to) VALUES (?, ?)",
            (spec.name, up_to),
            NONE,
        )
        removed: int = self.execute(
            f'DELETE FROM "{spec.name}" WHERE "{column}" <= ?', (up_to,), ROWCOUNT
        )
        self.execute(f"DELETE FROM {SQLITE_PURGES} WHERE table_name = ?", (spec.name,), NONE)
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
        if self._vector_table(table) or self._vector_table(into) or self.text_indexed(table, into):
            return super().update_and_insert(table, where, changes, into, row, copied)
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        increments = _change_values(changes, values)
        sources = tuple(dict.fromkeys(copied.values())) or ("id",)
        key = ("update_returning", info, walk(where, values), tuple(changes), increments,
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
            with self._naming_duplicates(table, lambda: self._updated(table, where, changes)):
                found = self.execute(statement.sql, statement.params(values), ALL)
            if not found:
                return None
            if len(found) > 1:
                raise BackendError(f"update_and_insert: {len(found)} rows of {table.name} matched")
            inserted = with_copies(row, load(found[0]), copied)
            SQLBackend.insert(self, into, inserted)  # no vectors to index (checked above)
            return inserted

    def select_columns(
        self,
        table: TableSpec,
        columns: Sequence[str],
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Sequence[Any]]:
        """:meth:`select`'s rows a column each (capability ``select_columns``): the
        driver's tuples become columns in C, only the columns needing it converted."""
        return self._select_columns(table, columns, where, order, limit, offset)

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert one row (and its vector into the vector tables, in one transaction)."""
        if not self._vector_table(table):
            return super().insert(table, row)
        packed = self.vectors.packed(table, [row])
        with self.transaction():
            super().insert(table, packed[0])
            self.vectors.add(table, [row], packed)
        return None

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert rows, all or none (their vectors too)."""
        if not self._vector_table(table) or not rows:
            return super().insert_many(table, rows)
        packed = self.vectors.packed(table, rows)
        with self.transaction():
            super().insert_many(table, packed)
            self.vectors.add(table, rows, packed)
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
        error = super().translate(exc)
        code = getattr(error.orig, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF) in (_SQLITE_CANTOPEN, _SQLITE_READONLY):
            hint = "" if self.memory else _file_problem(self.path)
            if hint:
                return StorageUnavailable(f"{self.label}: {hint}", orig=error.orig)
        return error

    # ------------------------------------------------------------------ lifecycle

    def scrub(self) -> None:
        """After an erasure (capability ``scrub``): every connection deletes securely
        (``PRAGMA secure_delete``: freed content is zeroed), so the database file holds
        no erased row once the write-ahead log is checkpointed into it; the log, which
        still does, is checkpointed and truncated to zero bytes here. A reader holding
        the log keeps it from being truncated: then the next erasure's scrub (or the
        next checkpoint SQLite runs) finishes it, and a warning says so."""
        if self.memory:
            return
        for attempt in range(_SCRUB_ATTEMPTS):
            try:
                busy = self.execute("PRAGMA wal_checkpoint(TRUNCATE)", (), ONE)[0]
            except ClonestoreError as exc:
                log.warning("%s: the log was not truncated after an erasure: %s", self.label, exc)
                return
            if not busy:
                return
            time.sleep(0.05 * (attempt + 1))
        log.warning(
            "%s: readers kept the write-ahead log from being truncated after an erasure; "
            "erased rows stay in it until the next checkpoint",
            self.label,
        )

    def backup(self, path: str) -> str:
        """A consistent copy of the database in the new file ``path`` by SQLite's online
        backup API (capability ``backup``): pages are copied while other connections
        go on reading and writing. Written to ``path.partial``, then renamed."""
        target = Path(path)
        if target.exists():
            raise ConfigurationError(
                f"{path} exists: a backup never overwrites a file; name a new one"
            )
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            copy = DRIVER.connect(str(partial))
        except Exception as exc:
            raise ConfigurationError(f"cannot create {partial}: {exc}") from None
        try:
            with self._lock if self._lock is not None else contextlib.nullcontext():
                source = (
                    self._state.conn
                    if not self._state.closed
                    else self.database.connection()
                )
                try:
                    source.backup(copy, pages=1024)
                except Exception as exc:
                    raise self.translate(exc) from exc
        except BaseException:
            copy.close()
            partial.unlink(missing_ok=True)
            raise
        copy.close()
        os.replace(partial, target)
        return f"sqlite:///{target}"

    def vector_dimension_limits(self) -> dict[str, int]:
        """sqlite-vec's vec0 (8,192 dimensions), with or without the extension loaded
        (capability ``vector_dimensions``)."""
        return {"sqlite-vec vec0": MAX_DIMENSION}

    def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``latency_ms``, SQLite version and journal mode, and
        ``vectors_not_indexed`` (per ``table.column``, stored vectors longer than
        :meth:`vector_dimension_limits`, written before the limit) when there are any;
        never raises."""
        started = time.perf_counter()
        out: dict[str, Any] = {"ok": False, "backend": self.name, "path": self.path}
        try:
            row = self.execute("SELECT sqlite_version()", (), ONE)
            journal = self.execute("PRAGMA journal_mode", (), ONE)
            out.update(ok=True, server_version=row[0], journal_mode=journal[0])
            out["vector_search"] = (
                f"sqlite-vec {extension_version()}" if self.vectors.extension else "portable"
            )
            oversized = self.vectors.oversized(self._vector_specs)
            if oversized:
                out["vectors_not_indexed"] = oversized
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
