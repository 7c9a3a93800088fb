"""The ``postgresql://`` (and ``postgres://``) backend, on a connection pool.

``postgresql://user:password@host:port/dbname?pool_size=10``. Options
(keywords to ``clonestore.open`` or URL query parameters):

=================  =======  ==================================================
pool_size          10       connections kept at most
pool_timeout       10       seconds to wait for a free connection, then
                            ``StorageUnavailable``
connect_timeout    5        seconds to wait for the server when connecting
stale_timeout      300      seconds after which a connection (from when it
                            was opened) is closed instead of reused
statement_timeout  none     seconds a statement may run (server-side)
application_name   clone..  shown in ``pg_stat_activity``
sslmode, ...                passed to libpq: sslmode, sslrootcert, sslcert,
                            sslkey, target_session_attrs, host, port, user,
                            password, dbname
vector_dimension   none     the one length of embeddings (``vector(n)``);
                            other lengths are a ValidationError
vector_index       none     ``hnsw``: an HNSW index for ``approximate=True``
                            searches (needs vector_dimension)
vector_index_m..   cosine   vector_index_metrics: metrics indexed (cosine,l2)
m                  16       HNSW links per node
ef_construction    64       HNSW build candidate list
ef_search          200      HNSW search candidate list (per transaction)
copy_min_rows      100      insert_many of this many rows or more uses COPY
=================  =======  ==================================================

A connection is taken from the pool (:mod:`.pool`: one lock, a cursor kept per
connection) for each call (or held for a transaction) and given back right
after. A connection found broken (server restart, ``pg_terminate_backend``)
fails its call with ``StorageUnavailable`` and is discarded along with the
idle ones (they are most likely broken too), so later calls reconnect by
themselves.

Capability ``bulk_copy``: large ``insert_many`` calls by ``COPY`` (option
``copy_min_rows``, default 100), see :mod:`.pg_copy`. Capability
``vector_search`` (:class:`clonestore.spi.VectorSearch`): pgvector
when the server has it, else exact SQL over the stored arrays; see
:mod:`.pg_vectors`. Capability ``listen_notify``
(:class:`clonestore.spi.ListenNotify`): see :mod:`.notifications`. Table options
``ephemeral`` (``UNLOGGED``) and ``append_only`` (a refusing trigger): see
:mod:`.table_options`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, cast
from urllib.parse import unquote, urlsplit

import peewee
import psycopg2
import psycopg2.extensions
import psycopg2.extras

from clonestore import ClonestoreError, ConfigurationError, StorageUnavailable, ValidationError
from clonestore.secrets import redact_url
from clonestore.spi import Expr, Row, TableSpec

from . import query_log
from .backend import ALL, MANY, NONE, ONE, SQLBackend, _change_values, fetch
from .codecs import load_json
from .compiler import walk
from .dialects import POSTGRES
from .errors import closed_error
from .notifications import MAX_PAYLOAD_BYTES, Listener
from .options import positive_float, positive_int, read_options, text
from .pg_copy import copy_chunks, copy_sql, row_encoder
from .pg_vectors import VECTOR_OPTIONS, VectorOptions, VectorSearch
from .pool import Connection, ConnectionPool, broken
from .statements import update_and_insert_statement
from .table_options import postgres_append_only, postgres_purge_function

__all__ = ["PostgresBackend"]

log = logging.getLogger("clonestore.postgresql")

#: Passed through to libpq as given.
LIBPQ_PARAMETERS: Final = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "target_session_attrs",
    "host",
    "port",
    "user",
    "password",
    "dbname",
)

OPTIONS: Final = {
    "pool_size": (positive_int, 10),
    "pool_timeout": (positive_float, 10.0),
    "connect_timeout": (positive_float, 5.0),
    "stale_timeout": (positive_float, 300.0),
    "statement_timeout": (positive_float, None),
    "application_name": (text, "clonestore"),
    **dict.fromkeys(LIBPQ_PARAMETERS, (text, None)),
    **query_log.OPTIONS,
    **VECTOR_OPTIONS,
    "copy_min_rows": (positive_int, 100),
}

#: Rows inserted per statement by insert_many (psycopg2's execute_values pages).
INSERT_PAGE: Final = 1000
# Held (session-level) while the schema changes, so that concurrent starts
# migrate once. Any fixed 64-bit number unlikely to clash with applications.
_SCHEMA_LOCK_KEY: Final = 0x636C6F6E6573746F  # "clonesto"

# Whether the server offers pgvector and which version this database has installed.
_PGVECTOR: Final = (
    "SELECT installed_version, default_version FROM pg_available_extensions WHERE name = 'vector'"
)
_INSUFFICIENT_PRIVILEGE: Final = "42501"
_JSON_OID: Final = 114
_JSON_ARRAY_OID: Final = 199
_UUID_OID: Final = 2950
_UUID_ARRAY_OID: Final = 2951
# uuid columns read as canonical strings (the kind's Python value), not
# uuid.UUID objects as Peewee's global registration would give.
_UUID_AS_TEXT: Final = psycopg2.extensions.new_type(
    (_UUID_OID,), "CLONESTORE_UUID", psycopg2.extensions.UNICODE
)
_UUID_ARRAY_AS_TEXT: Final = psycopg2.extensions.new_array_type(
    (_UUID_ARRAY_OID,), "CLONESTORE_UUID_ARRAY", _UUID_AS_TEXT
)


_FLOAT8_ARRAY_OID: Final = 1022


def _float8_array(value: str | None, cursor: Any) -> list[float | None] | None:
    """A ``double precision[]`` (a vector) from its text: one ``float`` per item, as
    psycopg2's own caster reads them but without its per-item Python calls (4x faster
    on 384 items). The text is the shortest that reads back as the same double."""
    if value is None:
        return None
    inner = value[1:-1]
    if not inner:
        return []
    try:
        return list(map(float, inner.split(",")))
    except ValueError:  # NULL items ({1,NULL}): vectors have none, other arrays might
        return [None if item == "NULL" else float(item) for item in inner.split(",")]


_FLOAT8_ARRAY: Final = psycopg2.extensions.new_type(
    (_FLOAT8_ARRAY_OID,), "CLONESTORE_FLOAT8_ARRAY", _float8_array
)


class _Adapter(peewee.Psycopg2Adapter):
    def connect(self, db: Any, **params: Any) -> Any:
        conn = cast(Any, super()).connect(db, **params)
        psycopg2.extensions.register_type(_UUID_AS_TEXT, conn)
        psycopg2.extensions.register_type(_UUID_ARRAY_AS_TEXT, conn)
        psycopg2.extensions.register_type(_FLOAT8_ARRAY, conn)
        # json values parsed by the faster loader (oids given: no catalog query).
        psycopg2.extras.register_json(
            conn, loads=load_json, oid=_JSON_OID, array_oid=_JSON_ARRAY_OID
        )
        return conn


class _Database(peewee.PostgresqlDatabase):
    """Peewee's database with clonestore's column types, its connections from the
    backend's pool: what Peewee runs itself (migrations, schema introspection, in
    :meth:`PostgresBackend.schema_session`) holds a pooled connection like a transaction.

    A connection found broken is detected when used (that call fails with
    ``StorageUnavailable`` and the connection is discarded), never by a ping per
    checkout, which would double the cost of a point read.
    """

    field_types = {**peewee.PostgresqlDatabase.field_types, **POSTGRES.field_types}
    psycopg2_adapter = _Adapter
    pool: ConnectionPool

    def _connect(self) -> Any:
        entry = self.pool.acquire()
        self._held().entry = entry
        return entry.conn

    def _held(self) -> Any:
        """The calling thread's connection state (Peewee's; typed loosely by its stubs)."""
        return cast(Any, self)._state

    def open_connection(self) -> Any:
        """A new driver connection (what the pool opens)."""
        return cast(Any, peewee.PostgresqlDatabase)._connect(self)

    def _close(self, conn: Any) -> None:
        state = self._held()
        entry: Connection = state.entry
        state.entry = None
        if broken(conn):
            self.pool.discard(entry)
        else:
            self.pool.release(entry)


def _parse(url: str) -> tuple[dict[str, Any], str]:
    parts = urlsplit(url)
    params: dict[str, Any] = {}
    # The host as written (urlsplit's hostname lower-cases it, which would
    # break a percent-encoded socket directory such as %2Ftmp%2FPg).
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("["):
        host = hostport[1 : hostport.find("]")]
    else:
        host = hostport.partition(":")[0]
    if host:
        params["host"] = unquote(host)
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"invalid port in {redact_url(url)!r}") from None
    if port is not None:
        params["port"] = port
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if database:
        params["dbname"] = database
    return params, parts.query


class PostgresBackend(SQLBackend):
    """PostgreSQL storage implementing :class:`clonestore.spi.Backend`."""

    name = "postgresql"
    dialect = POSTGRES
    capabilities: frozenset[str] = frozenset(
        {
            "listen_notify",
            "ephemeral",
            "append_only",
            "update_and_insert",
            "upsert_returning",
            "vector_search",
            "bulk_copy",
        }
    )

    def __init__(self, url: str, **options: Any) -> None:
        params, opts = self._configure(url, options)
        dbname = params.pop("dbname")
        database: Any = _Database(dbname, **params)
        self._pool = database.pool = ConnectionPool(
            database.open_connection,
            size=self.pool_size,
            timeout=self.pool_timeout,
            stale_after=opts["stale_timeout"],
        )
        super().__init__(database)
        self.use_query_log(opts["log_queries"], opts["slow_query_ms"])
        # Peewee's per-thread connection state, read directly on the hot path: a
        # connection held by this thread (a transaction, a schema session) is there,
        # with its pool entry as ``entry``.
        self._state = database._state
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()

    def _configure(
        self, url: str, options: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read the URL and options (shared with the async backend): libpq parameters
        (including ``dbname``) and the options."""
        params, query = _parse(url)
        opts = read_options("postgresql", query, options, OPTIONS)
        for name in LIBPQ_PARAMETERS:  # given as options, they win over the URL's parts
            if opts[name] is not None:
                params[name] = opts[name]
        if "dbname" not in params:
            raise ConfigurationError(
                f"no database name in {redact_url(url)!r}; use postgresql://user@host/dbname"
            )
        server_options = "-c TimeZone=UTC"
        if opts["statement_timeout"] is not None:
            server_options += f" -c statement_timeout={int(opts['statement_timeout'] * 1000)}"
        self.url = url
        self.label = redact_url(url)
        self.vectors = VectorSearch(self, VectorOptions.read(opts))
        self.copy_min_rows: int = opts["copy_min_rows"]
        self._copiers: dict[str, tuple[str, Callable[[Row], str]]] = {}
        self.pool_size: int = opts["pool_size"]
        self.pool_timeout: float = opts["pool_timeout"]
        self._secrets = (params.get("password"),)
        params.update(
            connect_timeout=max(1, round(opts["connect_timeout"])),
            application_name=opts["application_name"],
            options=server_options,
        )
        # What a listener's own connection is opened with (keepalives: an idle
        # listener notices a vanished server).
        self._listen_params = {**params, "keepalives": 1, "keepalives_idle": 30}
        return params, opts

    def __repr__(self) -> str:
        return f"<PostgresBackend {self.label}{' closed' if self._closed else ''}>"

    # ------------------------------------------------------------------ table options

    def apply_table_options(self, specs: Sequence[TableSpec]) -> None:
        """``ephemeral`` tables ``UNLOGGED`` (the others ``LOGGED``), append-only
        triggers installed or replaced when their spec changed (see :mod:`.table_options`)."""
        names = [spec.name for spec in specs]
        found = self._execute(
            "SELECT relname, relpersistence FROM pg_class WHERE oid IN "
            "(SELECT to_regclass(quote_ident(t)) FROM unnest(%s::text[]) AS t)",
            (names,),
            ALL,
        )
        persistence = dict(found)
        for spec in specs:
            wanted = "u" if spec.ephemeral else "p"
            if persistence.get(spec.name, wanted) != wanted:
                self._set_persistence(spec)
        for spec in specs:
            if spec.append_only is not None:
                self._guard(spec)
        self.vectors.apply(specs)

    def _set_persistence(self, spec: TableSpec) -> None:
        change = "UNLOGGED" if spec.ephemeral else "LOGGED"
        try:
            self._execute(f'ALTER TABLE "{spec.name}" SET {change}', (), NONE)
        except ClonestoreError as exc:
            if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
                raise
            # Not the table's owner: it keeps its persistence, which changes
            # durability, never meaning.
            log.warning("%s: %s keeps its persistence (%s)", self.label, spec.name, exc)

    def _guard(self, spec: TableSpec) -> None:
        function, fingerprint, ddl = postgres_append_only(spec)
        row = self._execute(
            "SELECT obj_description(to_regprocedure(%s), 'pg_proc'), (SELECT count(*) "
            "FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname IN (%s, %s))",
            (f"{function}()", spec.name, function, f"{function}_truncate"),
            ONE,
        )
        if row == (fingerprint, 2):
            return
        try:
            with self.transaction():
                self._execute(ddl, None, NONE)  # no parameters: its % signs stay
        except ClonestoreError as exc:
            if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
                raise
            raise ConfigurationError(
                f"{self.label}: {spec.name} must be append-only, but this role may not "
                f"install its guard ({exc}); open a store once as the table's owner",
                orig=exc.orig,
            ) from exc

    def _purge(self, spec: TableSpec, column: str, up_to: int) -> int:
        row = self._execute(
            f"SELECT {postgres_purge_function(spec.name)}(%s)", (up_to,), ONE
        )
        removed: int = row[0]
        return removed

    # ------------------------------------------------------------------ writes

    def update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
    ) -> Row | None:
        """Capability ``update_and_insert`` in one statement: a data-modifying CTE
        updates the row, and ``INSERT ... SELECT`` from it inserts only if it matched
        (vectors of ``vector_dimension``'s length only)."""
        self.vectors.check_rows(table, (changes,))
        self.vectors.check_rows(into, (row,))
        info = self._tables.get(table.name) or self.table_info(table)
        child = self._tables.get(into.name) or self.table_info(into)
        values: list[Any] = []
        increments = _change_values(changes, values)
        shape = walk(where, values)
        key = ("update_and_insert", info.name, shape, tuple(changes), increments, child.name,
               tuple(copied.items()))  # fmt: skip
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key,
                update_and_insert_statement(
                    compiler, info, where, changes, increments, child, copied
                ),
            )
        params: dict[Any, Any] = dict(row)
        params.update(enumerate(values))
        found = self._execute(statement.sql, statement.params(params), ONE)
        if found is None:
            return None
        assert statement.load is not None
        inserted = dict(row)
        inserted.update(statement.load(found))
        return inserted

    # ------------------------------------------------------------------ connections

    def _execute(self, sql: str, params: Any, mode: int) -> Any:
        if self._closed:
            raise closed_error(self.name)
        state = self._state
        if not state.closed:  # a transaction of this thread holds a connection
            entry: Connection | None = getattr(state, "entry", None)
            cursor = entry.cursor if entry is not None else state.conn.cursor()
            try:
                if mode == MANY:
                    self._insert_pages(cursor, sql, params)
                    return None
                cursor.execute(sql, params)
                return fetch(cursor, mode)
            except Exception as exc:
                raise self.translate(exc) from exc  # its owner discards it if broken
        pool = self._pool
        try:
            entry = pool.acquire()
        except Exception as exc:
            raise self.translate(exc) from exc
        try:
            cursor = entry.cursor
            if mode == MANY:
                self._insert_pages(cursor, sql, params)
                result = None
            else:
                cursor.execute(sql, params)
                result = fetch(cursor, mode)
        except Exception as exc:
            error = self.translate(exc)
            if isinstance(error, StorageUnavailable) and broken(entry.conn):
                pool.discard(entry)  # a timeout leaves the connection usable: keep it
                pool.close_idle()
            else:
                pool.release(entry)
            raise error from exc
        pool.release(entry)
        return result

    def _insert_pages(self, cursor: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        head, _, template = sql.rpartition(" VALUES ")
        psycopg2.extras.execute_values(
            cursor, f"{head} VALUES %s", rows, template=template, page_size=INSERT_PAGE
        )

    def _begin(self) -> None:
        state = self._state
        owned = state.closed
        if owned:  # take a connection for the transaction (else a schema session holds one)
            try:
                entry = self._pool.acquire()
            except Exception as exc:
                raise self.translate(exc) from exc
            state.set_connection(entry.conn)
            state.entry = entry
        self._tx.owned = owned
        try:
            self._execute("BEGIN", (), NONE)
        except BaseException:
            self._release(owned, failed=True)
            raise

    def _end(self, commit: bool) -> None:
        owned = self._tx.owned
        failed = False
        try:
            self._execute("COMMIT" if commit else "ROLLBACK", (), NONE)
        except ClonestoreError:
            failed = True
            if commit:
                self._rollback_quietly()
                raise
        finally:
            self._release(owned, failed)

    def _rollback_quietly(self) -> None:
        # Already failing: the caller raises the first error.
        with contextlib.suppress(Exception):
            self._state.conn.cursor().execute("ROLLBACK")

    def _release(self, owned: bool, failed: bool) -> None:
        """Give back the connection a transaction took; after a failure, a lost one is
        closed along with the idle ones (they are most likely lost too)."""
        if not owned:
            return
        state = self._state
        entry: Connection | None = getattr(state, "entry", None)
        state.reset()
        state.entry = None
        if entry is None:
            return
        if failed and broken(entry.conn):
            self._pool.discard(entry)
            self._pool.close_idle()
        else:
            self._pool.release(entry)

    @contextmanager
    def schema_session(self) -> Iterator[None]:
        """Hold one connection and the schema advisory lock while the schema changes."""
        if self._closed:
            raise closed_error(self.name)
        with self.database.connection_context():
            self._execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,), NONE)
            try:
                yield
            finally:
                self._execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,), NONE)

    # ------------------------------------------------------------------ lifecycle

    def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``latency_ms``, server version, pool use and ``pgvector``
        (its ``installed`` and ``available`` versions, or None when the server lacks it);
        never raises."""
        started = time.perf_counter()
        out: dict[str, Any] = {"ok": False, "backend": self.name, "url": self.label}
        try:
            row = self._execute("SHOW server_version", (), ONE)
            out.update(ok=True, server_version=row[0])
            row = self._execute(_PGVECTOR, (), ONE)
            out["pgvector"] = {"installed": row[0], "available": row[1]} if row else None
            out["vector_search"] = self.vectors.engine_report()
        except Exception as exc:
            out["error"] = str(exc)
        out["latency_ms"] = (time.perf_counter() - started) * 1000
        out["pool"] = self._pool_use()
        return out

    def _pool_use(self) -> dict[str, int]:
        return self._pool.figures()

    def close(self) -> None:
        """Close every connection (and listener). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._listeners_lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.stop()
        self._pool.close()

    # ------------------------------------------------------------------ listen_notify

    def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` on ``channel``; inside a transaction, when it commits."""
        if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise ValidationError(
                f"notification payloads are at most {MAX_PAYLOAD_BYTES} bytes", field="payload"
            )
        self._execute("SELECT pg_notify(%s, %s)", (channel, payload), NONE)

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(payload)`` from a background thread for each message on
        ``channel``; ``callback(None)`` after a reconnection. Returns the stop function."""
        if self._closed:
            raise closed_error(self.name)

        def connect() -> Any:
            return psycopg2.connect(**self._listen_params)

        def describe(exc: BaseException) -> str:
            return str(self.translate(exc))

        listener = Listener(connect, channel, callback, describe)
        try:
            listener.open()
        except Exception as exc:
            raise self.translate(exc) from exc
        with self._listeners_lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
            listener.stop()

        return stop

    # ------------------------------------------------------------------ vector_search

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
        """The exact best ``limit`` rows by ``metric``, found by pgvector or, without it,
        in SQL over the stored arrays (see :mod:`.pg_vectors`); approximate with HNSW
        when asked and the backend was opened with ``vector_index="hnsw"``."""
        return self.vectors.nearest(table, where, column, query, metric, limit, cutoff,
                                    approximate)  # fmt: skip

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert one complete row (vectors of ``vector_dimension``'s length only)."""
        self.vectors.check_rows(table, (row,))
        super().insert(table, row)

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert rows, all or none (vectors of ``vector_dimension``'s length only); at
        least ``copy_min_rows`` of them by COPY (capability ``bulk_copy``, :mod:`.pg_copy`)."""
        self.vectors.check_rows(table, rows)
        if len(rows) < self.copy_min_rows or "bulk_copy" not in self.capabilities:
            super().insert_many(table, rows)
            return
        copier = self._copiers.get(table.name)
        if copier is None:
            spec = self.table_info(table).spec
            copier = self._copiers[table.name] = (
                copy_sql(spec.name, spec.columns),
                row_encoder(spec.columns),
            )
        sql, encode = copier
        with self.transaction():
            cursor = self._state.conn.cursor()
            try:
                for chunk in copy_chunks(encode, rows):
                    cursor.copy_expert(sql, io.StringIO(chunk))
            except Exception as exc:
                raise self.translate(exc) from exc

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """Apply ``changes`` (vectors of ``vector_dimension``'s length only)."""
        self.vectors.check_rows(table, (changes,))
        return super().update(table, where, changes)

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        returning: Sequence[str] | None = None,
    ) -> Row:
        """Insert or change one row (vectors of ``vector_dimension``'s length only)."""
        self.vectors.check_rows(table, (insert_row, changes))
        return super().upsert(table, key, insert_row, changes, returning)
