"""The ``postgresql://`` (and ``postgres://``) backend, on a connection pool.

``postgresql://user:password@host:port/dbname?pool_size=10``. Options
(keywords to ``clonestore.open`` or URL query parameters):

=================  =======  ==================================================
pool_size          10       connections kept at most
connection_limit   none     the same, as Prisma's URLs name it
schema             none     the schema every statement and migration uses
                            (Prisma's ``?schema=NAME``): each pooled
                            connection's ``search_path`` is ``NAME, public``
                            (public for extensions such as pgvector); the
                            schema is created by the first migration
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
row_security       off      ``on``: this store's role is bound by row-level
                            security; each ``for_user`` view's statements
                            carry its user (see :mod:`._row_security`)
layout             plain    ``citus``: the schema in the form Citus can
                            distribute, distributed when the database has
                            the ``citus`` extension (see :mod:`._citus`);
                            ``partitioned``: turns and the audit log
                            range-partitioned by month (:mod:`._partitions`)
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
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
import peewee
import psycopg2
import psycopg2.extensions
import psycopg2.extras

from clonestore import (
    AlreadyExists,
    ClonestoreError,
    ConfigurationError,
    StorageUnavailable,
    ValidationError,
)
from clonestore.plugin_helpers import acting_user
from clonestore.query import And, Cond, Expr
from clonestore.secrets import redact_url
from clonestore.spi import PRIMARY_KEY, Backend, Row, TableSpec, Unique, withhold
from clonestore.spi_reference import update_and_insert_many_reference, with_copies

from ..sql import _query_log as query_log
from ..sql._backend import ALL, MANY, NONE, ONE, SQLBackend, _change_values, fetch
from ..sql._codecs import load_json
from ..sql._compiler import TableInfo, walk
from ..sql._dialects import POSTGRES
from ..sql._errors import closed_error
from ..sql._options import flag, positive_float, positive_int, read_options, text
from ..sql._statements import update_and_insert_statement
from ..sql._table_options import postgres_append_only, postgres_purge_function
from ._citus import (
    EMAIL_KEYS,
    OWNED,
    EmailKeys,
    apply_layout,
    by_id,
    email_lookup,
    layout,
    shard_constraint,
    taken_error,
)
from ._copy import (
    binary_copy_chunks,
    binary_row_encoder,
    copied_vectors,
    copy_chunks,
    copy_sql,
    row_encoder,
)
from ._notifications import MAX_PAYLOAD_BYTES, Listener
from ._partitions import apply_partitions, drop_before, is_partitioned, whole_bound
from ._pool import Connection, ConnectionPool, broken
from ._row_security import (
    check_bound,
    disable_statements,
    enable_statements,
    refuse_layout,
    run,
    setting_sql,
)
from ._vectors import VECTOR_OPTIONS, PgVectors, VectorOptions

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


def schema_name(value: Any) -> str:
    """A schema name for ``search_path``: 1 to 63 characters, none of them a space, quote,
    backslash, comma or control character (``"public"``, ``"tenant_7"``)."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_IDENTIFIER
        or any(c in ' \t\n\r"\\,\x00' or ord(c) < 32 for c in value)
    ):
        raise ValueError("expected a schema name of 1 to 63 characters without spaces, quotes, "
                         "backslashes or commas")  # fmt: skip
    return value


def quoted_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def search_path(schema: str) -> str:
    """The ``search_path`` of a store on ``schema``: it first, then ``public``, where
    extensions (pgvector's types and functions) are found."""
    return f"{quoted_identifier(schema)},public"


#: PostgreSQL's longest identifier, in bytes (ASCII names: characters).
_MAX_IDENTIFIER: Final = 63


OPTIONS: Final = {
    "pool_size": (positive_int, 10),
    "connection_limit": (positive_int, None),
    "schema": (schema_name, None),
    "pool_timeout": (positive_float, 10.0),
    "connect_timeout": (positive_float, 5.0),
    "stale_timeout": (positive_float, 300.0),
    "statement_timeout": (positive_float, None),
    "application_name": (text, "clonestore"),
    **dict.fromkeys(LIBPQ_PARAMETERS, (text, None)),
    **query_log.OPTIONS,
    **VECTOR_OPTIONS,
    "copy_min_rows": (positive_int, 100),
    "layout": (layout, "plain"),
    "row_security": (flag, False),
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


def _float_array(
    value: str | None, cursor: Any, float32: bool = False
) -> list[float | None] | None:
    """A ``double precision[]`` or (``float32``) ``real[]`` (a vector) from its text: one
    ``float`` per item, as psycopg2's own caster reads them but without its per-item
    Python calls (4x faster on 384 items). The text is the shortest that reads back as
    the same double (float32: as the double nearest to it, then rounded to float32)."""
    if value is None:
        return None
    inner = value[1:-1]
    if not inner:
        return []
    items = inner.split(",")
    try:
        floats = map(float, items)
        return list(array("f", floats) if float32 else floats)
    except ValueError:  # NULL items ({1,NULL}): vectors have none, other arrays might
        values = [None if item == "NULL" else float(item) for item in items]
        if float32:
            return [None if v is None else array("f", (v,))[0] for v in values]
        return values


def _float4_array(value: str | None, cursor: Any) -> list[float | None] | None:
    return _float_array(value, cursor, float32=True)


_FLOAT8_ARRAY: Final = psycopg2.extensions.new_type(
    (_FLOAT8_ARRAY_OID,), "CLONESTORE_FLOAT8_ARRAY", _float_array
)
_FLOAT4_ARRAY_OID: Final = 1021

_FLOAT4_ARRAY: Final = psycopg2.extensions.new_type(
    (_FLOAT4_ARRAY_OID,), "CLONESTORE_FLOAT4_ARRAY", _float4_array
)


class _Adapter(peewee.Psycopg2Adapter):
    def connect(self, db: Any, **params: Any) -> Any:
        conn = cast(Any, super()).connect(db, **params)
        psycopg2.extensions.register_type(_UUID_AS_TEXT, conn)
        psycopg2.extensions.register_type(_UUID_ARRAY_AS_TEXT, conn)
        psycopg2.extensions.register_type(_FLOAT8_ARRAY, conn)
        psycopg2.extensions.register_type(_FLOAT4_ARRAY, conn)
        # json values parsed by the faster loader (oids given: no catalog query).
        psycopg2.extras.register_json(
            conn, loads=load_json, oid=_JSON_OID, array_oid=_JSON_ARRAY_OID
        )
        return conn


class SchemaIntrospection:
    """Peewee's schema introspection (which playhouse's migrations use) in the store's
    schema (``?schema=NAME``) rather than ``public``: mixed into the engine's Peewee
    database classes, sync and async."""

    #: The store's schema, or None: ``public``.
    schema: str | None = None

    def get_tables(self, schema: str | None = None) -> Any:
        return cast(Any, super()).get_tables(schema or self.schema)

    def get_columns(self, table: str, schema: str | None = None) -> Any:
        return cast(Any, super()).get_columns(table, schema or self.schema)

    def get_indexes(self, table: str, schema: str | None = None) -> Any:
        return cast(Any, super()).get_indexes(table, schema or self.schema)

    def get_primary_keys(self, table: str, schema: str | None = None) -> Any:
        return cast(Any, super()).get_primary_keys(table, schema or self.schema)

    def get_foreign_keys(self, table: str, schema: str | None = None) -> Any:
        return cast(Any, super()).get_foreign_keys(table, schema or self.schema)

    def get_views(self, schema: str | None = None) -> Any:
        return cast(Any, super()).get_views(schema or self.schema)

    def table_exists(self, table_name: Any, schema: str | None = None) -> Any:
        return cast(Any, super()).table_exists(table_name, schema or self.schema)


_IDLE: Final = psycopg2.extensions.TRANSACTION_STATUS_IDLE


class _Begun(threading.local):
    """Per thread: whether an outermost transaction began without its BEGIN sent yet."""

    pending = False


class _Database(SchemaIntrospection, peewee.PostgresqlDatabase):
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
    #: The capabilities without a protocol (``owner_routed`` too on the citus layout);
    #: the others (listen_notify, append_only, update_and_insert(_many), vector_search,
    #: vector_dimensions, migrations, text_search, row_security on the plain layout,
    #: time_partitions on the partitioned one) are the protocols this class implements.
    capabilities: frozenset[str] = frozenset({"ephemeral", "upsert_returning", "bulk_copy"})

    def __init__(self, url: str, **options: Any) -> None:
        params, opts = self._configure(url, options)
        dbname = params.pop("dbname")
        database: Any = _Database(dbname, **params)
        database.schema = self.schema
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
        #: Whether the calling thread's transaction has yet to send its BEGIN.
        self._begun = _Begun()
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()

    def _configure(
        self, url: str, options: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read the URL and options (shared with the async backend): libpq parameters
        (including ``dbname``) and the options."""
        params, query = _parse(url)
        opts = read_options("postgresql", query, options, OPTIONS)
        pool_size_given = "pool_size" in options or "pool_size" in dict(parse_qsl(query))
        if opts["connection_limit"] is not None:
            if pool_size_given and opts["pool_size"] != opts["connection_limit"]:
                raise ConfigurationError(
                    "connection_limit and pool_size name the same thing (the pool's size) "
                    "with different values; give one"
                )
            opts["pool_size"] = opts["connection_limit"]
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
        #: The schema of every statement (``?schema=NAME``), or None: the server's default.
        self.schema: str | None = opts["schema"]
        if self.schema is not None:
            server_options += f" -c search_path={search_path(self.schema)}"
        self.url = url
        self.label = redact_url(url)
        self.vectors = PgVectors(self, VectorOptions.read(opts))
        self.copy_min_rows: int = opts["copy_min_rows"]
        #: ``citus``: owner-leading keys, email keys in their own table, statements by id
        #: carrying the owner (capability ``owner_routed``); see :mod:`._citus`.
        self.layout: str = opts["layout"]
        self.citus = self.layout == "citus"
        #: ``row_security=on``: the role is bound by the policies, and a view's statements
        #: carry its user (see :mod:`._row_security`).
        self.bound: bool = opts["row_security"]
        #: Whether the role was found bound (see :meth:`_check_bound`).
        self._bound_checked = False
        if self.layout != "plain":
            refuse_layout(self.layout, self.bound)
            withhold(self, "row_security")
        if self.citus:
            self.capabilities = self.capabilities | {"owner_routed"}
            self._email_keys = EmailKeys(lambda sql, params, mode: self.execute(sql, params, mode))
        #: ``partitioned``: the tables whose spec names ``partition_by``, by month (capability
        #: ``time_partitions``); see :mod:`._partitions`.
        self.partitioned = self.layout == "partitioned"
        if not self.partitioned:
            withhold(self, "time_partitions")
        #: The tables the specs partition by time: name -> (column, unit).
        self._by_time: dict[str, tuple[str, str]] = {}
        self._copiers: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, Any, bool]] = {}
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
        found = self.execute(
            "SELECT relname, relpersistence::text FROM pg_class WHERE oid IN "
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
            self.execute(f'ALTER TABLE "{spec.name}" SET {change}', (), NONE)
        except ClonestoreError as exc:
            if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
                raise
            # Not the table's owner: it keeps its persistence, which changes
            # durability, never meaning.
            log.warning("%s: %s keeps its persistence (%s)", self.label, spec.name, exc)

    def _guard(self, spec: TableSpec) -> None:
        function, fingerprint, ddl = postgres_append_only(spec)
        row = self.execute(
            "SELECT obj_description(to_regprocedure(%s), 'pg_proc'), (SELECT count(*) "
            "FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname IN (%s, %s))",
            (f"{function}()", spec.name, function, f"{function}_truncate"),
            ONE,
        )
        if row == (fingerprint, 2):
            return
        try:
            with self.transaction():
                self.execute(ddl, None, NONE)  # no parameters: its % signs stay
        except ClonestoreError as exc:
            if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
                raise
            raise ConfigurationError(
                f"{self.label}: {spec.name} must be append-only, but this role may not "
                f"install its guard ({exc}); open a store once as the table's owner",
                orig=exc.orig,
            ) from exc

    def purge_up_to(self, spec: TableSpec, column: str, up_to: int) -> int:
        removed = 0
        unit = self._partition_unit(spec.name, column)
        if unit is not None:  # whole partitions go first, then the rest row by row
            removed = drop_before(self.execute, spec.name, column, unit, up_to + 1)
        row = self.execute(
            f"SELECT {postgres_purge_function(spec.name)}(%s)", (up_to,), ONE
        )
        return removed + int(row[0])

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
        if self.text_indexed(table, into):  # the index is kept by update and insert
            self.vectors.check_rows(table, (changes,))
            self.vectors.check_rows(into, (row,))
            return super().update_and_insert(table, where, changes, into, row, copied)
        done = self._update_and_insert(table, where, changes, into, (row,), copied, False)
        return None if done is None else done[1][0]

    def update_and_insert_many(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        rows: Sequence[Row],
        copied: Mapping[str, str],
    ) -> tuple[Row, list[Row]] | None:
        """Capability ``update_and_insert_many`` in one statement: a data-modifying CTE
        updates the row, a second inserts every row (``INSERT ... SELECT ... UNION ALL
        SELECT ...``) only if it matched, and the statement returns the changed row (no
        savepoint, one round trip). Tables the text index covers take the reference
        (update, then ``insert_many``), which keeps the index."""
        if self.text_indexed(table, into):  # the index is kept by update and insert_many
            self.vectors.check_rows(table, (changes,))
            self.vectors.check_rows(into, rows)
            backend = cast(Backend, self)
            return update_and_insert_many_reference(
                backend, table, where, changes, into, rows, copied
            )
        return self._update_and_insert(table, where, changes, into, rows, copied, True)

    def _update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        rows: Sequence[Row],
        copied: Mapping[str, str],
        changed: bool,
    ) -> tuple[Row, list[Row]] | None:
        """The one statement of both: the changed row (with ``changed``; else only its
        ``copied`` values) and the inserted rows, or None when no row matched."""
        self.vectors.check_rows(table, (changes,))
        self.vectors.check_rows(into, rows)
        info = self._tables.get(table.name) or self.table_info(table)
        child = self._tables.get(into.name) or self.table_info(into)
        values: list[Any] = []
        increments = _change_values(changes, values)
        shape = walk(where, values)
        key = ("update_and_insert", info, shape, tuple(changes), increments, child,
               tuple(copied.items()), len(rows), changed)  # fmt: skip
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key,
                update_and_insert_statement(
                    compiler, info, where, changes, increments, child, copied, len(rows), changed
                ),
            )
        others = [c.name for c in child.spec.columns if c.name not in copied]
        for row in rows:
            values.extend([row[name] for name in others])
        found = self.execute(statement.sql, statement.params(values), ONE)
        if found is None:
            return None
        assert statement.load is not None
        source = statement.load(found)
        # Without changed, source holds the copied columns under the child's names.
        taken = with_copies({}, source, copied) if changed else source
        out = []
        for row in rows:
            inserted = dict(row)
            inserted.update(taken)
            out.append(inserted)
        return source, out

    # ------------------------------------------------------------------ connections

    def execute(self, sql: str, params: Any, mode: int) -> Any:
        if self._closed:
            raise closed_error(self.name)
        if self.bound and not self._bound_checked:
            self._check_bound()
        state = self._state
        if not state.closed:  # a transaction of this thread holds a connection
            entry: Connection | None = getattr(state, "entry", None)
            cursor = entry.cursor if entry is not None else state.conn.cursor()
            begun = self._begun
            try:
                if self.bound:
                    sql = self._acting(cursor, sql, params, mode)
                if begun.pending:
                    # The transaction's BEGIN goes with its first statement: one
                    # round trip, not two (a simple query may hold several).
                    begun.pending = False
                    if mode == MANY:
                        cursor.execute("BEGIN")
                    else:
                        sql = f"BEGIN; {sql}"
                if mode == MANY:
                    self._insert_pages(cursor, sql, params)
                    return None
                cursor.execute(sql, params)
                return fetch(cursor, mode)
            except Exception as exc:
                if cursor.connection.info.transaction_status == _IDLE:
                    begun.pending = True  # refused before it reached the server
                    self._tx.user = None
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
                if self.bound:
                    user = acting_user()
                    if user is not None:
                        # One simple query is one implicit transaction: the setting
                        # holds for the statement, and ends with it.
                        sql = setting_sql(user, params is not None) + sql
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

    def _acting(self, cursor: Any, sql: str, params: Any, mode: int) -> str:
        """``sql`` preceded by the setting of the acting user when the transaction's
        statements do not act for that user yet (sent first on its own before pages of
        rows); a rollback to a savepoint may undo the setting, so it is sent again."""
        tx = self._tx
        if sql.startswith("ROLLBACK TO"):
            tx.user = None
            return sql
        user = acting_user()
        if user is not None and user != tx.user:
            tx.user = user
            if mode != MANY:
                return setting_sql(user, params is not None) + sql
            begun = self._begun
            prefix = "BEGIN; " if begun.pending else ""
            begun.pending = False
            cursor.execute(prefix + setting_sql(user, False))
        return sql

    def _insert_pages(self, cursor: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        head, _, template = sql.rpartition(" VALUES ")
        psycopg2.extras.execute_values(
            cursor, f"{head} VALUES %s", rows, template=template, page_size=INSERT_PAGE
        )

    def begin_transaction(self) -> None:
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
        self._tx.user = None
        # BEGIN is sent with the transaction's first statement (see execute), or never
        # when it makes none.
        self._begun.pending = True

    def _send_begin(self) -> None:
        """Send a BEGIN still waiting for a statement (before using the connection
        directly, as COPY does)."""
        if self._begun.pending or (self.bound and acting_user() not in (None, self._tx.user)):
            self.execute("SELECT 1", (), NONE)  # carries the BEGIN (and the acting user)

    def end_transaction(self, commit: bool) -> None:
        owned = self._tx.owned
        failed = False
        if self._begun.pending:  # no statement ran: nothing to commit or roll back
            self._begun.pending = False
            self._release(owned, failed)
            return
        try:
            self.execute("COMMIT" if commit else "ROLLBACK", (), NONE)
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
            self.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,), NONE)
            try:
                if self.schema is not None:
                    self._create_schema(self.schema)
                yield
            finally:
                self.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,), NONE)

    def _create_schema(self, name: str) -> None:
        """Create schema ``name`` unless it exists (asking first: ``CREATE SCHEMA IF NOT
        EXISTS`` needs the right to create schemas even when there is nothing to do).

        pgvector, where the server offers it and it is not installed yet, is created in
        ``public`` first: created by a migration it would land in this schema (the first
        on the search path), out of sight of stores on the database's other schemas."""
        found = self.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,), ONE)
        if found is None:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted_identifier(name)}", (), NONE)
        offered = self.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector' AND installed_version "
            "IS NULL",
            (),
            ONE,
        )
        if offered is not None:
            with contextlib.suppress(ClonestoreError), self.transaction():
                # Not allowed to create it: the backend reports the fallback, as without a schema.
                self.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public", (), NONE)

    # ------------------------------------------------------------------ lifecycle

    def vector_dimension_limits(self) -> dict[str, int]:
        """pgvector's ``vector`` (16,000) and, with ``vector_index="hnsw"``, its HNSW
        index (2,000): declared with or without pgvector on the server, since a
        database without it may get it later (capability ``vector_dimensions``)."""
        return self.vectors.options.dimension_limits()

    def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``latency_ms``, server version, pool use and ``pgvector``
        (its ``installed`` and ``available`` versions, or None when the server lacks it);
        never raises."""
        started = time.perf_counter()
        out: dict[str, Any] = {"ok": False, "backend": self.name, "url": self.label}
        try:
            row = self.execute("SHOW server_version", (), ONE)
            out.update(ok=True, server_version=row[0])
            row = self.execute(_PGVECTOR, (), ONE)
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
        self.execute("SELECT pg_notify(%s, %s)", (channel, payload), NONE)

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
        if self.citus and table.name == "users":
            with self.transaction():
                self._email_keys.claim((row,))
                super().insert(table, row)
            return
        super().insert(table, row)

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert rows, all or none (vectors of ``vector_dimension``'s length only); at
        least ``copy_min_rows`` of them by COPY (capability ``bulk_copy``, :mod:`.pg_copy`)."""
        self.vectors.check_rows(table, rows)
        if self.citus and table.name == "users" and rows:
            with self.transaction():
                self._email_keys.claim(rows)
                self._insert_many(table, rows)
            return
        self._insert_many(table, rows)

    def _insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        if len(rows) < self.copy_min_rows or "bulk_copy" not in self.capabilities:
            super().insert_many(table, rows)
            return
        spec = self.table_info(table).spec
        # How each vector column is stored (asked again after a schema change).
        types = tuple(
            (c.name, self.vectors.stored_type(spec.name, c.name) or "")
            for c in spec.columns
            if c.kind == "vector"
        )
        copier = self._copiers.get((table.name, types))
        if copier is None:
            copier = self._copiers[(table.name, types)] = self._copier(spec, dict(types))
        sql, encode, binary = copier
        with self.transaction():
            self._send_begin()
            cursor = self._state.conn.cursor()
            try:
                if binary:
                    for data in binary_copy_chunks(encode, rows):
                        cursor.copy_expert(sql, io.BytesIO(data))
                else:
                    for chunk in copy_chunks(encode, rows):
                        cursor.copy_expert(sql, io.StringIO(chunk))
            except Exception as exc:
                raise self.translate(exc) from exc
            if self.text_index.covers(table):
                self.text_index.add(table, rows)

    def _copier(self, spec: TableSpec, types: dict[str, str]) -> tuple[str, Any, bool]:
        """The COPY statement of ``spec``'s rows and their encoder: binary (every vector
        column a ``vector``, ``real[]`` or ``double precision[]``: no float to text and
        back), else text."""
        binary = binary_row_encoder(spec.columns, types)
        if binary is not None:
            return copy_sql(spec.name, spec.columns) + " WITH (FORMAT binary)", binary, True
        pgvector = frozenset(name for name, stored in types.items() if stored == "vector")
        return copy_sql(spec.name, spec.columns), row_encoder(spec.columns, pgvector), False

    def sent_vectors(self, sql: str, params: Sequence[Any]) -> tuple[list[str], np.ndarray]:
        """The ids and vectors of ``SELECT id, array_send(vector) ...`` (vectors of one
        length): the ids and a float64 matrix. By binary ``COPY ... TO STDOUT`` (psycopg2
        would receive bytea as hex text, twice the bytes, and decode it; COPY sends them
        as they are)."""
        with self.transaction():
            self._send_begin()
            cursor = self._state.conn.cursor()
            try:
                statement = cursor.mogrify(sql, params).decode()
                out = io.BytesIO()
                cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH (FORMAT binary)", out)
            except Exception as exc:
                raise self.translate(exc) from exc
        return copied_vectors(out.getbuffer())

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """Apply ``changes`` (vectors of ``vector_dimension``'s length only)."""
        self.vectors.check_rows(table, (changes,))
        if self.citus and table.name == "users" and ("email_key" in changes
                                                     or "deleted_at" in changes):  # fmt: skip
            with self.transaction():
                before = self._users_before(table, where)
                after = super().update(table, where, changes)
                self._email_keys.sync(before, after)
            return after
        return super().update(table, where, changes)

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Remove matching rows for good (and, on the Citus layout, users' email keys;
        on the partitioned layout, a removal by the partition column alone,
        ``column < bound``, drops the partitions wholly under the bound first)."""
        if self.partitioned and isinstance(where, Cond) and (
            where.op == "lt" or (where.op == "lte" and type(where.value) is int)
        ):
            unit = self._partition_unit(table.name, where.column)
            if unit is not None:
                before = where.value + 1 if where.op == "lte" else where.value
                with self.transaction():
                    try:
                        dropped = drop_before(self.execute, table.name, where.column, unit,
                                              before)  # fmt: skip
                    except Exception as exc:
                        raise self.translate(exc) from exc
                    return dropped + super().delete(table, where)
        if self.citus and table.name == "users":
            with self.transaction():
                before = self._users_before(table, where)
                removed = super().delete(table, where)
                self._email_keys.release(before)
            return removed
        return super().delete(table, where)

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
        if self.citus and tuple(key) == PRIMARY_KEY:
            if table.name == "users":
                with self.transaction():
                    info = self.table_info(table)
                    before = self._select_locked(info, Cond("id", "eq", insert_row["id"]))
                    stored = super().upsert(table, key, insert_row, changes, None)
                    self._email_keys.sync(before, [stored])
                return stored if returning is None else {c: stored[c] for c in returning}
            if table.name in OWNED:
                # The key is (user_id, id): an id another user's row has is refused here,
                # as the single-column key refuses it on the plain layout.
                with self.transaction():
                    other = self.execute(
                        f'SELECT 1 FROM "{table.name}" WHERE id = %s AND user_id <> %s LIMIT 1',
                        (insert_row["id"], insert_row["user_id"]),
                        ONE,
                    )
                    if other is not None:
                        raise taken_error(table.name)
                    return super().upsert(table, ("user_id", "id"), insert_row, changes,
                                          returning)  # fmt: skip
        return super().upsert(table, key, insert_row, changes, returning)

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[Any] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Matching rows; on the Citus layout, a live user by email is found through the
        email keys first (one shard), then by id (one shard)."""
        if self.citus and table.name == "users":
            key = email_lookup(where)
            if key is not None:
                owner = self._email_keys.owner(key)
                if owner is None:
                    return []
                where = And((Cond("id", "eq", owner), where))
        return super().select(table, where, order, limit, offset)

    def _users_before(self, table: TableSpec, where: Expr) -> list[Row]:
        """The users a write will change, as they are: locked when ``where`` fixes the id
        (one shard; Citus refuses ``FOR UPDATE`` over several), else as read."""
        if by_id(where):
            return self._select_locked(self.table_info(table), where)
        return self.select(table, where)

    def _build_table(self, spec: TableSpec) -> TableInfo:
        info = super()._build_table(spec)
        if self.citus and spec.name in OWNED:
            info.uniques[("user_id", "id")] = Unique(("user_id", "id"))
        return info

    def translate(self, exc: BaseException) -> ClonestoreError:
        """The clonestore error for a driver exception (see the SQL backend); on Citus a
        unique violation raised on a worker names the shard's constraint in its message
        only (``users_pkey_102008``), which is mapped to the table's."""
        error = super().translate(exc)
        if self.citus and isinstance(error, AlreadyExists) and not error.columns:
            name = shard_constraint(str(error.orig))
            columns = self._constraint_columns(name)
            if columns:
                error = AlreadyExists(error.message.replace("a unique constraint", str(name)),
                                      columns=columns, orig=error.orig)  # fmt: skip
        return error

    def _constraint_columns(self, name: str | None) -> tuple[str, ...]:
        if self.citus and name == f"{EMAIL_KEYS}_pkey":
            return ("email_key",)
        return super()._constraint_columns(name)

    # ------------------------------------------------------------------ row_security

    def enable_row_security(self, tables: Sequence[TableSpec], role: str) -> list[str]:
        """Install the policies on the owned tables of ``tables``, turn row-level security
        on and grant ``role`` the use of ``tables`` (capability ``row_security``, see
        :mod:`._row_security`); idempotent, in one transaction under the schema lock, as
        the tables' owner. The statements run."""
        return self._change_row_security(lambda: enable_statements(
            self.execute, tables, role, self.schema))  # fmt: skip

    def disable_row_security(self, tables: Sequence[TableSpec]) -> list[str]:
        """Turn row-level security off on the owned tables of ``tables`` and drop the
        policies (the grants stay); idempotent. The statements run."""
        return self._change_row_security(lambda: disable_statements(self.execute, tables))

    def _check_bound(self, specs: Sequence[TableSpec] | None = None) -> None:
        """Refuse (``ConfigurationError``) a role the policies do not bind, or owned tables
        with row security off: when the store opens (``create_tables``), else before the
        first statement; every statement until it passes."""
        self._bound_checked = True  # the check's own statements pass
        try:
            check_bound(self.execute, specs, self.label)
        except BaseException:
            self._bound_checked = False
            raise

    def _change_row_security(self, plan: Callable[[], list[str]]) -> list[str]:
        if self.layout != "plain":
            refuse_layout(self.layout, True)
        with self.schema_session(), self.transaction():
            statements = plan()
            run(self.execute, statements)
        return statements

    # ------------------------------------------------------------------ the Citus layout

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        """Apply pending migrations and create the spec tables (see the SQL backend);
        on the Citus layout, then convert and distribute the schema (:mod:`._citus`)."""
        super().create_tables(specs)
        if self.citus:
            self.apply_layout()
        if self.bound:
            self._check_bound(specs)
        if self.partitioned:
            self._by_time = {
                spec.name: (
                    spec.partition_by,
                    "timestamptz" if spec.by_name[spec.partition_by].kind == "datetime"
                    else "micros",
                )
                for spec in specs
                if spec.partition_by is not None
            }  # fmt: skip
            self.apply_partitions()

    def migrate(
        self, plugins: Mapping[str, str] | None = None, target: str | None = None
    ) -> list[str]:
        """Apply pending migrations (see the SQL backend); on the Citus layout, then
        convert and distribute the schema, which also converts an existing database."""
        applied = super().migrate(plugins, target)
        if self.citus and target is None:
            self.apply_layout()
        return applied

    def apply_layout(self) -> list[str]:
        """Give the schema the Citus layout and distribute it where Citus is installed
        (idempotent; under the schema lock); the changes made."""
        try:
            with self.schema_session():
                return apply_layout(self.execute, self.transaction)
        except Exception as exc:
            raise self.translate(exc) from exc

    # ------------------------------------------------------------ the partitioned layout

    def maintain_partitions(self, now: datetime | None = None) -> list[str]:
        """Create the months due ahead of ``now`` (the store's clock; default the
        present), the ``partitions`` maintenance task; the changes made."""
        return self.apply_partitions(now) if self.partitioned else []

    def apply_partitions(self, now: datetime | None = None) -> list[str]:
        """Partition the specs' ``partition_by`` tables by month, create the months ahead of
        ``now`` (default the present; idempotent; under the schema lock); the
        changes made (:mod:`._partitions`)."""
        try:
            with self.schema_session():
                return apply_partitions(
                    self.execute, self.transaction, self._by_time, now or datetime.now(UTC)
                )
        except Exception as exc:
            raise self.translate(exc) from exc

    def _partition_unit(self, table: str, column: str) -> str | None:
        """The unit of ``table``'s partition column if it is partitioned by ``column``."""
        known = self._by_time.get(table)
        if known is None or known[0] != column or not is_partitioned(self.execute, table):
            return None
        return known[1]

    def partition_bound(self, table: TableSpec, column: str, before: Any) -> Any | None:
        """The highest month boundary of ``table`` at or under ``before`` (capability
        ``time_partitions``, :class:`clonestore.spi.TimePartitions`)."""
        try:
            unit = self._partition_unit(table.name, column)
            if unit is None:
                return None
            return whole_bound(self.execute, table.name, unit, before)
        except Exception as exc:
            raise self.translate(exc) from exc
