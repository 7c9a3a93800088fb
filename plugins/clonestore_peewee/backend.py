"""The storage SPI over SQL, shared by the SQLite and PostgreSQL backends.

Every SPI call is one cached statement shape (see :mod:`.compiler`) run with
the driver's cursor. The engine subclasses supply connections
(:meth:`SQLBackend._execute`), transactions' first and last statements, and
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
    ClonestoreError,
    ConfigurationError,
    Conflict,
    ValidationError,
)
from clonestore.spi import (
    Aggregate,
    And,
    Backend,
    Cond,
    Expr,
    Increment,
    OrderBy,
    Row,
    TableSpec,
    Unique,
    update_and_insert_reference,
)

from . import query_log
from .compiler import Compiler, TableInfo, walk
from .dialects import DIALECT_API_VERSION, Dialect
from .migration_runner import (
    MigrationSet,
    apply_pending,
    core_migrations,
    migration_status,
    plan,
    plugin_migrations,
    revert,
)
from .statements import (
    aggregate_statement,
    count_statement,
    delete_statement,
    select_statement,
    update_statement,
    upsert_statement,
)

__all__ = ["ALL", "MANY", "NONE", "ONE", "ROWCOUNT", "SQLBackend", "fetch"]

# What _execute returns: the first row, all rows, the row count, nothing;
# MANY runs the statement once per parameter tuple.
ONE: Final = 1
ALL: Final = 2
ROWCOUNT: Final = 3
NONE: Final = 4
MANY: Final = 5

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


class SQLBackend(abc.ABC):
    """Implements :class:`clonestore.spi.Backend` over a Peewee database."""

    name: str = "sql"
    capabilities: frozenset[str] = frozenset()
    #: The storage SPI this backend is written against (clonestore.spi_versions).
    spi_version = 2
    dialect: Dialect
    #: The URL with any password redacted, used in messages.
    label: str = "sql"
    #: What error messages must never show (passwords).
    _secrets: tuple[str | None, ...] = ()

    def __init__(self, database: peewee.Database) -> None:
        # Typed loosely: the engines use Peewee internals (per-thread connection
        # state, pool bookkeeping) that its stubs do not describe.
        self.database: Any = database
        if self.dialect.api_version > DIALECT_API_VERSION:
            raise ConfigurationError(
                f"the {self.dialect.name} dialect is written for dialect API "
                f"{self.dialect.api_version}, newer than this clonestore's "
                f"{DIALECT_API_VERSION}; upgrade clonestore"
            )
        self.compiler = Compiler(database, self.dialect)
        self._tables: dict[str, TableInfo] = {}
        self._tables_lock = threading.Lock()
        self._tx = _TxState()
        self._closed = False

    def use_query_log(self, log_queries: bool, slow_query_ms: float | None) -> None:
        """Log statements to ``clonestore.sql`` (see :mod:`.query_log`); a no-op, costing
        nothing per statement, when neither is asked for nor that logger at DEBUG."""
        logged = query_log.logged_execute(
            self._execute, self.label, log_queries=log_queries, slow_query_ms=slow_query_ms
        )
        if logged is not None:
            self.__dict__["_execute"] = logged  # this instance's statements go through it

    # ------------------------------------------------------------------ engine hooks

    @abc.abstractmethod
    def _execute(self, sql: str, params: Any, mode: int) -> Any:
        """Run one statement on the calling thread's connection."""

    @abc.abstractmethod
    def _begin(self) -> None:
        """Start the outermost transaction of the calling thread."""

    @abc.abstractmethod
    def _end(self, commit: bool) -> None:
        """Commit or roll back the outermost transaction and release its connection."""

    @abc.abstractmethod
    def schema_session(self) -> AbstractContextManager[None]:
        """Hold the engine's schema lock (and a connection) while the schema changes."""

    def translate(self, exc: BaseException) -> ClonestoreError:
        """The clonestore error for a driver exception (the dialect's translation, with
        the backend's secrets redacted)."""
        return self.dialect.translate(exc, self.label, self._secrets)

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
        except Exception as exc:
            raise self.translate(exc) from exc

    def create_spec_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create the tables of ``specs`` (if missing) with their indexes: what a
        plugin's migration script calls with its frozen specs."""
        for spec in specs:
            self._build_table(spec).model.create_table(safe=True)

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
            return self._purge(spec, spec.append_only.purge_by, up_to)

    @abc.abstractmethod
    def _purge(self, spec: TableSpec, column: str, up_to: int) -> int:
        """Delete the rows with ``column <= up_to`` past the table's guard, in the
        calling thread's transaction."""

    def drop_spec_tables(self, specs: Sequence[TableSpec]) -> None:
        """Drop the tables of ``specs`` (if present), rows and all: a ``down``."""
        for spec in specs:
            self._build_table(spec).model.drop_table(safe=True)
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
            return apply_pending(self.database, self.label, self._sets(plugins), self, target)

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
            sets = self._sets(plugins)
            if to is None:
                return revert(self.database, self.label, sets[0], self)
            for migrations in sets:
                own = migrations.own(to)
                if own is not None:
                    return revert(self.database, self.label, migrations, self, keep=own)
            raise LookupError(f"no migration {to!r}")

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
        """The row with this id (live or not), or None: one cached point read."""
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
        """Matching rows in ``order``, after ``offset``, at most ``limit``."""
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        # LIMIT 1 (point lookups: find_by_email, find_one, exists) is written into the
        # SQL: SQLite runs a unique-index lookup about twice as slow with a bound LIMIT.
        one = limit == 1
        statement = self.select_statement(
            info, where, values, order, limit is not None and not one, offset, literal_limit=one
        )
        if limit is not None and not one:
            values.append(limit)
        if offset:
            values.append(offset)
        rows = self._execute(statement.sql, statement.params(values), ALL)
        load = info.load
        return [load(row) for row in rows]

    def select_statement(
        self,
        info: TableInfo,
        where: Expr,
        values: list[Any],
        order: Sequence[OrderBy] = (),
        limit: bool = False,
        offset: int = 0,
        literal_limit: bool = False,
    ) -> Any:
        """The cached ``SELECT`` of this shape; appends ``where``'s values to ``values``
        (``limit``: a ``LIMIT ?`` taking the next value; ``literal_limit``: ``LIMIT 1``)."""
        shape = walk(where, values, self.compiler.small_in)
        order_key = tuple([(o.column, o.desc) for o in order]) if order else ()
        key = ("select", info.name, shape, order_key, limit, literal_limit, offset != 0)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key,
                select_statement(
                    compiler, info, where, order, limit, offset != 0, literal_limit=literal_limit
                ),
            )
        return statement

    def count(self, table: TableSpec, where: Expr) -> int:
        """How many rows match."""
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        key = ("count", info.name, walk(where, values, self.compiler.small_in))
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(key, count_statement(compiler, info, where))
        row = self._execute(statement.sql, statement.params(values), ONE)
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
        key = ("aggregate", info.name, shape, tuple(group_by), wanted)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, aggregate_statement(compiler, info, where, group_by, wanted)
            )
        rows = self._execute(statement.sql, statement.params(values), ALL)
        load = statement.load
        assert load is not None
        return [load(row) for row in rows]

    # ------------------------------------------------------------------ writes

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert one complete row; a taken id or unique value is AlreadyExists."""
        info = self._tables.get(table.name) or self.table_info(table)
        statement = info.insert_statement
        self._execute(statement.sql, statement.params(row), NONE)

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert rows, all or none (one transaction, batched by the driver)."""
        if not rows:
            return
        info = self._tables.get(table.name) or self.table_info(table)
        statement = info.insert_statement
        params = statement.params
        with self.transaction():
            self._execute(statement.sql, [params(row) for row in rows], MANY)

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """One ``UPDATE ... RETURNING`` (``Increment`` as ``col = col + ?``); rows by id."""
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
        key = ("update", info.name, shape, tuple(changes), increments)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, update_statement(compiler, info, where, changes, increments)
            )
        rows = self._execute(statement.sql, statement.params(values), ALL)
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
        this backend's update and insert; an engine with one statement for it overrides."""
        backend = cast(Backend, self)
        return update_and_insert_reference(backend, table, where, changes, into, row, copied)

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Remove matching rows for good; how many were removed."""
        info = self._tables.get(table.name) or self.table_info(table)
        values: list[Any] = []
        key = ("delete", info.name, walk(where, values, self.compiler.small_in))
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(key, delete_statement(compiler, info, where))
        count: int = self._execute(statement.sql, statement.params(values), ROWCOUNT)
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
        with ``returning`` (capability ``upsert_returning``), only those columns."""
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
        cache_key = ("upsert", info.name, unique.columns, tuple(changes), increments, wanted)
        compiler = self.compiler
        statement = compiler.cache.get(cache_key)
        if statement is None:
            statement = compiler.keep(
                cache_key,
                upsert_statement(compiler, info, unique.columns, changes, increments, wanted),
            )
        row = self._execute(statement.sql, statement.params(values), ONE)
        assert statement.load is not None
        stored: Row = statement.load(row)
        return stored

    # ------------------------------------------------------------------ emulations

    def _select_locked(self, info: TableInfo, where: Expr) -> list[Row]:
        """Matching rows by id, locked (``FOR UPDATE``) until the transaction ends."""
        values: list[Any] = []
        key = ("select_locked", info.name, walk(where, values, self.compiler.small_in))
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, select_statement(compiler, info, where, _ID_ORDER, False, False, lock=True)
            )
        rows = self._execute(statement.sql, statement.params(values), ALL)
        load = info.load
        return [load(row) for row in rows]

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
        key = ("update", info.name, shape, tuple(changes), increments)
        compiler = self.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, update_statement(compiler, info, by_ids, changes, increments)
            )
        self._execute(statement.sql, statement.params(values), NONE)
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
        scope = [Cond(name, "isnull", True) if value is None else Cond(name, "eq", value)
                 for name, value in unique.when]  # fmt: skip
        if spec.soft_delete:
            scope.append(Cond("deleted_at", "isnull", True))
        in_scope = all(
            insert_row[c.column] is None if c.op == "isnull" else insert_row[c.column] == c.value
            for c in scope
        )
        keys = [insert_row[name] for name in unique.columns]
        if not in_scope or any(value is None for value in keys):
            # Outside the constraint (NULLs never clash): a plain insert, as ON CONFLICT does.
            self.insert(table, insert_row)
            return self.get(table, insert_row["id"]) or insert_row
        where = And(tuple(Cond(n, "eq", v) for n, v in zip(unique.columns, keys, strict=True))
                    + tuple(scope))  # fmt: skip
        constraint = self.dialect.index_name(unique.name(spec.name))
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
                                if self.dialect.duplicate_key(exc) != constraint:
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
