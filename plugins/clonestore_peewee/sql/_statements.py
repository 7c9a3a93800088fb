"""The statement of each SPI operation, rendered by Peewee for one shape.

Each builder returns a :class:`~.compiler.Statement` whose parameters are laid
out from a list of values gathered in slot order: the expression's values
(see :func:`~.compiler.walk`), preceded by the changes' values for updates
and the row's values for upserts, followed by limit and offset for selects.
The backend caches what these return under the shape's key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import peewee
from peewee import SQL, fn

from clonestore import ConfigurationError
from clonestore.query import Expr, OrderBy
from clonestore.spi import AGGREGATES

from ._codecs import column_loader, make_loader
from ._compiler import TRUE_SQL, Compiler, Slots, Statement, TableInfo
from ._fields import FIELD_CLASSES, POSTGRES_TYPES
from ._models import unique_predicate

__all__ = [
    "aggregate_statement",
    "count_statement",
    "delete_statement",
    "select_statement",
    "update_and_insert_statement",
    "update_statement",
    "upsert_statement",
]


def _where(compiler: Compiler, query: Any, info: TableInfo, where: Expr, slots: Slots) -> Any:
    node = compiler.condition(info, where, slots)
    return query if node is TRUE_SQL else query.where(node)


def select_statement(
    compiler: Compiler,
    info: TableInfo,
    where: Expr,
    order: Sequence[OrderBy],
    limit: bool,
    offset: bool,
    lock: bool = False,
    literal_limit: int | None = None,
    columns: tuple[str, ...] | None = None,
) -> Statement:
    """``SELECT columns ... ORDER BY ... LIMIT ? OFFSET ?`` (``lock``: ``FOR UPDATE``,
    on engines that have it; ``literal_limit``: that ``LIMIT`` in the text; ``columns``:
    only those, read by the caller, else every column, loaded into row dicts)."""
    slots = Slots()
    selected = info.columns if columns is None else [info.fields[name] for name in columns]
    query = _where(compiler, info.model.select(*selected), info, where, slots)
    if order:
        query = query.order_by(*compiler.ordering(info, order))
    if literal_limit is not None:
        query = query.limit(SQL(str(int(literal_limit))))
    elif limit:
        query = query.limit(slots.new())
    if offset:
        query = query.offset(slots.new())
    if lock and compiler.database.for_update:
        query = query.for_update()
    return compiler.render(query, info.load if columns is None else None)


def columns_statement(
    compiler: Compiler, info: TableInfo, where: Expr, names: Sequence[str]
) -> Statement:
    """``SELECT names ... WHERE where`` (no order): some columns of the matching rows,
    loaded into dicts of those columns."""
    slots = Slots()
    columns = {c.name: c for c in info.spec.columns}
    wanted = [columns[name] for name in names]
    selected = info.model.select(*[info.fields[name] for name in names])
    query = _where(compiler, selected, info, where, slots)
    return compiler.render(query, column_loader(wanted, compiler.codecs))


def count_statement(compiler: Compiler, info: TableInfo, where: Expr) -> Statement:
    """``SELECT COUNT(*) ...``."""
    query = info.model.select(fn.COUNT(SQL("*")))
    return compiler.render(_where(compiler, query, info, where, Slots()), None)


def aggregate_statement(
    compiler: Compiler,
    info: TableInfo,
    where: Expr,
    group_by: Sequence[str],
    wanted: Sequence[tuple[str, str, str | None]],
) -> Statement:
    """``SELECT groups, fn(column) AS alias ... GROUP BY groups ORDER BY groups``."""
    dialect = compiler.dialect
    codecs = dialect.codecs
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
    query = _where(compiler, info.model.select(*selected), info, where, Slots())
    if group_fields:
        ordering = compiler.ordering(info, [OrderBy(name) for name in group_by])
        query = query.group_by(*group_fields).order_by(*ordering)
    return compiler.render(query, make_loader(names, converters, nullable))


def _returned(
    compiler: Compiler, info: TableInfo, names: Sequence[str] | None
) -> tuple[list[Any], Callable[[Sequence[Any]], dict[str, Any]]]:
    """The fields a statement returns and its row loader: every column, or ``names``."""
    if names is None:
        return info.columns, info.load
    load = make_loader(
        names,
        [compiler.codecs.result(info.kinds[name]) for name in names],
        [info.spec.by_name[name].nullable for name in names],
    )
    return [info.fields[name] for name in names], load


def update_statement(
    compiler: Compiler,
    info: TableInfo,
    where: Expr,
    changes: Mapping[str, Any],
    increments: Sequence[bool],
    returning: Sequence[str] | None = None,
) -> Statement:
    """``UPDATE ... SET col = ?, n = n + ? WHERE ... RETURNING columns`` (every column,
    or those of ``returning``; without ``RETURNING`` where the dialect lacks it)."""
    slots = Slots()
    fields, load = _returned(compiler, info, returning)
    query = info.model.update(compiler.assignments(info, changes, slots, increments))
    query = _where(compiler, query, info, where, slots)
    if not compiler.dialect.update_returning:
        return compiler.render(query, None)
    return compiler.render(query.returning(*fields), load)


def delete_statement(compiler: Compiler, info: TableInfo, where: Expr) -> Statement:
    """``DELETE ... WHERE ...``."""
    return compiler.render(_where(compiler, info.model.delete(), info, where, Slots()), None)


def upsert_statement(
    compiler: Compiler,
    info: TableInfo,
    columns: Sequence[str],
    changes: Mapping[str, Any],
    increments: Sequence[bool],
    returning: Sequence[str] | None = None,
) -> Statement:
    """``INSERT ... ON CONFLICT (columns) [WHERE partial] DO UPDATE SET ... RETURNING``
    (every column, or those of ``returning``).

    The conflict target repeats the unique index's predicate so that the
    engine picks that (partial) index as the arbiter.
    """
    codecs = compiler.codecs
    slots = Slots()
    row = {
        field: slots.new(codecs.param(c.kind), c.nullable)
        for field, c in zip(info.columns, info.spec.columns, strict=True)
    }
    update = compiler.assignments(info, changes, slots, increments)
    if not update:  # DO NOTHING would return no row; a no-op SET returns it
        update = {info.fields["id"]: info.fields["id"]}
    unique = info.uniques[tuple(columns)]
    returned, load = _returned(compiler, info, returning)
    query = (
        info.model.insert(row)
        .on_conflict(
            conflict_target=[info.fields[c] for c in columns],
            conflict_where=unique_predicate(info.model, info.spec, unique),
            update=update,
        )
        .returning(*returned)
    )
    return compiler.render(query, load)


def update_and_insert_statement(
    compiler: Compiler,
    info: TableInfo,
    where: Expr,
    changes: Mapping[str, Any],
    increments: Sequence[bool],
    child: TableInfo,
    copied: Mapping[str, str],
    count: int = 1,
    changed: bool = False,
) -> Statement:
    """``WITH parent AS (UPDATE ... RETURNING sources) INSERT INTO child (...) SELECT
    ?, parent.source, ... FROM parent [UNION ALL SELECT ... FROM parent ...] RETURNING
    copied``: PostgreSQL only (a data-modifying CTE), ``count`` rows. No row matched:
    nothing is inserted and no row returned; else the first row's ``copied`` columns
    (every row has the same).

    With ``changed``, the statement returns the changed row instead (every column:
    ``WITH parent AS (UPDATE ... RETURNING *), child AS (INSERT ...) SELECT * FROM
    parent``; a data-modifying CTE runs whether or not the query reads it).

    Slots: the changes' values, the expression's, then each row's other columns in
    column order (the statement's parameters are one flat list).
    """
    slots = Slots()
    update = info.model.update(compiler.assignments(info, changes, slots, increments))
    sources = list(dict.fromkeys(copied.values())) or ["id"]  # RETURNING needs a column
    update = _where(compiler, update, info, where, slots).returning(
        *(info.columns if changed else [info.fields[name] for name in sources])
    )
    parent = update.cte("clonestore_parent")
    selects: Any = None
    for _ in range(count):
        selected: list[Any] = []
        for column in child.spec.columns:
            source = copied.get(column.name)
            if source is not None:
                selected.append(getattr(parent.c, source))
                continue
            slot = slots.new(compiler.codecs.param(column.kind), column.nullable)
            # INSERT ... SELECT gives untyped parameters no column type: cast each to its own.
            sql_type = POSTGRES_TYPES[FIELD_CLASSES[column.kind].field_type].split(" COLLATE")[0]
            selected.append(peewee.Cast(slot, sql_type))
        one = peewee.Select((parent,), selected)
        selects = one if selects is None else selects.union_all(one)
    insert = child.model.insert_from(selects, child.columns)
    if changed:
        inserted = insert.cte("clonestore_child")
        query = peewee.Select(
            (parent,), [getattr(parent.c, column.name) for column in info.spec.columns]
        ).with_cte(parent, inserted)
        return compiler.render(query, info.load)
    returned, load = _returned(compiler, child, list(copied) or ["id"])
    return compiler.render(insert.with_cte(parent).returning(*returned), load)
