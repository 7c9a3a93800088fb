"""The storage SPI over SQL, shared by the SQLite and PostgreSQL backends.

Every SPI call is one cached statement shape (see :mod:`.compiler`) run with
the driver's cursor. The engine subclasses supply connections
(:meth:`SQLBackend._execute`), transactions' first and last statements, and
error translation.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from typing import Any, Final

import peewee
from peewee import SQL, fn

from clonestore import ClonestoreError, ConfigurationError
from clonestore.spi import (
    AGGREGATES,
    Aggregate,
    Expr,
    Increment,
    OrderBy,
    Row,
    TableSpec,
)

from .codecs import make_loader
from .compiler import TRUE_SQL, Compiler, Slots, Statement, TableInfo, walk
from .dialects import Dialect
from .migration_runner import apply_pending, migration_status
from .models import unique_predicate

__all__ = ["ALL", "MANY", "NONE", "ONE", "ROWCOUNT", "SQLBackend"]

# What _execute returns: the first row, all rows, the row count, nothing;
# MANY runs the statement once per parameter tuple.
ONE: Final = 1
ALL: Final = 2
ROWCOUNT: Final = 3
NONE: Final = 4
MANY: Final = 5

_BY_ID: Final = itemgetter("id")


class _TxState(threading.local):
    def __init__(self) -> None:
        self.depth = 0
        # Whether the outermost transaction checked its connection out itself.
        self.owned = False


class SQLBackend:
    """Implements :class:`clonestore.spi.Backend` over a Peewee database."""

    name: str = "sql"
    capabilities: frozenset[str] = frozenset()
    dialect: Dialect
    #: The URL with any password redacted, used in messages.
    label: str = "sql"

    def __init__(self, database: peewee.Database) -> None:
        # Typed loosely: the engines use Peewee internals (per-thread connection
        # state, pool bookkeeping) that its stubs do not describe.
        self.database: Any = database
        self.compiler = Compiler(database, self.dialect)
        self._tables: dict[str, TableInfo] = {}
        self._tables_lock = threading.Lock()
        self._tx = _TxState()
        self._closed = False

    # ------------------------------------------------------------------ engine hooks

    def _execute(self, sql: str, params: Any, mode: int) -> Any:
        """Run one statement on the calling thread's connection."""
        raise NotImplementedError

    def _begin(self) -> None:
        """Start the outermost transaction of the calling thread."""
        raise NotImplementedError

    def _end(self, commit: bool) -> None:
        """Commit or roll back the outermost transaction and release its connection."""
        raise NotImplementedError

    def schema_session(self) -> AbstractContextManager[None]:
        """Hold the engine's schema lock (and a connection) while the schema changes."""
        raise NotImplementedError

    def translate(self, exc: BaseException) -> ClonestoreError:
        """The clonestore error for a driver exception."""
        raise NotImplementedError

    # ------------------------------------------------------------------ schema

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        """Apply pending migrations, then create the spec tables they do not cover
        (plugin tables), with their indexes. Idempotent."""
        try:
            with self.schema_session():
                apply_pending(self.database, self.label)
                existing = set(self.database.get_tables())
                for spec in specs:
                    info = self.table_info(spec)
                    if spec.name not in existing:
                        info.model.create_table(safe=True)
        except Exception as exc:
            raise self.translate(exc) from exc

    def migrate(self) -> list[str]:
        """Apply pending migrations; the names applied."""
        try:
            with self.schema_session():
                return apply_pending(self.database, self.label)
        except Exception as exc:
            raise self.translate(exc) from exc

    def migration_status(self) -> list[dict[str, Any]]:
        """Every known migration with ``name``, ``applied`` and ``applied_at``."""
        try:
            with self.schema_session():
                return migration_status(self.database)
        except Exception as exc:
            raise self.translate(exc) from exc

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
        return TableInfo(spec, self.compiler)

    # ------------------------------------------------------------------ reads

    def get(self, table: TableSpec, id: str) -> Row | None:
        info = self._tables.get(table.name) or self.table_info(table)
        row = self._execute(info.get_statement.sql, (id,), ONE)
        return None if row is None else info.load(row)

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        shape = walk(where, values)
        order_key = tuple((o.column, o.desc) for o in order)
        key = ("select", info.name, shape, order_key, limit is not None, offset != 0)
        statement = self.compiler.cache.get(key)
        if statement is None:
            statement = self._compile_select(key, info, where, order, limit, offset)
        if limit is not None:
            values.append(limit)
        if offset:
            values.append(offset)
        rows = self._execute(statement.sql, statement.params(values), ALL)
        load = info.load
        return [load(row) for row in rows]

    def _compile_select(
        self,
        key: Hashable,
        info: TableInfo,
        where: Expr,
        order: Sequence[OrderBy],
        limit: int | None,
        offset: int,
    ) -> Statement:
        compiler = self.compiler
        slots = Slots()
        query = info.model.select(*info.columns)
        query = self._where(query, info, where, slots)
        if order:
            query = query.order_by(*compiler.ordering(info, order))
        if limit is not None:
            query = query.limit(slots.new())
        if offset:
            query = query.offset(slots.new())
        statement = compiler.render(query, info.load)
        compiler.cache[key] = statement
        return statement

    def _where(self, query: Any, info: TableInfo, where: Expr, slots: Slots) -> Any:
        node = self.compiler.condition(info, where, slots)
        if node is TRUE_SQL:
            return query
        return query.where(node)

    def count(self, table: TableSpec, where: Expr) -> int:
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        key = ("count", info.name, walk(where, values))
        statement = self.compiler.cache.get(key)
        if statement is None:
            slots = Slots()
            query = self._where(info.model.select(fn.COUNT(SQL("*"))), info, where, slots)
            statement = self.compiler.cache[key] = self.compiler.render(query, None)
        row = self._execute(statement.sql, statement.params(values), ONE)
        return int(row[0])

    def aggregate(
        self,
        table: TableSpec,
        where: Expr,
        group_by: Sequence[str],
        aggregates: Mapping[str, Aggregate],
    ) -> list[Row]:
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        shape = walk(where, values)
        wanted = tuple((alias, agg.fn, agg.column) for alias, agg in aggregates.items())
        key = ("aggregate", info.name, shape, tuple(group_by), wanted)
        statement = self.compiler.cache.get(key)
        if statement is None:
            statement = self._compile_aggregate(key, info, where, group_by, wanted)
        rows = self._execute(statement.sql, statement.params(values), ALL)
        assert statement.load is not None
        return [statement.load(row) for row in rows]

    def _compile_aggregate(
        self,
        key: Hashable,
        info: TableInfo,
        where: Expr,
        group_by: Sequence[str],
        wanted: Sequence[tuple[str, str, str | None]],
    ) -> Statement:
        codecs, dialect = self.dialect.codecs, self.dialect
        group_fields = [info.fields[name] for name in group_by]
        names: list[str] = list(group_by)
        converters = [codecs.result(info.kinds[name]) for name in group_by]
        nullable = [info.spec.by_name[name].nullable for name in group_by]
        selected: list[Any] = list(group_fields)
        for alias, fn_name, column in wanted:
            if fn_name not in AGGREGATES:
                raise ConfigurationError(f"unknown aggregate {fn_name!r}")
            if column is None:
                if fn_name != "count":
                    raise ConfigurationError(f"aggregate {fn_name!r} needs a column")
                node, convert = fn.COUNT(SQL("*")), None
            else:
                field, kind = info.fields[column], info.kinds[column]
                if fn_name == "count":
                    node, convert = fn.COUNT(field), None
                elif fn_name == "sum":
                    node, convert = fn.SUM(field), codecs.sum_from_db.get(kind)
                else:
                    node, convert = dialect.min_max(fn_name, field, kind), codecs.result(kind)
            selected.append(node.alias(alias))
            names.append(alias)
            converters.append(convert)
            nullable.append(fn_name != "count")
        slots = Slots()
        query = self._where(info.model.select(*selected), info, where, slots)
        if group_fields:
            query = query.group_by(*group_fields).order_by(
                *self.compiler.ordering(info, [OrderBy(name) for name in group_by])
            )
        statement = self.compiler.render(query, make_loader(names, converters, nullable))
        self.compiler.cache[key] = statement
        return statement

    # ------------------------------------------------------------------ writes

    def insert(self, table: TableSpec, row: Row) -> None:
        info = self._tables.get(table.name) or self.table_info(table)
        statement = info.insert_statement
        self._execute(statement.sql, statement.params(row), NONE)

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        if not rows:
            return
        info = self._tables.get(table.name) or self.table_info(table)
        statement = info.insert_statement
        params = statement.params
        with self.transaction():
            self._execute(statement.sql, [params(row) for row in rows], MANY)

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        info = self._tables.get(table.name) or self.table_info(table)
        if not changes:
            return sorted(self.select(table, where), key=_BY_ID)
        values: list[Any] = []
        increments: list[bool] = []
        for change in changes.values():
            if type(change) is Increment:
                values.append(change.amount)
                increments.append(True)
            else:
                values.append(change)
                increments.append(False)
        shape = walk(where, values)
        key = ("update", info.name, shape, tuple(changes), tuple(increments))
        statement = self.compiler.cache.get(key)
        if statement is None:
            slots = Slots()
            assignments = self.compiler.assignments(info, changes, slots, increments)
            query = info.model.update(assignments)
            query = self._where(query, info, where, slots).returning(*info.columns)
            statement = self.compiler.cache[key] = self.compiler.render(query, info.load)
        rows = self._execute(statement.sql, statement.params(values), ALL)
        load = info.load
        out = [load(row) for row in rows]
        out.sort(key=_BY_ID)
        return out

    def delete(self, table: TableSpec, where: Expr) -> int:
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        key = ("delete", info.name, walk(where, values))
        statement = self.compiler.cache.get(key)
        if statement is None:
            query = self._where(info.model.delete(), info, where, Slots())
            statement = self.compiler.cache[key] = self.compiler.render(query, None)
        count: int = self._execute(statement.sql, statement.params(values), ROWCOUNT)
        return count

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
    ) -> Row:
        info = self._tables.get(table.name) or self.table_info(table)
        unique = info.uniques.get(tuple(key))
        if unique is None:
            raise ConfigurationError(f"{table.name} has no unique constraint on {tuple(key)}")
        values: list[Any] = [insert_row[c.name] for c in info.spec.columns]
        increments: list[bool] = []
        for change in changes.values():
            if type(change) is Increment:
                values.append(change.amount)
                increments.append(True)
            else:
                values.append(change)
                increments.append(False)
        cache_key = ("upsert", info.name, unique.columns, tuple(changes), tuple(increments))
        statement = self.compiler.cache.get(cache_key)
        if statement is None:
            statement = self._compile_upsert(cache_key, info, unique.columns, changes, increments)
        row = self._execute(statement.sql, statement.params(values), ONE)
        stored: Row = info.load(row)
        return stored

    def _compile_upsert(
        self,
        key: Hashable,
        info: TableInfo,
        columns: Sequence[str],
        changes: Mapping[str, Any],
        increments: Sequence[bool],
    ) -> Statement:
        compiler, codecs = self.compiler, self.dialect.codecs
        slots = Slots()
        row = {
            field: slots.new(codecs.param(c.kind), c.nullable)
            for field, c in zip(info.columns, info.spec.columns, strict=True)
        }
        update = compiler.assignments(info, changes, slots, increments)
        if not update:  # DO NOTHING would return no row; a no-op SET returns it
            update = {info.fields["id"]: info.fields["id"]}
        unique = info.uniques[tuple(columns)]
        query = (
            info.model.insert(row)
            .on_conflict(
                conflict_target=[info.fields[c] for c in columns],
                conflict_where=unique_predicate(info.model, info.spec, unique),
                update=update,
            )
            .returning(*info.columns)
        )
        statement = compiler.cache[key] = compiler.render(query, info.load)
        return statement

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing; nested blocks are savepoints."""
        tx = self._tx
        depth = tx.depth
        if depth == 0:
            self._begin()
            tx.depth = 1
            try:
                yield
            except BaseException:
                tx.depth = 0
                self._end(commit=False)
                raise
            tx.depth = 0
            self._end(commit=True)
            return
        savepoint = f"clonestore_sp{depth}"
        self._execute(f"SAVEPOINT {savepoint}", (), NONE)
        tx.depth = depth + 1
        try:
            yield
        except BaseException:
            tx.depth = depth
            try:
                self._execute(f"ROLLBACK TO SAVEPOINT {savepoint}", (), NONE)
                self._execute(f"RELEASE SAVEPOINT {savepoint}", (), NONE)
            except ClonestoreError:
                pass  # the connection is gone; the outermost block reports and cleans up
            raise
        tx.depth = depth
        self._execute(f"RELEASE SAVEPOINT {savepoint}", (), NONE)

    @property
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction`."""
        return self._tx.depth > 0
