"""The storage SPI: the one small protocol a backend implements.

A backend stores *rows* (plain dicts mapping column name to Python value, see
:mod:`clonestore.schema` for the value of each kind) in tables described by
:class:`TableSpec`. It never sees records, repositories or plugins. All input
is validated by the core before it reaches the backend; the backend maps
values to its storage types and back, so that a row read is equal to the row
written.

What every method means, on every backend:

* ``where`` is an expression from :mod:`clonestore.query`; its meaning is
  :func:`clonestore.spi_reference.matches`. Its leaves are
  :class:`~clonestore.query.Cond` (a column) and :class:`~clonestore.query.JsonCond`
  (a key path into a JSON column, see :func:`clonestore.spi_reference.json_holds`); a
  backend that evaluates with ``matches`` handles both.
* ``order`` sorts as :func:`clonestore.spi_reference.sort_rows` (text by code point,
  NULLs last ascending and first descending).
* Unique constraints (:class:`Unique`) hold among rows matching their
  ``when`` and, on tables with a ``deleted_at`` column, among live rows only
  (``deleted_at IS NULL``). A violation raises :class:`AlreadyExists`.
* Foreign keys (:class:`ForeignKey`, ``TableSpec.foreign_keys``) hold after every
  statement: an insert, update or upsert leaving a row whose key columns are all set
  pointing at no row of the referenced table, or a delete removing a row that rows
  still point at under ``on_delete="restrict"``, raises
  :class:`~clonestore.ForeignKeyViolation` (``spi_reference.missing_reference``,
  ``still_referenced``) and changes nothing; under ``"set_null"`` the delete sets
  the referencing columns to NULL. Soft-deleted rows are rows: they may be pointed at.
* ``transaction()`` is all-or-nothing; nested, it is a savepoint.
* Failures raise clonestore errors only: ``StorageUnavailable`` when the
  storage cannot be reached, ``BackendError`` (with ``orig``) otherwise.

A backend offers optional capabilities (:data:`CAPABILITIES`), each declared once. A
capability that adds methods has a protocol (:data:`CAPABILITY_PROTOCOLS`:
``vector_search``, ``vector_dimensions``, ``listen_notify``, ``update_and_insert``,
``update_and_insert_many``, ``select_columns``, ``migrations``, ``scrub``,
``text_search``, ``row_transfer``, ``backup``, ``row_security``, ``time_partitions``,
and ``append_only``'s ``purge``):
implementing it is the declaration. A backend instance whose class implements one
its configuration lacks (PostgreSQL's ``row_security`` off the plain layout) withholds
it with :func:`withhold`. The others add no method and are declared by name in
``capabilities`` (:data:`DECLARED_CAPABILITIES`): ``bulk_copy``, ``ephemeral`` (a table
option, see :class:`TableSpec`), ``upsert_returning`` (``upsert`` takes ``returning``:
a signature, which no structural check tells, typed by :class:`UpsertReturning`) and
``owner_routed``: a statement on a user-owned row by id should name its owner too
(``user_id = ?``), as a sharded engine routes by it; the core then adds it to its
writes by id, from the row it read or from one read of the owner. A capability with a
protocol named in ``capabilities`` fails ``open()``. :func:`capabilities_of` gives the
whole set, which the core, the plugins, the kit and the CLI read. The store checks once,
when it opens, that the backend offers every capability its plugins need
(``clonestore_required_capabilities``) and every guarantee its tables ask for
(``append_only``); otherwise ``open()`` fails with a
:class:`~clonestore.ConfigurationError` naming the plugin, the capability and the
backend.

This module is the contract only, one page: the protocols, rows, tables and table
options, capabilities and the version. What each operation means, as Python over rows
(memory:// is built from it), is :mod:`clonestore.spi_reference`; what plugins call from
their hooks is :mod:`clonestore.plugin_helpers`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, runtime_checkable

import attrs

from clonestore.errors import ConfigurationError
from clonestore.schema import (
    KINDS,
    AppendOnly,
    Column,
    ForeignKey,
    Index,
    TableSpec,
    Unique,
)

if TYPE_CHECKING:
    from clonestore.query import Expr, OrderBy
    from clonestore.text import TextQuery

__all__ = [
    "AGGREGATES",
    "API_VERSION",
    "CAPABILITIES",
    "CAPABILITY_PROTOCOLS",
    "DECLARED_CAPABILITIES",
    "KINDS",
    "PRIMARY_KEY",
    "TABLE_OPTIONS",
    "Aggregate",
    "AppendOnly",
    "AppendOnlyTables",
    "Backend",
    "BackendFactory",
    "Backup",
    "Column",
    "ForeignKey",
    "Increment",
    "Index",
    "ListenNotify",
    "Migrations",
    "Migrator",
    "Row",
    "RowSecurity",
    "RowTransfer",
    "Scrub",
    "SelectColumns",
    "TableSpec",
    "TextSearch",
    "TimePartitions",
    "Unique",
    "UpdateAndInsert",
    "UpdateAndInsertMany",
    "UpsertReturning",
    "VectorDimensions",
    "VectorSearch",
    "capabilities_of",
    "check_api_version",
    "withhold",
]

Row: TypeAlias = dict[str, Any]

#: The version of the backend API (this module) and of the SQL plugin's dialect API
#: (``clonestore_peewee.dialects``): one number for both until 1.0, with one changelog
#: (docs/backend-guide.md, "Changelog of the backend and dialect APIs"). A backend's
#: ``api_version`` (or a dialect's) names the version it was written against; a store
#: refuses one newer than this. Until 1.0 nothing older is warned of (read the changelog),
#: except names that only moved, which resolve here with a warning until API 3.
API_VERSION: Final = 2


def check_api_version(owner: str, version: object) -> None:
    """Refuse ``owner`` (``"the sqlite backend"``) written for API ``version`` when that is
    not an int from 1 to :data:`API_VERSION`.

    :raises ConfigurationError: naming the version, and to upgrade clonestore if newer.
    """
    if type(version) is not int or version < 1:
        raise ConfigurationError(
            f"{owner} declares api_version={version!r}; expected an int from 1 to {API_VERSION}"
        )
    if version > API_VERSION:
        raise ConfigurationError(
            f"{owner} is written for clonestore's backend API {version}, but this clonestore "
            f"provides API {API_VERSION}: upgrade clonestore"
        )


#: The ``key`` of :meth:`Backend.upsert` naming the primary key: the row with the id.
PRIMARY_KEY: Final = ("id",)

#: Aggregate functions: ``count`` (column may be None: count rows), ``sum``
#: (int and decimal columns; None over no rows), ``min``, ``max``.
AGGREGATES: Final = frozenset({"count", "sum", "min", "max"})

#: Table options (:class:`TableSpec` fields) a backend implements when it
#: declares the capability of the same name.
TABLE_OPTIONS: Final = frozenset({"ephemeral", "append_only"})

#: Optional capabilities a backend may declare.
CAPABILITIES: Final = (
    frozenset(
        {"vector_search", "vector_dimensions", "bulk_copy", "listen_notify",
         "update_and_insert", "update_and_insert_many", "upsert_returning", "select_columns",
         "scrub",
         "migrations", "text_search", "row_transfer", "backup", "owner_routed", "row_security",
         "time_partitions"}
    )
    | TABLE_OPTIONS
)


@attrs.frozen
class Increment:
    """An atomic change: add ``amount`` to the column's current value (int or decimal)."""

    amount: int | Decimal


@attrs.frozen
class Aggregate:
    """``fn(column)`` over the matching rows."""

    fn: str
    column: str | None = None


@runtime_checkable
class Backend(Protocol):
    """What a storage backend implements. Rows in, rows out."""

    #: Short engine name reported by ``health()`` (``"memory"``, ``"sqlite"``...).
    name: str
    #: The optional capabilities this backend provides that have no protocol (a subset
    #: of :data:`DECLARED_CAPABILITIES`); one with a protocol is declared by implementing
    #: it (see :func:`capabilities_of`).
    capabilities: frozenset[str]

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create missing tables, constraints and indexes (idempotent)."""

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert one complete row."""

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert complete rows, all or none."""

    def get(self, table: TableSpec, id: str) -> Row | None:
        """The row with this id (live or not), or None."""

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Matching rows in ``order`` (ending with ``id``), after ``offset``, at most ``limit``."""

    def count(self, table: TableSpec, where: Expr) -> int:
        """How many rows match."""

    def aggregate(
        self,
        table: TableSpec,
        where: Expr,
        group_by: Sequence[str],
        aggregates: Mapping[str, Aggregate],
    ) -> list[Row]:
        """One row per group: the ``group_by`` columns plus one value per alias.

        Without ``group_by``, exactly one row. Groups come ordered by their
        ``group_by`` values. ``sum``/``min``/``max`` over no rows are None.
        """

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """Apply ``changes`` (values or :class:`Increment`) to matching rows atomically.

        Returns the changed rows as they are after the change, in ``id`` order.
        """

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Remove matching rows for good; how many were removed."""

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
    ) -> Row:
        """Insert ``insert_row``, or if a row with the same ``key`` values exists, apply
        ``changes`` to it; atomically, in one step. Returns the row as stored.

        ``key`` must be the columns of one of the table's unique constraints, or
        :data:`PRIMARY_KEY` (``("id",)``): the row with ``insert_row``'s id, whatever
        its other values (a soft-deleted row included: the primary key holds among
        all rows). A clash with another unique constraint is ``AlreadyExists`` and
        changes nothing.
        """

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing block; nested blocks are savepoints."""

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, "backend": name, ...}``, never raising for a down server."""

    def close(self) -> None:
        """Release connections. Idempotent."""


@runtime_checkable
class VectorSearch(Protocol):
    """Optional capability ``vector_search``: nearest-k by a vector column, in the engine.

    The meaning is :func:`clonestore.vectors.nearest_reference` over the rows
    matching ``where``: exact scores (double precision, from the stored
    values), best first, ties by id. Engines that rank in single precision reach
    it with :func:`clonestore.vectors.settle`. Backends without the capability
    get the same answer from the core, which scores the matching rows itself.
    """

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
        """The best ``limit`` rows matching ``where`` by ``metric`` against ``query``.

        ``query`` is valid (finite floats; not zero for cosine), ``metric`` one
        of :data:`METRICS`, ``limit`` at least 1. ``cutoff`` drops results
        worse than it. With ``approximate`` the backend may use an approximate
        index (HNSW): the rows may then differ from the exact answer, but their
        scores are still exact and in order.
        """


@runtime_checkable
class TextSearch(Protocol):
    """Optional capability ``text_search``: text search in the engine.

    The meaning is :func:`clonestore.text.search_reference` over the rows matching
    ``where``: the tokens are :func:`clonestore.text.tokenize`'s (the engine indexes
    or matches the core's tokens, never its own tokenizer's), every query term and
    phrase must match, and the score is :func:`clonestore.text.bm25` of the integer
    statistics of the rows matching ``where`` (so compute it with that function: the
    scores are then bit-identical to the reference's). Highest first, ties by id.
    Backends without the capability get the same answer from the core, which
    tokenizes the matching rows itself.
    """

    def text_search(
        self,
        table: TableSpec,
        where: Expr,
        fields: Sequence[str],
        query: TextQuery,
        limit: int,
    ) -> list[tuple[Row, float]]:
        """The best ``limit`` (at least 1) rows matching ``where`` and ``query`` in
        ``fields`` (text or list columns) with their BM25 scores."""


@runtime_checkable
class Scrub(Protocol):
    """Optional capability ``scrub``: make removed rows unreadable in the storage's files.

    The store calls ``scrub()`` once an erasure (``erase_user``) has committed.
    A backend whose files keep removed content (free pages, a write-ahead log)
    overwrites it there. It never changes what the tables hold and never raises
    (a scrub that cannot finish now, say for a reader holding the log, is logged
    and done by the next one).
    """

    def scrub(self) -> None:
        """Overwrite what removed rows left in the storage's files."""


@runtime_checkable
class VectorDimensions(Protocol):
    """Optional capability ``vector_dimensions``: the longest vectors the backend stores
    and indexes.

    A backend whose engine cannot keep every vector the core accepts (a vector
    column's ``max_length``) declares its limits; the store then lowers each
    vector column's ``max_length`` to the smallest of them, so a longer vector is
    a :class:`~clonestore.ValidationError` before anything is written, whatever
    the mode the store is opened in (a backend running without its index must
    declare the index's limit too: the same file or database is opened later
    with it). Rows already stored beyond a limit must not stop a store opening:
    the backend leaves them out of its index and reports them in ``health()``.
    """

    def vector_dimension_limits(self) -> Mapping[str, int]:
        """The largest dimension each part of the engine takes, by what it is:
        ``{"sqlite-vec vec0": 8192}``; the store's limit is the smallest."""


@runtime_checkable
class UpdateAndInsert(Protocol):
    """Optional capability ``update_and_insert``: change one row and insert another
    that takes values from it, in one step (PostgreSQL: one statement, a CTE).

    The meaning is :func:`clonestore.spi_reference.update_and_insert_reference`, composed
    of ``transaction``, ``update`` and ``insert``; backends without the capability
    get it from the core, which runs the reference over their own operations.
    """

    def update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
    ) -> Row | None:
        """Apply ``changes`` (values or :class:`Increment`) to the row of ``table``
        matching ``where``; if there is one, insert ``row`` into ``into`` with each
        column of ``copied`` (a column of ``into`` -> a column of ``table``) set to
        the changed row's value. Atomically: both or neither.

        ``where`` pins one row (it includes the id). Returns the inserted row, or
        None when no row matched (nothing is written).
        """


@runtime_checkable
class UpdateAndInsertMany(Protocol):
    """Optional capability ``update_and_insert_many``: change one row and insert several
    that take values from it, in **one statement** (PostgreSQL: a CTE), so atomic without
    a savepoint and one round trip. A backend that would need more than one statement
    does not declare it: callers then make the update and the inserts themselves.

    The meaning is :func:`clonestore.spi_reference.update_and_insert_many_reference`.
    The audit plugin moves a chain's head and appends its entries with it; the gateway
    makes ``update_and_insert`` one statement with it while plugins watch writes.
    """

    def update_and_insert_many(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        rows: Sequence[Row],
        copied: Mapping[str, str],
    ) -> tuple[Row, list[Row]] | None:
        """:meth:`UpdateAndInsert.update_and_insert` with several rows (at least one):
        each is inserted with the ``copied`` columns set from the changed row. Returns
        the changed row (as :meth:`Backend.update` returns it) and the inserted rows in
        the order given, or None when no row matched (nothing is written). Atomically:
        all or nothing.
        """


@runtime_checkable
class UpsertReturning(Protocol):
    """Optional capability ``upsert_returning``: ``upsert`` takes ``returning``, the
    columns the caller needs, and returns only them (a counter's count, not its
    whole row: fewer values sent back and decoded). The values are those of the
    row as stored, as without ``returning``.
    """

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        returning: Sequence[str] | None = None,
    ) -> Row:
        """:meth:`Backend.upsert`; with ``returning``, a row of those columns only."""


@runtime_checkable
class SelectColumns(Protocol):
    """Optional capability ``select_columns``: :meth:`Backend.select` read column by
    column, without a dict per row. For each name of ``columns``, one sequence of the
    matching rows' values of that column, in ``order``, as ``select`` would give them
    (:func:`clonestore.spi_reference.columns_of` its rows); all of one length. Lists and
    dicts are new objects, the caller's to keep. The repositories build their records
    from it a field at a time: a column the engine returns as its Python value is the
    driver's values as they come, not converted one by one.
    """

    def select_columns(
        self,
        table: TableSpec,
        columns: Sequence[str],
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Sequence[Any]]:
        """The values of ``columns`` of :meth:`Backend.select`'s rows, a column each."""


@runtime_checkable
class RowTransfer(Protocol):
    """Optional capability ``row_transfer``: every row of a table out, exactly as stored,
    and rows back in, exactly as given: what ``store.dump()`` and ``store.load()``
    (``clonestore dump``/``load``) move a database between backends with.

    The meaning is :func:`clonestore.spi_reference.export_rows_reference` (``select`` by ``id``) and
    ``insert_many``; backends without the capability get exactly that from the core.
    A backend declares it to move rows faster than its ``select`` and ``insert_many``
    do (a bulk path of its engine), never to change what is moved.
    """

    def export_rows(self, table: TableSpec, after: str | None, limit: int) -> list[Row]:
        """The rows with an ``id`` after ``after`` (all when None), in ``id`` order, at
        most ``limit`` (at least 1): soft-deleted and append-only rows included, each
        value as :meth:`Backend.get` returns it."""

    def import_rows(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert complete, valid rows (ids, timestamps and every other value as given),
        all or none, in the caller's transaction when there is one. Tables may be
        append-only (inserts are what they allow); ids already present raise
        :class:`~clonestore.AlreadyExists`, as ``insert_many`` does."""


@runtime_checkable
class Backup(Protocol):
    """Optional capability ``backup``: a consistent copy of the whole database in the
    engine's own format, taken while the store is in use (SQLite's online backup API);
    what ``clonestore backup`` runs. Engines backed up by their own tools (``pg_dump``,
    point-in-time recovery) do not declare it."""

    def backup(self, path: str) -> str:
        """Copy the database to the new file ``path`` (which must not exist: a
        :class:`~clonestore.ConfigurationError`), complete or not at all; the URL that
        opens the copy."""



@runtime_checkable
class ListenNotify(Protocol):
    """Optional capability ``listen_notify``: messages between the processes that
    share one database (PostgreSQL ``LISTEN``/``NOTIFY``).

    Plugins use it to keep in-process state consistent across processes (the
    cache plugin invalidates cached rows with it). A backend declaring
    ``"listen_notify"`` in ``capabilities`` provides both methods.
    """

    def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` (at most 7,000 UTF-8 bytes) to every listener of ``channel``.

        Inside a transaction the message is delivered only if and when the
        outermost transaction commits; outside one, at once.
        """

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(payload)`` from a background thread for each message on
        ``channel``, this process's own included; returns a function that stops.

        ``callback(None)`` means messages may have been lost (the connection
        dropped and was re-established): listeners must assume anything changed.
        """


@runtime_checkable
class AppendOnlyTables(Protocol):
    """Optional capability ``append_only``: the backend enforces
    :class:`AppendOnly` on the tables whose spec carries it, at the engine (a
    refusing trigger on SQL engines), so that writes from outside clonestore
    are refused too; the one way rows leave is :meth:`purge`.

    The reference meaning is :func:`clonestore.spi_reference.append_only_allows`
    (memory:// applies it in Python); a refused write raises the error of
    :func:`clonestore.spi_reference.append_only_refusal`.
    """

    def purge(self, table: TableSpec, up_to: int) -> int:
        """Remove the rows whose ``append_only.purge_by`` column is at most ``up_to``;
        how many. A table without ``purge_by`` is a :class:`~clonestore.ConfigurationError`."""


@runtime_checkable
class TimePartitions(Protocol):
    """Optional capability ``time_partitions``: some tables are stored in partitions by
    time (PostgreSQL's ``layout=partitioned``), so removing rows under a time bound is
    cheap when whole partitions go. A removal (``purge``, ``delete`` by the partition
    column alone) up to a bound drops the partitions wholly under it and deletes the
    rest: the meaning is the same as row by row; only the cost differs.
    """

    def partition_bound(self, table: TableSpec, column: str, before: Any) -> Any | None:
        """The highest partition boundary of ``table`` at or under ``before`` (a value
        of ``column``, its partition column), so that removing the rows under it drops
        whole partitions only; None when ``table`` is not partitioned by ``column`` or no
        partition lies wholly under ``before``."""


@runtime_checkable
class Migrations(Protocol):
    """Optional capability ``migrations``: a schema of numbered, recorded migrations (the
    SQL backends'). The store calls these for ``store.migrate()``, ``migration_status()``,
    ``migration_plan()``, ``downgrade()``, and at open for the plugins' migrations and
    (``create_tables=False``) their missing tables; without the capability they answer
    with nothing to do. ``plugins`` maps a plugin's name to the package of its migration
    scripts (``clonestore_migrations``); each script's ``up(migrator, db)`` and
    ``down(migrator, db)`` get a :class:`Migrator`.
    """

    def migrate(
        self, plugins: Mapping[str, str] | None = None, target: str | None = None
    ) -> list[str]:
        """Apply pending migrations, the core's then each plugin's, up to ``target``; the
        qualified names applied (``"0002_original_schema"``, ``"audit/0001_initial"``)."""

    def migration_status(self, plugins: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every known migration: ``name``, ``plugin``, ``applied``, ``applied_at``."""

    def migration_plan(
        self, plugins: Mapping[str, str] | None = None, target: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """``(name, statements)`` of each pending migration, changing nothing."""

    def downgrade(
        self, plugins: Mapping[str, str] | None = None, to: str | None = None
    ) -> list[str]:
        """Undo the migrations applied after ``to`` (else the newest core one), newest
        first; their names."""

    def missing_tables(self, specs: Sequence[TableSpec]) -> list[str]:
        """The names of ``specs``' tables that do not exist."""

    def create_spec_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create the tables of ``specs`` (if missing) with their indexes: what a plugin's
        migration script calls with its frozen specs."""

    def drop_spec_tables(self, specs: Sequence[TableSpec]) -> None:
        """Drop the tables of ``specs`` (if present), rows and all: a script's ``down``."""


class Migrator(Protocol):
    """What a plugin's migration script gets as ``migrator``: its ``backend``, with the
    ``migrations`` capability (engine-specific scripts, the SQL plugin's own, use the
    rest of the engine's migrator)."""

    backend: Migrations



#: What a ``clonestore_backends`` hook returns per URL scheme: called with the
#: URL and the store's backend options, it returns a :class:`Backend`.
BackendFactory: TypeAlias = Callable[..., Backend]


@runtime_checkable
class RowSecurity(Protocol):
    """Optional capability ``row_security``: the engine holds each user's view to the
    user's rows (PostgreSQL's row-level security), not only the core.

    A store whose backend declares it calls the backend, for a ``store.for_user(id)``
    view, with :func:`clonestore.plugin_helpers.acting_user` returning ``id`` for the
    whole call (transactions included); an unscoped call sees None. A backend opened to
    be held to it (a role the engine's policies bind) sends the acting user with the
    call's statements, inside their transaction, so that a statement on that connection,
    raw ones included, reads and writes only that user's rows, and none without a user.
    """

    def enable_row_security(self, tables: Sequence[TableSpec], role: str) -> list[str]:
        """Install the policies on every table of ``tables`` with an owner column
        (``user_id``; ``id`` on ``users``), turn them on, and let the engine role
        ``role`` read and write every table of ``tables`` under them (idempotent); run by
        a role that owns the tables. The statements run."""

    def disable_row_security(self, tables: Sequence[TableSpec]) -> list[str]:
        """Turn the policies of ``tables`` off and drop them (idempotent); the statements
        run."""


#: The protocol of each capability that adds methods: a backend offers the capability
#: when it has the protocol's methods, which is the one declaration.
CAPABILITY_PROTOCOLS: Final[Mapping[str, type]] = {
    "vector_search": VectorSearch,
    "vector_dimensions": VectorDimensions,
    "update_and_insert": UpdateAndInsert,
    "update_and_insert_many": UpdateAndInsertMany,
    "select_columns": SelectColumns,
    "listen_notify": ListenNotify,
    "append_only": AppendOnlyTables,
    "migrations": Migrations,
    "scrub": Scrub,
    "text_search": TextSearch,
    "row_transfer": RowTransfer,
    "backup": Backup,
    "row_security": RowSecurity,
    "time_partitions": TimePartitions,
}

#: The capabilities without a protocol, declared by name in ``Backend.capabilities``.
DECLARED_CAPABILITIES: Final = CAPABILITIES - CAPABILITY_PROTOCOLS.keys()


#: The methods of each capability's protocol.
_PROTOCOL_METHODS: Final = {
    capability: tuple(name for name, value in vars(protocol).items()
                      if not name.startswith("_") and callable(value))
    for capability, protocol in CAPABILITY_PROTOCOLS.items()
}  # fmt: skip


def capabilities_of(backend: object) -> frozenset[str]:
    """The optional capabilities ``backend`` offers: the names it declares in
    ``capabilities`` (those without a protocol) and each capability whose protocol's
    methods it has (looked up on the instance: a wrapper forwarding them offers what it
    wraps; a method set to None, as :func:`withhold` does, is missing)."""
    declared = frozenset(getattr(backend, "capabilities", ()))
    return declared | {
        name for name, methods in _PROTOCOL_METHODS.items()
        if all(callable(getattr(backend, method, None)) for method in methods)
    }  # fmt: skip


def withhold(backend: object, *capabilities: str) -> None:
    """Make ``backend`` (an instance) not offer ``capabilities`` whose protocols its class
    implements, when its configuration lacks them: their methods become None on the
    instance, so :func:`capabilities_of` leaves them out."""
    for name in capabilities:
        for method in _PROTOCOL_METHODS[name]:
            setattr(backend, method, None)


# Names this module exported until the SPI became one page (API 2), with their homes now:
# the reference meanings in :mod:`clonestore.spi_reference`, the query nodes in
# :mod:`clonestore.query`, schema and vector constants in :mod:`clonestore.schema` and
# :mod:`clonestore.vectors`, the plugin helpers in :mod:`clonestore.plugin_helpers`. Each
# still resolves here, with a :class:`DeprecationWarning` naming its home, until API 3
# (docs/backend-guide.md, the changelog).
_MOVED: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("FALSE", "TRUE", "JSON_OPS", "And", "Cond", "Expr", "JsonCond", "Or", "OrderBy"),
        "clonestore.query",
    ),
    **dict.fromkeys(("MUTABLE_KINDS", "ORDERABLE", "check"), "clonestore.schema"),
    **dict.fromkeys(("TextQuery",), "clonestore.text"),
    **dict.fromkeys(
        ("FLOAT32_ROUNDOFF", "FLOAT64_ROUNDOFF", "METRICS", "SAFE_MAX", "SAFE_MIN"),
        "clonestore.vectors",
    ),
    **dict.fromkeys(
        (
            "append_only_allows", "append_only_refusal", "apply_changes", "bm25", "copy_row",
            "copy_value", "engine_distance", "engine_safe", "error_bound",
            "export_rows_reference", "field_tokens", "iter_leaves", "json_holds", "json_type",
            "matches", "matches_query", "missing_reference", "nearest_reference",
            "parse_query", "referencing", "score", "search_reference", "settle", "sort_rows",
            "still_referenced", "tokenize", "update_and_insert_reference", "with_copies",
        ),
        "clonestore.spi_reference",
    ),
    **dict.fromkeys(
        ("current_context", "open_shared_store", "refused_scheme", "refuses_scheme"),
        "clonestore.plugin_helpers",
    ),
}


if not TYPE_CHECKING:  # type checkers see the page; old code runs, warned

    def __getattr__(name: str) -> Any:
        """A name of ``_MOVED``, from its home, with a :class:`DeprecationWarning`."""
        home = _MOVED.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        warnings.warn(
            f"clonestore.spi.{name} moved to {home}.{name}; the old name goes in API 3",
            DeprecationWarning,
            stacklevel=2,
        )
        # By name, at the first use of a moved name: its homes import this module.
        return getattr(importlib.import_module(home), name)
