"""The reference meanings of the storage SPI (:mod:`clonestore.spi`), in Python over rows.

What each operation of a :class:`~clonestore.spi.Backend` means, as functions a backend
can run: memory:// is built from them, an out-of-tree backend may be too (the jsonfile
example, examples/jsonfile_backend), and the conformance kit holds every backend to
them. A backend with an engine of its own computes the same answers there.

* filters and order: :func:`matches` (``where``), :func:`json_holds` (JSON key lookups),
  :func:`sort_rows` (``order``: text by code point, NULLs last ascending), :func:`iter_leaves`;
* writes: :func:`apply_changes` (values and ``Increment``), :func:`copy_row` /
  :func:`copy_value` (rows that share no list or dict), :func:`update_and_insert_reference`,
  :func:`update_and_insert_many_reference`,
  :func:`append_only_allows` and :func:`append_only_refusal`; foreign keys' errors,
  :func:`missing_reference` and :func:`still_referenced`, and :func:`referencing`;
* aggregation: :func:`aggregate` (``Backend.aggregate``) and :func:`aggregate_value`;
* text search: :func:`search_reference` (BM25 over the matching rows), :func:`field_tokens`,
  and the core's tokenizer and scoring: :func:`tokenize`, :func:`parse_query`,
  :func:`matches_query`, :func:`bm25` (and :func:`bm25_scores`, its floats for many rows);
* row transfer: :func:`export_rows_reference`; reads column by column: :func:`columns_of`;
* vectors: :func:`nearest_reference` (exact nearest-k), :func:`settle` (exact scores after
  a single-precision ranking), :func:`score`, :func:`engine_distance`, :func:`engine_safe`,
  :func:`error_bound`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from clonestore.errors import BackendError, ConfigurationError, ForeignKeyViolation
from clonestore.query import (
    TRUE,
    Cond,
    Expr,
    JsonCond,
    OrderBy,
    json_holds,
    json_type,
    matches,
    sort_rows,
)
from clonestore.schema import ForeignKey, TableSpec
from clonestore.spi import Aggregate, Backend, Increment, Row
from clonestore.text import (
    bm25,
    bm25_scores,
    field_tokens,
    matches_query,
    parse_query,
    search_reference,
    tokenize,
)
from clonestore.vectors import (
    engine_distance,
    engine_safe,
    error_bound,
    nearest_reference,
    score,
    settle,
)

__all__ = [
    "aggregate",
    "aggregate_value",
    "append_only_allows",
    "append_only_refusal",
    "apply_changes",
    "bm25",
    "bm25_scores",
    "columns_of",
    "copy_row",
    "copy_value",
    "engine_distance",
    "engine_safe",
    "error_bound",
    "export_rows_reference",
    "field_tokens",
    "iter_leaves",
    "json_holds",
    "json_type",
    "matches",
    "matches_query",
    "missing_reference",
    "nearest_reference",
    "parse_query",
    "referencing",
    "score",
    "search_reference",
    "settle",
    "sort_rows",
    "still_referenced",
    "tokenize",
    "update_and_insert_many_reference",
    "update_and_insert_reference",
    "with_copies",
]


def aggregate_value(agg: Aggregate, rows: Sequence[Row]) -> Any:
    """``agg`` over ``rows`` (see :class:`clonestore.spi.Aggregate`): ``count`` of rows or
    of non-NULL values; ``sum``, ``min``, ``max`` of the non-NULL values, None over none."""
    if agg.fn == "count":
        if agg.column is None:
            return len(rows)
        return sum(1 for r in rows if r[agg.column] is not None)
    if agg.column is None:
        raise ConfigurationError(f"aggregate {agg.fn!r} needs a column")
    values = [r[agg.column] for r in rows if r[agg.column] is not None]
    if not values:
        return None
    if agg.fn == "sum":
        return sum(values[1:], values[0])
    if agg.fn == "min":
        return min(values)
    if agg.fn == "max":
        return max(values)
    raise ConfigurationError(f"unknown aggregate {agg.fn!r}")


def aggregate(
    rows: Sequence[Row], group_by: Sequence[str], aggregates: Mapping[str, Aggregate]
) -> list[Row]:
    """:meth:`clonestore.spi.Backend.aggregate` over the matching ``rows``: one row per
    group of ``group_by`` values (one row without ``group_by``, even over no rows), each
    with the group's values and one value per alias, ordered by the group values."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in group_by), []).append(row)
    if not group_by:
        groups.setdefault((), [])
    out: list[Row] = []
    for key, members in groups.items():
        result: Row = dict(zip(group_by, key, strict=True))
        for alias, agg in aggregates.items():
            result[alias] = aggregate_value(agg, members)
        out.append(result)
    return sort_rows(out, [OrderBy(c) for c in group_by])


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


def export_rows_reference(
    backend: Backend, table: TableSpec, after: str | None, limit: int
) -> list[Row]:
    """The meaning of :meth:`RowTransfer.export_rows`, over ``backend.select``."""
    where: Expr = TRUE if after is None else Cond("id", "gt", after)
    return backend.select(table, where, (OrderBy("id"),), limit)


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


def update_and_insert_many_reference(
    backend: Backend,
    table: TableSpec,
    where: Expr,
    changes: Mapping[str, Any],
    into: TableSpec,
    rows: Sequence[Row],
    copied: Mapping[str, str],
) -> tuple[Row, list[Row]] | None:
    """The meaning of :meth:`UpdateAndInsertMany.update_and_insert_many`, over
    ``backend``'s ``transaction``, ``update`` and ``insert_many``."""
    with backend.transaction():
        updated = backend.update(table, where, changes)
        if not updated:
            return None
        if len(updated) > 1:
            raise BackendError(
                f"update_and_insert_many: {len(updated)} rows of {table.name} matched"
            )
        (source,) = updated
        inserted = [with_copies(row, source, copied) for row in rows]
        backend.insert_many(into, inserted)
        return source, inserted


def columns_of(rows: Sequence[Row], columns: Sequence[str]) -> list[Sequence[Any]]:
    """``rows`` column by column (capability ``select_columns``): for each name of
    ``columns``, the rows' values of it, in the rows' order."""
    return [[row[name] for row in rows] for name in columns]


def with_copies(row: Row, source: Mapping[str, Any], copied: Mapping[str, str]) -> Row:
    """``row`` with each ``copied`` column set from the updated row ``source``
    (``{column: source_column}``): the row :meth:`UpdateAndInsert.update_and_insert`
    inserts."""
    inserted = dict(row)
    for column, source_column in copied.items():
        inserted[column] = source[source_column]
    return inserted


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


def missing_reference(table: str, fk: ForeignKey) -> ForeignKeyViolation:
    """The error every backend raises for a row of ``table`` pointing at no row."""
    return ForeignKeyViolation(
        f"{table}: {', '.join(fk.columns)} must name an existing row of {fk.references} "
        f"(foreign key {fk.name(table)})"
    )


def still_referenced(table: str, child: str, fk: ForeignKey) -> ForeignKeyViolation:
    """The error every backend raises for removing a row of ``table`` that rows of
    ``child`` still point at (``on_delete="restrict"``)."""
    return ForeignKeyViolation(
        f"{table}: a row is still referenced by {child}.{', '.join(fk.columns)}; remove "
        f"those rows first (foreign key {fk.name(child)})"
    )


def referencing(specs: Iterable[TableSpec], table: str) -> list[tuple[TableSpec, ForeignKey]]:
    """The foreign keys of ``specs`` pointing at ``table``, each with its table."""
    return [(spec, fk) for spec in specs for fk in spec.foreign_keys if fk.references == table]


def iter_leaves(expr: Expr) -> Iterator[Cond | JsonCond]:
    """Every condition in an expression (used by backends to check what they support)."""
    if isinstance(expr, (Cond, JsonCond)):
        yield expr
    else:
        for item in expr.items:
            yield from iter_leaves(item)
