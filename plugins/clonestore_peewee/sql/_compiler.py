"""Statements built once per shape with Peewee, then run with parameters.

Peewee spends ~100 µs of Python building the SQL of one statement. A shape
(table, operation, expression structure with its columns and operators but
not its values, ordering, whether there is a limit...) always gives the same
SQL, so each shape is built once: Peewee renders a query whose values are
:class:`_Slot` sentinels, the slots are found again in the rendered
parameters, and the cached :class:`Statement` keeps the SQL text plus a
generated function that lays the call's values out as driver parameters.

:func:`walk` reads an expression's shape and values in one pass; the
compiler visits the same expression in the same order, so value ``i`` is
what slot ``i`` stands for.

Shapes and tables are compiled once per process, not once per store: every
backend on the same Peewee database class and dialect renders the same SQL, so
they share one statement cache and one :class:`TableInfo` per table spec (a
shape's key names its ``TableInfo``, which stands for the spec). A process
opening many stores (a test suite, a worker per request) renders each shape
once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import reduce
from typing import Any, Final, cast

import peewee
from peewee import SQL

from clonestore import ConfigurationError
from clonestore.query import And, Cond, Expr, JsonCond, Or, OrderBy
from clonestore.spi import PRIMARY_KEY, TableSpec, Unique

from ._codecs import Converter, column_loader, columns_loader, make_tuple_builder
from ._dialects import Dialect
from ._json_lookups import JsonLookup, json_shape
from ._models import build_model

__all__ = ["SMALL_IN", "TRUE_SQL", "Compiler", "Slots", "Statement", "TableInfo", "walk"]

#: Shapes kept at most; past this the cache starts over (a safety net: real
#: applications have a few hundred shapes).
MAX_SHAPES: Final = 4096

#: ``in`` lists up to this long get one placeholder per value (and a shape per
#: length); longer ones are passed as a single array parameter.
SMALL_IN: Final = 8

#: The node of an always-true expression (an empty ``And``): no WHERE needed.
TRUE_SQL: Final = SQL("1 = 1")
_FALSE_SQL: Final = SQL("1 = 0")
_VALUE_OPS: Final = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})


def walk(expr: Expr, values: list[Any], small_in: int = SMALL_IN) -> Hashable:
    """The shape of ``expr``; appends its values to ``values`` in slot order.

    ``in`` lists up to ``small_in`` long get a placeholder per value (the compiler's
    :attr:`Compiler.small_in`: unbounded for dialects without array parameters)."""
    if type(expr) is Cond:
        op = expr.op
        if op == "isnull":
            return (expr.column, op, expr.value)
        if op == "in" or op == "not_in":
            items = expr.value
            if len(items) <= small_in:
                values.extend(items)
                return (expr.column, op, len(items))
            values.append(items)
            return (expr.column, op, -1)
        values.append(expr.value)
        return (expr.column, op)
    if type(expr) is JsonCond:
        values.append(expr)  # one value: the dialect's parameters take their parts of it
        return json_shape(expr)
    shape: list[Hashable] = [type(expr) is And]
    for item in cast(And | Or, expr).items:
        if type(item) is Cond and item.op in _VALUE_OPS:  # the common case, inline
            values.append(item.value)
            shape.append((item.column, item.op))
        else:
            shape.append(walk(item, values, small_in))
    return tuple(shape)


class _Slot:
    """Stands for the call's value number ``index`` in a rendered query."""

    __slots__ = ("convert", "index", "nullable")

    def __init__(self, index: int, convert: Converter | None, nullable: bool) -> None:
        self.index = index
        self.convert = convert
        self.nullable = nullable


class Slots:
    """Hands out slot nodes numbered in the order values are gathered."""

    def __init__(self) -> None:
        self.count = 0

    def new(self, convert: Converter | None = None, nullable: bool = False) -> Any:
        slot = _Slot(self.count, convert, nullable)
        self.count += 1
        return peewee.Value(slot, converter=False, unpack=False)


class Statement:
    """Cached SQL of one shape, how to lay out its parameters and read its rows."""

    __slots__ = ("load", "params", "sql")

    def __init__(
        self,
        sql: str,
        params: Callable[[Any], tuple[Any, ...]],
        load: Callable[[Sequence[Any]], dict[str, Any]] | None,
    ) -> None:
        self.sql = sql
        self.params = params
        self.load = load


class TableInfo:
    """What the backend knows of one table: spec, model, fields and fixed statements."""

    def __init__(self, spec: TableSpec, compiler: Compiler) -> None:
        self.spec = spec
        self.name = spec.name
        self.model = build_model(compiler.database, spec)
        self.fields: dict[str, Any] = dict(self.model._meta.columns)
        self.kinds = {c.name: c.kind for c in spec.columns}
        self.columns = [self.fields[c.name] for c in spec.columns]
        self.load = column_loader(spec.columns, compiler.codecs)
        self._codecs = compiler.codecs
        #: Column loaders by the columns read (capability select_columns).
        self._columns_loaders: dict[tuple[str, ...], ColumnsLoader] = {}
        #: The unique constraints by columns, the primary key (``PRIMARY_KEY``) included.
        self.uniques = {PRIMARY_KEY: Unique(PRIMARY_KEY), **{u.columns: u for u in spec.unique}}
        slots = Slots()
        query = self.model.select(*self.columns).where(self.fields["id"] == slots.new())
        #: Point read by id; its one parameter is the id.
        self.get_statement = compiler.render(query, self.load)
        slots = Slots()
        row = {
            field: slots.new(compiler.codecs.param(c.kind), c.nullable)
            for field, c in zip(self.columns, spec.columns, strict=True)
        }
        #: Insert of one row; its parameters come from the row dict.
        # .returning() with nothing: PostgreSQL inserts would otherwise return the id.
        self.insert_statement = compiler.render(
            self.model.insert(row).returning(), None, keys=[c.name for c in spec.columns]
        )

    def columns_loader(self, names: tuple[str, ...]) -> ColumnsLoader:
        """The loader of the columns ``names`` (see :func:`._codecs.columns_loader`)."""
        load = self._columns_loaders.get(names)
        if load is None:
            by_name = self.spec.by_name
            load = columns_loader([by_name[name] for name in names], self._codecs)
            self._columns_loaders[names] = load
        return load


#: Driver rows -> one sequence of values per column (capability select_columns).
ColumnsLoader = Callable[[Sequence[Sequence[Any]]], list[Sequence[Any]]]


#: What the compilers of one rendering (a Peewee database class and a dialect) share.
_SHARED_CACHES: dict[tuple[type, Dialect], dict[Hashable, Statement]] = {}
_SHARED_TABLES: dict[tuple[type, Dialect], dict[TableSpec, TableInfo]] = {}
_SHARED_LOCK: Final = threading.Lock()


class Compiler:
    """Renders statement shapes with Peewee and caches them, in caches shared with every
    compiler of the same Peewee database class and dialect (see the module)."""

    def __init__(self, database: peewee.Database, dialect: Dialect) -> None:
        self.database = database
        self.dialect = dialect
        self.codecs = dialect.codecs
        #: ``in`` lists longer than this are one array parameter (see :func:`walk`).
        self.small_in = SMALL_IN if dialect.array_params else sys.maxsize
        rendering = (type(database), dialect)
        #: Statements by shape; a shape's key names its table by :class:`TableInfo`.
        self.cache: dict[Hashable, Statement] = _SHARED_CACHES.setdefault(rendering, {})
        self._tables: dict[TableSpec, TableInfo] = _SHARED_TABLES.setdefault(rendering, {})

    def table(self, spec: TableSpec) -> TableInfo:
        """The :class:`TableInfo` of ``spec``, built once per process and rendering."""
        info = self._tables.get(spec)
        if info is None:
            with _SHARED_LOCK:
                info = self._tables.get(spec)
                if info is None:
                    info = self._tables[spec] = TableInfo(spec, self)
        return info

    def keep(self, key: Hashable, statement: Statement) -> Statement:
        """Cache ``statement`` under its shape ``key``; returns it."""
        if len(self.cache) >= MAX_SHAPES:
            self.cache.clear()
        self.cache[key] = statement
        return statement

    def render(
        self,
        query: Any,
        load: Callable[[Sequence[Any]], dict[str, Any]] | None,
        keys: Sequence[Any] | None = None,
    ) -> Statement:
        """A statement from a Peewee query whose values are slots.

        Values are passed as a list, value ``i`` for slot ``i``; with ``keys``,
        as a mapping, the value for slot ``i`` under ``keys[i]`` (a row dict).
        """
        context: Any = self.database.get_sql_context()
        sql, params = context.sql(query).query()
        sources: list[tuple[Any, Converter | None, bool]] = []
        for param in params:
            if isinstance(param, _Slot):
                key = param.index if keys is None else keys[param.index]
                sources.append((key, param.convert, param.nullable))
            else:  # a constant Peewee added itself (SQLite's LIMIT -1)
                sources.append((("const", param), None, False))
        return Statement(sql, make_tuple_builder(sources), load)

    # ------------------------------------------------------------------ expressions

    def condition(self, table: TableInfo, expr: Expr, slots: Slots) -> Any:
        """The Peewee node of ``expr``, slots allocated in :func:`walk` order."""
        if isinstance(expr, Cond):
            return self._cond(table, expr, slots)
        if isinstance(expr, JsonCond):
            return self._json(table, expr, slots)
        if not expr.items:
            return TRUE_SQL if isinstance(expr, And) else _FALSE_SQL
        nodes = [self.condition(table, item, slots) for item in expr.items]
        if isinstance(expr, And):
            return reduce(lambda a, b: a & b, nodes)
        return reduce(lambda a, b: a | b, nodes)

    def _cond(self, table: TableInfo, cond: Cond, slots: Slots) -> Any:
        try:
            field = table.fields[cond.column]
        except KeyError:
            raise ConfigurationError(f"{table.name} has no column {cond.column!r}") from None
        kind = table.kinds[cond.column]
        op = cond.op
        dialect = self.dialect
        if op == "isnull":
            return field.is_null(bool(cond.value))
        if op in ("in", "not_in"):
            count = len(cond.value)
            if count == 0:
                return _FALSE_SQL if op == "in" else field.is_null(False)
            if count <= self.small_in:
                params = [slots.new(self.codecs.param(kind)) for _ in range(count)]
                return field.in_(params) if op == "in" else field.not_in(params)
            array = slots.new(self.codecs.array_param(kind))
            if op == "in":
                return dialect.in_array(field, array, kind)
            return dialect.not_in_array(field, array, kind)
        if kind == "list" and op in ("contains", "overlap"):
            param = slots.new(self.codecs.list_param)
            if op == "contains":
                return dialect.list_contains(field, param)
            return dialect.list_overlap(field, param)
        if op in ("contains", "startswith", "endswith") and kind in ("text", "key"):
            param = slots.new()
            if op == "contains":
                return dialect.text_contains(field, param)
            if op == "startswith":
                return dialect.starts_with(field, param)
            return dialect.ends_with(field, param)
        if op in _VALUE_OPS and kind not in ("json", "list", "vector"):
            param = slots.new(self.codecs.param(kind))
            if op == "eq":
                return field == param
            if op == "ne":
                return field != param
            if op == "lt":
                return field < param
            if op == "lte":
                return field <= param
            if op == "gt":
                return field > param
            return field >= param
        raise ConfigurationError(f"{table.name}.{cond.column}: operator {op!r} is not supported")

    def _json(self, table: TableInfo, cond: JsonCond, slots: Slots) -> Any:
        if table.kinds.get(cond.column) != "json":
            raise ConfigurationError(f"{table.name}.{cond.column} is not a JSON column")
        index = slots.count  # the walk gave this lookup one value: the JsonCond itself
        slots.count += 1

        def param(convert: Callable[[JsonCond], Any]) -> Any:
            return peewee.Value(_Slot(index, convert, False), converter=False, unpack=False)

        return self.dialect.json_lookup(table.fields[cond.column], JsonLookup(cond, param))

    def ordering(self, table: TableInfo, order: Sequence[OrderBy]) -> list[Any]:
        """ORDER BY terms: NULLs last ascending, first descending (the dialect's
        :meth:`~.dialects.Dialect.order_term`)."""
        order_term = self.dialect.order_term
        by_name = table.spec.by_name
        return [
            order_term(table.fields[key.column], key.desc, by_name[key.column].nullable)
            for key in order
        ]

    def assignments(
        self, table: TableInfo, changes: Mapping[str, Any], slots: Slots, increments: Sequence[bool]
    ) -> dict[Any, Any]:
        """SET items: a value, or ``column + amount`` for an :class:`Increment`."""
        out: dict[Any, Any] = {}
        for (name, _), increment in zip(changes.items(), increments, strict=True):
            field = table.fields[name]
            column = table.spec.by_name[name]
            param = slots.new(self.codecs.param(column.kind), column.nullable)
            out[field] = field + param if increment else param
        return out
