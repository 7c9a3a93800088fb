"""The storage SPI: the one small protocol a backend implements.

A backend stores *rows* (plain dicts mapping column name to Python value, see
:mod:`clonestore.schema` for the value of each kind) in tables described by
:class:`TableSpec`. It never sees records, repositories or plugins. All input
is validated by the core before it reaches the backend; the backend maps
values to its storage types and back, so that a row read is equal to the row
written.

What every method means, on every backend:

* ``where`` is an expression from :mod:`clonestore.query`; its meaning is
  :func:`clonestore.query.matches`.
* ``order`` sorts as :func:`clonestore.query.sort_rows` (text by code point,
  NULLs last ascending and first descending).
* Unique constraints (:class:`Unique`) hold among rows matching their
  ``when`` and, on tables with a ``deleted_at`` column, among live rows only
  (``deleted_at IS NULL``). A violation raises :class:`AlreadyExists`.
* ``transaction()`` is all-or-nothing; nested, it is a savepoint.
* Failures raise clonestore errors only: ``StorageUnavailable`` when the
  storage cannot be reached, ``BackendError`` (with ``orig``) otherwise.

A backend may declare optional capabilities in ``capabilities``
(:data:`CAPABILITIES`): operations (``vector_search``, ``bulk_copy``,
``listen_notify``, ``update_and_insert``, ``upsert_returning``) and table
options (``ephemeral``, ``append_only``, see
:class:`TableSpec`). The store checks once, when it opens, that the backend
declares every capability its plugins need (``clonestore_required_capabilities``)
and every guarantee its tables ask for (``append_only``); otherwise ``open()``
fails with a :class:`~clonestore.ConfigurationError` naming the plugin, the
capability and the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any, Final, Protocol, TypeAlias, runtime_checkable

import attrs

from clonestore.errors import BackendError
from clonestore.operations import current_context
from clonestore.query import FALSE, TRUE, And, Cond, Expr, Or, OrderBy, matches, sort_rows
from clonestore.schema import (
    KINDS,
    MUTABLE_KINDS,
    ORDERABLE,
    AppendOnly,
    Column,
    Index,
    TableSpec,
    Unique,
    check,
)
from clonestore.vectors import (
    FLOAT32_ROUNDOFF,
    FLOAT64_ROUNDOFF,
    METRICS,
    SAFE_MAX,
    SAFE_MIN,
    engine_distance,
    engine_safe,
    error_bound,
    nearest_reference,
    score,
    settle,
)

__all__ = [
    "AGGREGATES",
    "CAPABILITIES",
    "FALSE",
    "FLOAT32_ROUNDOFF",
    "FLOAT64_ROUNDOFF",
    "KINDS",
    "METRICS",
    "MUTABLE_KINDS",
    "ORDERABLE",
    "SAFE_MAX",
    "SAFE_MIN",
    "TABLE_OPTIONS",
    "TRUE",
    "Aggregate",
    "And",
    "AppendOnly",
    "AppendOnlyTables",
    "Backend",
    "BackendFactory",
    "Column",
    "Cond",
    "Expr",
    "Increment",
    "Index",
    "ListenNotify",
    "Or",
    "OrderBy",
    "Row",
    "TableSpec",
    "Unique",
    "UpdateAndInsert",
    "UpsertReturning",
    "VectorSearch",
    "append_only_allows",
    "append_only_refusal",
    "apply_changes",
    "check",
    "copy_row",
    "copy_value",
    "current_context",
    "engine_distance",
    "engine_safe",
    "error_bound",
    "iter_leaves",
    "matches",
    "nearest_reference",
    "open_shared_store",
    "score",
    "settle",
    "sort_rows",
    "update_and_insert_reference",
    "with_copies",
]

Row: TypeAlias = dict[str, Any]

#: Aggregate functions: ``count`` (column may be None: count rows), ``sum``
#: (int and decimal columns; None over no rows), ``min``, ``max``.
AGGREGATES: Final = frozenset({"count", "sum", "min", "max"})

#: Table options (:class:`TableSpec` fields) a backend implements when it
#: declares the capability of the same name.
TABLE_OPTIONS: Final = frozenset({"ephemeral", "append_only"})

#: Optional capabilities a backend may declare.
CAPABILITIES: Final = (
    frozenset(
        {"vector_search", "bulk_copy", "listen_notify", "update_and_insert", "upsert_returning"}
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


def apply_changes(row: Row, changes: Mapping[str, Any]) -> Row:
    """The row after ``changes`` (values or :class:`Increment`): their reference meaning."""
    new = dict(row)
    for name, change in changes.items():
        if isinstance(change, Increment):
            new[name] = row[name] + change.amount
        else:
            new[name] = change
    return new


def copy_value(value: Any) -> Any:
    """A copy of a row value that shares no list or dict with it (the rest is immutable)."""
    kind = type(value)
    if kind is dict:
        out = value.copy()  # in C; only nested lists and dicts need a call each
        for key, item in out.items():
            if type(item) is dict or type(item) is list:
                out[key] = copy_value(item)
        return out
    if kind is list:
        items = value[:]
        for i, item in enumerate(items):
            if type(item) is dict or type(item) is list:
                items[i] = copy_value(item)
        return items
    return value


def copy_row(row: Mapping[str, Any], columns: Sequence[str] | None = None) -> Row:
    """A copy of ``row`` that shares no list or dict with it.

    ``columns`` names the only columns that may hold one (a table's
    :attr:`~clonestore.schema.TableSpec.mutable_columns`), so that only they are
    copied deeply; without it every value is.
    """
    if columns is None:
        return {name: copy_value(value) for name, value in row.items()}
    out = dict(row)
    for name in columns:
        out[name] = copy_value(out[name])
    return out


@runtime_checkable
class Backend(Protocol):
    """What a storage backend implements. Rows in, rows out."""

    #: Short engine name reported by ``health()`` (``"memory"``, ``"sqlite"``...).
    name: str
    #: Optional capabilities this backend provides (subset of :data:`CAPABILITIES`).
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

        ``key`` must be the columns of one of the table's unique constraints.
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
class UpdateAndInsert(Protocol):
    """Optional capability ``update_and_insert``: change one row and insert another
    that takes values from it, in one step (PostgreSQL: one statement, a CTE).

    The meaning is :func:`update_and_insert_reference`, composed of
    ``transaction``, ``update`` and ``insert``; backends without the capability
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


def update_and_insert_reference(
    backend: Backend,
    table: TableSpec,
    where: Expr,
    changes: Mapping[str, Any],
    into: TableSpec,
    row: Row,
    copied: Mapping[str, str],
) -> Row | None:
    """The meaning of :meth:`UpdateAndInsert.update_and_insert`, over ``backend``'s
    ``transaction``, ``update`` and ``insert``."""
    with backend.transaction():
        updated = backend.update(table, where, changes)
        if not updated:
            return None
        if len(updated) > 1:
            raise BackendError(f"update_and_insert: {len(updated)} rows of {table.name} matched")
        (source,) = updated
        inserted = with_copies(row, source, copied)
        backend.insert(into, inserted)
        return inserted


def with_copies(row: Row, source: Mapping[str, Any], copied: Mapping[str, str]) -> Row:
    """``row`` with each ``copied`` column set from the updated row ``source``
    (``{column: source_column}``): the row :meth:`UpdateAndInsert.update_and_insert`
    inserts."""
    inserted = dict(row)
    for column, source_column in copied.items():
        inserted[column] = source[source_column]
    return inserted


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

    The reference meaning is :func:`append_only_allows` (memory:// applies it
    in Python); a refused write raises the error of :func:`append_only_refusal`.
    """

    def purge(self, table: TableSpec, up_to: int) -> int:
        """Remove the rows whose ``append_only.purge_by`` column is at most ``up_to``;
        how many. A table without ``purge_by`` is a :class:`~clonestore.ConfigurationError`."""


def append_only_allows(table: TableSpec, old: Row, new: Row) -> bool:
    """Whether an update of ``old`` into ``new`` is allowed on an append-only table:
    only erasable columns set to NULL and the ``erased_at`` stamp may differ."""
    option = table.append_only
    if option is None:
        return True
    for name in table.column_names:
        if new[name] == old[name] or name == option.erased_at:
            continue
        if name in option.erasable and new[name] is None:
            continue
        return False
    return True


def append_only_refusal(table: str, action: str) -> BackendError:
    """The error every backend raises for a write an append-only table refuses."""
    return BackendError(
        f"{table} is append-only: {action} refused (rows leave only by purge; "
        "an update may only erase the erasable columns)"
    )


def open_shared_store(hook: Any, kind: str, url: str, protocol: type[Any]) -> Any:
    """Open the shared store for ``url`` that serves ``kind``: the first factory
    offered for the URL's scheme through ``clonestore_shared_stores``.

    :param hook: the store's hook relay (``store.hook``).
    :param protocol: a runtime-checkable protocol the result must implement.
    :raises ConfigurationError: no plugin serves the scheme, or its object does
        not implement ``protocol``.
    """
    from clonestore.errors import ConfigurationError
    from clonestore.secrets import redact_url

    scheme = url.partition("://")[0]
    offered: dict[str, Callable[..., Any]] = {}
    for stores in hook.clonestore_shared_stores(kind=kind):
        for name, factory in (stores or {}).items():
            offered.setdefault(name, factory)
    if scheme not in offered:
        known = ", ".join(f"{s}://" for s in sorted(offered)) or "none installed"
        raise ConfigurationError(
            f"no {kind} store for {redact_url(url)!r}; known schemes: {known}"
        )
    opened = offered[scheme](url)
    if not isinstance(opened, protocol):
        raise ConfigurationError(
            f"the {scheme}:// {kind} store does not implement {protocol.__name__}"
        )
    return opened


#: What a ``clonestore_backends`` hook returns per URL scheme: called with the
#: URL and the store's backend options, it returns a :class:`Backend`.
BackendFactory: TypeAlias = Callable[..., Backend]


def iter_leaves(expr: Expr) -> Iterator[Cond]:
    """Every condition in an expression (used by backends to check what they support)."""
    if isinstance(expr, Cond):
        yield expr
    else:
        for item in expr.items:
            yield from iter_leaves(item)
