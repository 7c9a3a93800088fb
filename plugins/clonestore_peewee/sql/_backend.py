"""The storage SPI over SQL, shared by the SQLite and PostgreSQL backends.

Every SPI call is one cached statement shape (see :mod:`.compiler`) run with
the driver's cursor. The engine subclasses supply connections
(:meth:`SQLBackend.execute`), transactions' first and last statements, and
error translation.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from typing import Any, Final, cast

import peewee

from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    Conflict,
    ValidationError,
)
from clonestore.query import And, Cond, Expr, OrderBy
from clonestore.spi import (
    API_VERSION,
    PRIMARY_KEY,
    Aggregate,
    Backend,
    Increment,
    Row,
    TableSpec,
    Unique,
    check_api_version,
)
from clonestore.spi_reference import (
    apply_changes,
    search_reference,
    update_and_insert_reference,
)
from clonestore.text import TextQuery

from . import _query_log as query_log
from ._compiler import Compiler, TableInfo, walk
from ._dialects import Dialect
from ._duplicates import Written, key_where, violated
from ._migration_runner import (
    MigrationSet,
    apply_pending,
    core_migrations,
    migration_status,
    plan,
    plugin_migrations,
    revert,
)
from ._models import build_model
from ._modes import ALL, MANY, NONE, ONE, ROWCOUNT
from ._statements import (
    aggregate_statement,
    columns_statement,
    count_statement,
    delete_statement,
    select_statement,
    update_statement,
    upsert_statement,
)
from ._text_index import INDEXED, OWNER, TextIndex

__all__ = ["ALL", "MANY", "NONE", "ONE", "ROWCOUNT", "SQLBackend", "fetch"]


_BY_ID: Final = itemgetter("id")
_ID_ORDER: Final = (OrderBy("id"),)
#: Tries of an emulated upsert whose insert keeps losing races on its key, or (outside
#: any transaction) whose transaction keeps being chosen as a deadlock's victim.
_UPSERT_TRIES: Final = 20


def fetch(cursor: Any, mode: int) -> Any:
    """What an executed statement gives for ``mode`` (ONE, ALL, ROWCOUNT or NONE)."""
    if mode == ONE:
        return cursor.fetchone()
    if mode == ALL:
        return cursor.fetchall()
    if mode == ROWCOUNT:
        return cursor.rowcount
    return None


def _change_values(changes: Mapping[str, Any], values: list[Any]) -> tuple[bool, ...]:
    """Appends each change's value (an Increment's amount); which changes are Increments."""
    increments = []
    for change in changes.values():
        if type(change) is Increment:
            values.append(change.amount)
            increments.append(True)
        else:
            values.append(change)
            increments.append(False)
    return tuple(increments)


class _TxState(threading.local):
    def __init__(self) -> None:
        self.depth = 0
        # Whether the outermost transaction checked its connection out itself.
        self.owned = False
        # Whether the engine already rolled the transaction back (InnoDB, on a deadlock).
        self.doomed = False
        # The user the transaction's statements act for (capability row_security), once
        # the setting is sent.
        self.user: str | None = None


class SQLBackend(abc.ABC):
    """Implements :class:`clonestore.spi.Backend` over a Peewee database."""

    name: str = "sql"
    capabilities: frozenset[str] = frozenset()
    #: The backend API this backend is written against (clonestore.spi.API_VERSION).
    api_version = API_VERSION
    dialect: Dialect
    #: The URL with any password redacted, used in messages.
    label: str = "sql"
    #: What error messages must never show (passwords).
    _secrets: tuple[str | None, ...] = ()
    #: Select limits up to this are written into the SQL (a statement shape per limit)
    #: instead of bound: LIMIT 1 of point lookups everywhere.
    literal_limits: int = 1

    def __init__(self, database: peewee.Database) -> None:
        # Typed loosely: the engines use Peewee internals (per-thread connection
        # state, pool bookkeeping) that its stubs do not describe.
        self.database: Any = database
        check_api_version(f"the {self.dialect.name} dialect", self.dialect.api_version)
        self.compiler = Compiler(database, self.dialect)
        self._tables: dict[str, TableInfo] = {}
        self._tables_lock = threading.Lock()
        self._tx = _TxState()
        self._closed = False
        self.text_index = TextIndex(self)

    def use_query_log(self, log_queries: bool, slow_query_ms: float | None) -> None:
        """Log statements to ``clonestore.sql`` (see :mod:`.query_log`); a no-op, costing
        nothing per statement, when neither is asked for nor that logger at DEBUG."""
        logged = query_log.logged_execute(
            self.execute, self.label, log_queries=log_queries, slow_query_ms=slow_query_ms
        )
        if logged is not None:
            self.__dict__["execute"] = logged  # this instance's statements go through it

    # ------------------------------------------------------------------ engine hooks

    @abc.abstractmethod
    def execute(self, sql: str, params: Any, mode: int) -> Any:
        """Run one statement on the calling thread's connection."""

    @abc.abstractmethod
    def begin_transaction(self) -> None:
        """Start the outermost transaction of the calling thread."""

    @abc.abstractmethod
    def end_transaction(self, commit: bool) -> None:
        """Commit or roll back the outermost transaction and release its connection."""

    @abc.abstractmethod
    def schema_session(self) -> AbstractContextManager[None]:
        """Hold the engine's schema lock (and a connection) while the schema changes."""

    def translate(self, exc: BaseException) -> ClonestoreError:
        """The clonestore error for a driver exception (the dialect's translation, with
        the backend's secrets redacted); an ``AlreadyExists`` names the violated columns
        when the engine named the constraint (else the write names them: see
        :meth:`_naming_duplicates`)."""
        error = self.dialect.translate(exc, self.label, self._secrets)
        if isinstance(error, AlreadyExists) and not error.columns:
            columns = self._constraint_columns(self.dialect.duplicate_key(error))
            error = AlreadyExists(error.message, columns=columns, orig=error.orig)
        return error

    def _constraint_columns(self, name: str | None) -> tuple[str, ...]:
        """The columns of the unique constraint (or primary key) the engine calls ``name``,
        among the tables this backend knows."""
        if name is not None:
            dialect = self.dialect
            for info in list(self._tables.values()):
                spec = info.spec
                if name == dialect.primary_key_name(spec.name):
                    return PRIMARY_KEY
                for unique in spec.unique:
                    if name == dialect.index_name(unique.name(spec.name)):
                        return unique.columns
        return ()

    @contextmanager
    def _naming_duplicates(
        self, table: TableSpec, written: Callable[[], Sequence[Written]]
    ) -> Iterator[None]:
        """Around one write of ``table``: an ``AlreadyExists`` whose engine named no
        constraint gets the columns of the one the rows of ``written()`` clash on, found
        after the failed statement (see :mod:`._duplicates`)."""
        try:
            yield
        except AlreadyExists as exc:
            if exc.columns or self.dialect.duplicate_key(exc) is not None:
                raise
            columns = violated(self, table, written)
            if not columns:
                raise
            raise AlreadyExists(
                f"{table.name}: value already used by another row ({', '.join(columns)})",
                columns=columns,
                orig=exc.orig,
            ) from exc.__cause__

    def _updated(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Written]:
        """The rows an update of ``table`` would store (read before it, or after it failed)."""
        return [(apply_changes(row, changes), row["id"]) for row in self.select(table, where)]

    # ------------------------------------------------------------------ schema

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        """Apply pending migrations, then create the spec tables they do not cover
        (tables of plugins without migrations), with their indexes. Idempotent."""
        try:
            with self.schema_session():
                apply_pending(self.database, self.label, backend=self)
                existing = set(self.database.get_tables())
                self.create_spec_tables([spec for spec in specs if spec.name not in existing])
                self.apply_table_options(specs)
                self.text_index.refresh()
        except Exception as exc:
            raise self.translate(exc) from exc

    def create_spec_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create the tables of ``specs`` (if missing) with their indexes: what a
        plugin's migration script calls with its frozen specs."""
        for spec in specs:
            build_model(self.database, spec).create_table(safe=True)

    @abc.abstractmethod
    def apply_table_options(self, specs: Sequence[TableSpec]) -> None:
        """Make the existing tables of ``specs`` match their options (``ephemeral``,
        ``append_only``: see :mod:`.table_options`). Idempotent; called by
        ``create_tables`` under the schema lock, and callable by a migration that
        creates a table."""

    def purge(self, table: TableSpec, up_to: int) -> int:
        """Remove the rows of an append-only table up to ``up_to`` (capability
        ``append_only``, :class:`clonestore.spi.AppendOnlyTables`); how many."""
        spec = self.table_info(table).spec
        if spec.append_only is None or spec.append_only.purge_by is None:
            raise ConfigurationError(f"{spec.name} has no append_only.purge_by column to purge by")
        if type(up_to) is not int:
            raise ValidationError("must be an integer", field="up_to")
        with self.transaction():
            return self.purge_up_to(spec, spec.append_only.purge_by, up_to)

    @abc.abstractmethod
    def purge_up_to(self, spec: TableSpec, column: str, up_to: int) -> int:
        """Delete the rows with ``column <= up_to`` past the table's guard, in the
        calling thread's transaction."""

    def drop_spec_tables(self, specs: Sequence[TableSpec]) -> None:
        """Drop the tables of ``specs`` (if present), rows and all: a ``down``."""
        for spec in specs:
            build_model(self.database, spec).drop_table(safe=True)
            self._tables.pop(spec.name, None)

    def missing_tables(self, specs: Sequence[TableSpec]) -> list[str]:
        """The names of ``specs``' tables that do not exist in the database."""
        try:
            with self.schema_session():
                existing = set(self.database.get_tables())
        except Exception as exc:
            raise self.translate(exc) from exc
        return [spec.name for spec in specs if spec.name not in existing]

    def _sets(self, plugins: Mapping[str, str] | None) -> list[MigrationSet]:
        return [core_migrations()] + [
            plugin_migrations(name, package) for name, package in (plugins or {}).items()
        ]

    @contextmanager
    def _migrating(self) -> Iterator[None]:
        try:
            with self.schema_session():
                yield
        except LookupError as exc:
            raise ValidationError(str(exc), field="to") from None
        except Exception as exc:
            raise self.translate(exc) from exc

    def migrate(
        self, plugins: Mapping[str, str] | None = None, target: str | None = None
    ) -> list[str]:
        """Apply pending migrations, the core's then each plugin's (``plugins``: plugin
        name -> package of its scripts), up to ``target``; the qualified names applied."""
        with self._migrating():
            try:
                return apply_pending(self.database, self.label, self._sets(plugins), self, target)
            finally:
                self.text_index.refresh()

    def migration_status(self, plugins: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every known migration with ``name``, ``plugin``, ``applied`` and ``applied_at``."""
        with self._migrating():
            return migration_status(self.database, self._sets(plugins), self)

    def migration_plan(
        self, plugins: Mapping[str, str] | None = None, target: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """The SQL of each pending migration, found by applying them in a transaction
        that is rolled back: nothing changes."""
        with self._migrating():
            return plan(self.database, self.label, self._sets(plugins), self, target)

    def downgrade(
        self, plugins: Mapping[str, str] | None = None, to: str | None = None
    ) -> list[str]:
        """Run ``down`` of the migrations applied after ``to`` (a qualified name; None:
        the newest core migration), newest first; the qualified names reverted."""
        with self._migrating():
            try:
                sets = self._sets(plugins)
                if to is None:
                    return revert(self.database, self.label, sets[0], self)
                for migrations in sets:
                    own = migrations.own(to)
                    if own is not None:
                        return revert(self.database, self.label, migrations, self, keep=own)
                raise LookupError(f"no migration {to!r}")
            finally:
                self.text_index.refresh()

    # ------------------------------------------------------------------ tables

    def table_info(self, spec: TableSpec) -> TableInfo:
        """What the backend knows of a table (built from the spec on first use)."""
        info = self._tables.get(spec.name)
        if info is None:
            with self._tables_lock:
                info = self._tables.get(spec.name)
                if info is None:
                    info = self._build_table(spec)
                    self._tables[spec.name] = info
        return info

    def _build_table(self, spec: TableSpec) -> TableInfo:
        return self.compiler.table(spec)

    # ------------------------------------------------------------------ reads

    def get(self, table: TableSpec, id: str) -> Row | None:
        """The row with this id (live or not), or None: one cached point read."""
        info = self._tables.get(table.name) or self.table_info(table)
        row = self.execute(info.get_statement.sql, (id,), ONE)
        return None if row is None else _loaded(info, [row])[0]

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Matching rows in ``order``, after ``offset``, at most ``limit``."""
        info = self._tables.get(table.name) or self.table_info(table)
        return _loaded(info, self._select_rows(info, where, order, limit, offset, None))

    def _select_columns(
        self,
        table: TableSpec,
        columns: Sequence[str],
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Sequence[Any]]:
        """:meth:`select`'s rows a column each: only ``columns`` are read, and only the
        columns whose driver values are not their Python values are converted, a column
        at a time. An engine offers it as ``select_columns`` (capability
        ``select_columns``, declared by having the method: SQLite's does)."""
        info = self._tables.get(table.name) or self.table_info(table)
        names = tuple(columns)
        rows = self._select_rows(info, where, order, limit, offset, names)
        try:
            return info.columns_loader(names)(rows)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise _unreadable(info, exc) from None

    def _select_rows(
        self,
        info: TableInfo,
        where: Expr,
        order: Sequence[OrderBy],
        limit: int | None,
        offset: int,
        columns: tuple[str, ...] | None,
    ) -> Any:
        """The driver rows of ``select`` (of ``columns`` only, when given)."""
        values: list[Any] = []
        # A small LIMIT (point lookups; on SQLite, pages too) is written into the SQL:
        # SQLite runs a unique-index lookup about twice as slow with a bound LIMIT, and a
        # page of 50 users about 7 us (12%) slower.
        literal = limit if limit is not None and limit <= self.literal_limits else None
        bound = limit is not None and literal is None
        statement = self.select_statement(
            info, where, values, order, bound, offset, literal_limit=literal, columns=columns
        )
        if bound:
            values.append(limit)
        if offset:
            values.append(offset)
        return self.execute(statement.sql, statement.params(values), ALL)

    def select_statement(
        self,
        info: TableInfo,
        where: Expr,
        values: list[Any],
        order: Sequence[OrderBy] = (),
        limit: bool = False,
        offset: int = 0,
        literal_limit: int | None = None,
        columns: tuple[str, ...] | None = None,
    ) -> Any:
        """The cached ``SELECT`` of this shape; appends ``where``'s values to ``values``
        (``limit``: a ``LIMIT ?`` taking the next value; ``literal_limit``: that
        ``LIMIT`` written in the SQL, a shape of its own; ``columns``: only those)."""
        shape = walk(where, values, self.compiler.small_in)
        order_key = tuple([(o.column, o.desc) for o in order]) if order else ()
        key = ("select", info, shape, order_key, limit, literal_limit, offset != 0, columns)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key,
                select_statement(
                    compiler,
                    info,
                    where,
                    order,
                    limit,
                    offset != 0,
                    literal_limit=literal_limit,
                    columns=columns,
                ),
            )
        return statement

    def count(self, table: TableSpec, where: Expr) -> int:
        """How many rows match."""
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        key = ("count", info, walk(where, values, self.compiler.small_in))
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(key, count_statement(compiler, info, where))
        row = self.execute(statement.sql, statement.params(values), ONE)
        return int(row[0])

    def aggregate(
        self,
        table: TableSpec,
        where: Expr,
        group_by: Sequence[str],
        aggregates: Mapping[str, Aggregate],
    ) -> list[Row]:
        """One row per group (ordered by the group values), or exactly one without groups."""
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        shape = walk(where, values, self.compiler.small_in)
        wanted = tuple((alias, agg.fn, agg.column) for alias, agg in aggregates.items())
        key = ("aggregate", info, shape, tuple(group_by), wanted)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, aggregate_statement(compiler, info, where, group_by, wanted)
            )
        rows = self.execute(statement.sql, statement.params(values), ALL)
        load = statement.load
        assert load is not None
        return [load(row) for row in rows]

    def project(self, table: TableSpec, where: Expr, names: Sequence[str]) -> list[Row]:
        """The columns ``names`` of the rows matching ``where`` (no order)."""
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        names = tuple(dict.fromkeys(names))
        key = ("columns", info, walk(where, values, self.compiler.small_in), names)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(key, columns_statement(compiler, info, where, names))
        load = statement.load
        assert load is not None
        rows = self.execute(statement.sql, statement.params(values), ALL)
        try:
            return [load(row) for row in rows]
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise BackendError(
                f"{table.name}: a stored value cannot be read ({type(exc).__name__}: {exc})"
            ) from None

    def text_search(
        self,
        table: TableSpec,
        where: Expr,
        fields: Sequence[str],
        query: TextQuery,
        limit: int,
    ) -> list[tuple[Row, float]]:
        """Capability ``text_search``: from the text index (:mod:`.text_index`: the
        postings and statistics in one statement) where it covers the table, the fields
        and ``where``; else :func:`clonestore.spi_reference.search_reference` over the id and the
        searched ``fields`` of the rows matching ``where`` (one statement that reads no
        other column). Then the best ``limit`` rows whole by id (a second statement)."""
        best = self.text_index.search(table, where, fields, query, limit)
        if best is None:
            names = ("id", *[name for name in fields if name != "id"])
            best = [
                (row["id"], score)
                for row, score in search_reference(
                    self.project(table, where, names), fields, query, limit
                )
            ]
            by_ids: Expr = And((where, Cond("id", "in", [id for id, _ in best])))
        else:
            # By id alone (the primary key: an engine may prefer the owner's index when
            # given the owner too); the index's scope (owner, live) is checked below.
            by_ids = Cond("id", "in", [id for id, _ in best])
        if not best:
            return []
        ids = [id for id, _ in best]
        whole = {row["id"]: row for row in self.select(table, by_ids)}
        if len(whole) != len(ids) or not all(self.text_index.in_scope(where, row)
                                             for row in whole.values()):  # fmt: skip
            # a row changed between the two statements: one read
            return search_reference(self.select(table, where), fields, query, limit)
        return [(whole[id], score) for id, score in best]

    # ------------------------------------------------------------------ writes

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert one complete row; a taken id or unique value is AlreadyExists."""
        info = self._tables.get(table.name) or self.table_info(table)
        statement = info.insert_statement
        with self._naming_duplicates(table, lambda: [(row, None)]):
            if self.text_index.covers(table):
                with self.transaction():
                    self.execute(statement.sql, statement.params(row), NONE)
                    self.text_index.add(table, (row,))
                return
            self.execute(statement.sql, statement.params(row), NONE)

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert rows, all or none (one transaction, batched by the driver)."""
        if not rows:
            return
        info = self._tables.get(table.name) or self.table_info(table)
        statement = info.insert_statement
        params = statement.params
        with (
            self._naming_duplicates(table, lambda: [(row, None) for row in rows]),
            self.transaction(),
        ):
            self.execute(statement.sql, [params(row) for row in rows], MANY)
            if self.text_index.covers(table):
                self.text_index.add(table, rows)

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """One ``UPDATE ... RETURNING`` (``Increment`` as ``col = col + ?``); rows by id.
        A change of a searched field, the owner or ``deleted_at`` re-indexes the rows'
        text in the same transaction."""
        with self._naming_duplicates(table, lambda: self._updated(table, where, changes)):
            if self.text_index.covers(table) and _touches_text(table, changes):
                with self.transaction():
                    changed = self._update(table, where, changes)
                    self.text_index.replace(table, changed)
                return changed
            return self._update(table, where, changes)

    def _update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        info = self._tables.get(table.name) or self.table_info(table)
        if not changes:
            return sorted(self.select(table, where), key=_BY_ID)
        if not self.dialect.update_returning:
            changed: list[Row] = self._standalone_retried(
                lambda: self._update_emulated(table, info, where, changes)
            )
            return changed
        values: list[Any] = []
        increments = _change_values(changes, values)
        shape = walk(where, values, self.compiler.small_in)
        key = ("update", info, shape, tuple(changes), increments)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, update_statement(compiler, info, where, changes, increments)
            )
        rows = self.execute(statement.sql, statement.params(values), ALL)
        load = info.load
        out = [load(row) for row in rows]
        out.sort(key=_BY_ID)
        return out

    def update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
    ) -> Row | None:
        """Capability ``update_and_insert``: the reference meaning, in one transaction of
        this backend's update and insert; an engine with one statement for it overrides
        (for tables the text index does not cover: see ``text_indexed``)."""
        backend = cast(Backend, self)
        return update_and_insert_reference(backend, table, where, changes, into, row, copied)

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Remove matching rows for good (their text index entries too); how many."""
        if self.text_index.covers(table):
            with self.transaction():
                ids = [row["id"] for row in self.project(table, where, ("id",))]
                removed = self._delete(table, where)
                self.text_index.remove(table, ids)
            return removed
        return self._delete(table, where)

    def text_indexed(self, *tables: TableSpec) -> bool:
        """Whether the text index covers any of ``tables`` (whose writes must then go
        through ``insert``, ``update``... rather than one engine statement)."""
        return any(self.text_index.covers(table) for table in tables)

    def _delete(self, table: TableSpec, where: Expr) -> int:
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        key = ("delete", info, walk(where, values, self.compiler.small_in))
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(key, delete_statement(compiler, info, where))
        count: int = self.execute(statement.sql, statement.params(values), ROWCOUNT)
        return count

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        returning: Sequence[str] | None = None,
    ) -> Row:
        """One ``INSERT ... ON CONFLICT (key) [WHERE partial] DO UPDATE ... RETURNING``;
        with ``returning`` (capability ``upsert_returning``), only those columns. The
        stored row's text is re-indexed in the same transaction."""
        with self._naming_duplicates(
            table, lambda: self._upserted(table, key, insert_row, changes)
        ):
            if self.text_index.covers(table):
                with self.transaction():
                    stored = self._upsert(table, key, insert_row, changes, None)
                    self.text_index.replace(table, (stored,))
                return stored if returning is None else {n: stored[n] for n in returning}
            return self._upsert(table, key, insert_row, changes, returning)

    def _upserted(
        self, table: TableSpec, key: Sequence[str], insert_row: Row, changes: Mapping[str, Any]
    ) -> list[Written]:
        """The row an upsert would store: the key's row in the constraint's scope,
        changed, or ``insert_row``."""
        info = self._tables.get(table.name) or self.table_info(table)
        unique = info.uniques.get(tuple(key))
        where = None if unique is None else key_where(table, unique, insert_row)
        if where is not None:  # else outside the constraint: always an insert
            found = self.select(table, where, _ID_ORDER, 1)
            if found:
                return self._updated(table, Cond("id", "eq", found[0]["id"]), changes)
        return [(insert_row, None)]

    def _upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        returning: Sequence[str] | None = None,
    ) -> Row:
        info = self._tables.get(table.name) or self.table_info(table)
        unique = info.uniques.get(tuple(key))
        if unique is None:
            raise ConfigurationError(f"{table.name} has no unique constraint on {tuple(key)}")
        if not self.dialect.upsert_on_conflict:
            full = self._upsert_emulated(table, info, unique, insert_row, changes)
            return full if returning is None else {name: full[name] for name in returning}
        values: list[Any] = [insert_row[c.name] for c in info.spec.columns]
        increments = _change_values(changes, values)
        wanted = None if returning is None else tuple(returning)
        cache_key = ("upsert", info, unique.columns, tuple(changes), increments, wanted)
        compiler = self.compiler
        statement = compiler.cache.get(cache_key)
        if statement is None:
            statement = compiler.keep(
                cache_key,
                upsert_statement(compiler, info, unique.columns, changes, increments, wanted),
            )
        row = self.execute(statement.sql, statement.params(values), ONE)
        assert statement.load is not None
        stored: Row = statement.load(row)
        return stored

    # ------------------------------------------------------------------ emulations

    def _select_locked(self, info: TableInfo, where: Expr) -> list[Row]:
        """Matching rows by id, locked (``FOR UPDATE``) until the transaction ends."""
        values: list[Any] = []
        key = ("select_locked", info, walk(where, values, self.compiler.small_in))
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, select_statement(compiler, info, where, _ID_ORDER, False, False, lock=True)
            )
        rows = self.execute(statement.sql, statement.params(values), ALL)
        return _loaded(info, rows)

    @contextmanager
    def _key_serialized(self, name: str) -> Iterator[None]:
        """Held while an emulated upsert looks for its key's row and inserts it when
        missing. Engines whose failed duplicate insert leaves a shared lock (InnoDB)
        serialize here, so racing upserts wait on each other's inserted row instead
        of deadlocking on those locks; by default nothing."""
        yield

    def _standalone_retried(self, call: Callable[[], Any]) -> Any:
        """``call()`` (an emulation's own transaction); outside any caller's transaction
        it is the whole transaction, so a deadlock (``Conflict``) runs it again."""
        if self.in_transaction:
            return call()
        for _ in range(_UPSERT_TRIES - 1):
            try:
                return call()
            except Conflict:
                continue
        return call()

    def _update_emulated(
        self, table: TableSpec, info: TableInfo, where: Expr, changes: Mapping[str, Any]
    ) -> list[Row]:
        with self.transaction():
            ids = [row["id"] for row in self._select_locked(info, where)]
            return self._update_ids(table, info, ids, changes)

    def _update_ids(
        self, table: TableSpec, info: TableInfo, ids: Sequence[str], changes: Mapping[str, Any]
    ) -> list[Row]:
        """``update`` without ``RETURNING``: the rows of ``ids`` (locked by the caller's
        transaction) changed, then read back, by id."""
        if not ids:
            return []
        by_ids = Cond("id", "in", tuple(ids))
        values: list[Any] = []
        increments = _change_values(changes, values)
        shape = walk(by_ids, values, self.compiler.small_in)
        key = ("update", info, shape, tuple(changes), increments)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, update_statement(compiler, info, by_ids, changes, increments)
            )
        self.execute(statement.sql, statement.params(values), NONE)
        return self.select(table, by_ids, _ID_ORDER)

    def _upsert_emulated(
        self,
        table: TableSpec,
        info: TableInfo,
        unique: Unique,
        insert_row: Row,
        changes: Mapping[str, Any],
    ) -> Row:
        """``upsert`` without ``ON CONFLICT``: lock the key's row within the constraint's
        scope, change it or insert; an insert that loses a race on this constraint (and
        only this one) tries again, as does, outside any transaction, a deadlock."""
        spec = info.spec
        primary = unique.columns == PRIMARY_KEY
        where = key_where(spec, unique, insert_row)
        if where is None:
            # Outside the constraint (NULLs never clash): a plain insert, as ON CONFLICT does.
            self.insert(table, insert_row)
            return self.get(table, insert_row["id"]) or insert_row
        keys = [insert_row[name] for name in unique.columns]
        constraint = (
            self.dialect.primary_key_name(spec.name)
            if primary
            else self.dialect.index_name(unique.name(spec.name))
        )
        retry_conflicts = not self.in_transaction
        serial = f"{constraint}:{keys!r}"
        for _ in range(_UPSERT_TRIES):
            try:
                with self.transaction():
                    with self._key_serialized(serial):
                        found = self._select_locked(info, where)
                        if not found:
                            try:
                                with self.transaction():
                                    self.insert(table, insert_row)
                            except AlreadyExists as exc:
                                if exc.columns != unique.columns:
                                    raise
                                continue  # another insert of this key committed first
                    if found:
                        if not changes:
                            return found[0]
                        return self._update_ids(table, info, [found[0]["id"]], changes)[0]
                    stored = self.get(table, insert_row["id"])
                    assert stored is not None
                    return stored
            except Conflict:
                if not retry_conflicts:
                    raise
        raise Conflict(
            f"{table.name}: upserts on {constraint} kept colliding with concurrent ones "
            f"({_UPSERT_TRIES} tries); retry"
        )

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing; nested blocks are savepoints."""
        tx = self._tx
        depth = tx.depth
        if depth == 0:
            self.begin_transaction()
            tx.depth = 1
            try:
                yield
            except BaseException:
                tx.depth = 0
                self.end_transaction(commit=False)
                raise
            tx.depth = 0
            self.end_transaction(commit=True)
            return
        savepoint = f"clonestore_sp{depth}"
        self.execute(f"SAVEPOINT {savepoint}", (), NONE)
        tx.depth = depth + 1
        try:
            yield
        except BaseException:
            tx.depth = depth
            try:
                self.execute(f"ROLLBACK TO SAVEPOINT {savepoint}", (), NONE)
                self.execute(f"RELEASE SAVEPOINT {savepoint}", (), NONE)
            except ClonestoreError:
                pass  # the connection is gone; the outermost block reports and cleans up
            raise
        tx.depth = depth
        self.execute(f"RELEASE SAVEPOINT {savepoint}", (), NONE)

    @property
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction`."""
        return self._tx.depth > 0


def _touches_text(table: TableSpec, changes: Mapping[str, Any]) -> bool:
    """Whether ``changes`` change what the text index holds of a row of ``table``."""
    fields = INDEXED[table.name]
    return any(name in fields or name == OWNER or name == "deleted_at" for name in changes)


def _loaded(info: TableInfo, rows: Sequence[Any]) -> list[Row]:
    """The rows decoded; a stored value that cannot be (text that is not JSON, written
    past clonestore) is a :class:`BackendError`, not the codec's exception."""
    load = info.load
    try:
        return [load(row) for row in rows]
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _unreadable(info, exc) from None


def _unreadable(info: TableInfo, exc: Exception) -> BackendError:
    return BackendError(
        f"{info.spec.name}: a stored value cannot be read ({type(exc).__name__}: {exc})"
    )
