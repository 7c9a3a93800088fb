"""Vector search on PostgreSQL (capability ``vector_search``), in the engine.

Two engines, one meaning (:func:`clonestore.vectors.nearest_reference`): the
backend asks the server for candidates in its own distance order and
:func:`clonestore.vectors.settle` proves the exact top-k among them, scoring
them in double precision from the stored ``double precision[]`` values, which
stay the truth (they read back unchanged).

* **pgvector** (migration 0004 made ``<column>_vec``, a single-precision copy
  the server keeps in step as a stored generated column): candidates by
  ``<=>`` (cosine), ``<->`` (L2) or ``<#>`` (inner product) computed in C over
  every matching row, with an ``ORDER BY ... NULLS FIRST, id`` that no
  approximate index can serve, so the scan is exact. Rows whose vector the
  engine cannot score (NULL copy) come first and are scored by settle.
* **no pgvector** (PostgreSQL without the extension): the same statement with
  the distance computed in SQL in double precision over the stored arrays
  (``unnest``), so only candidates reach Python, never every row.

Approximate search (``approximate=True``) uses an HNSW index when the backend
was opened with ``vector_index="hnsw"`` (see :class:`VectorOptions`): the index
lists ``limit`` plus a margin of candidates with ``hnsw.ef_search`` set for the
transaction, which are then scored exactly. Rows the index misses are missing
from the answer: recall is measured (``bench/bench_vectors.py``), not promised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import numpy as np
import peewee
from peewee import SQL, NodeList, fn

from clonestore import ConfigurationError, ValidationError
from clonestore.spi import (
    FLOAT32_ROUNDOFF,
    FLOAT64_ROUNDOFF,
    Expr,
    Row,
    TableSpec,
    engine_safe,
    nearest_reference,
    settle,
)

from .backend import ALL, NONE, ONE
from .compiler import TRUE_SQL, Slots, Statement, TableInfo, walk

if TYPE_CHECKING:
    from .postgres import PostgresBackend

__all__ = ["ENGINE_SUFFIX", "VECTOR_OPTIONS", "EngineColumn", "VectorOptions", "VectorSearch"]

log = logging.getLogger("clonestore.postgresql")

#: The engine's copy of vector column ``c`` is the column ``c + ENGINE_SUFFIX``.
ENGINE_SUFFIX: Final = "_vec"

#: pgvector's distance operator and HNSW operator class per metric (lower is better).
_OPERATORS: Final = {"cosine": "<=>", "l2": "<->", "ip": "<#>"}
_OPCLASSES: Final = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}

# The magnitudes an engine may score: clonestore.vectors.SAFE_MIN and SAFE_MAX (2**-50, 2**50).
_SAFE: Final = "(x = 0 OR abs(x) BETWEEN 8.881784197001252e-16 AND 1125899906842624)"
# The distance in double precision over the items (a: the stored item or 0 when it is
# not safe, y: the query's), in the engines' form: lower is better.
_SQL_DISTANCES: Final = {
    "cosine": "CASE WHEN sum(a * a) = 0 THEN 'NaN'::float8 "
    "ELSE 1 - sum(a * y) / (sqrt(sum(a * a)) * sqrt(sum(y * y))) END",
    "l2": "sqrt(sum((a - y) * (a - y)))",
    "ip": "-sum(a * y)",
}

_COLUMN_TYPE: Final = (
    "SELECT format_type(atttypid, atttypmod), atttypmod FROM pg_attribute "
    "WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped"
)


def _index_type(value: Any) -> str:
    if value not in ("none", "hnsw"):
        raise ConfigurationError(f"vector_index must be 'none' or 'hnsw', got {value!r}")
    return str(value)


def _dimension(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or not 1 <= number <= 16_000:
        raise ConfigurationError(f"vector_dimension must be 1 .. 16000, got {value!r}")
    return number


def _metrics(value: Any) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else list(value)
    metrics = tuple(name.strip() for name in names if name.strip())
    unknown = [m for m in metrics if m not in _OPERATORS]
    if not metrics or unknown:
        raise ConfigurationError(
            f"vector_index_metrics must name metrics of {', '.join(_OPERATORS)}, got {value!r}"
        )
    return metrics


def _count(minimum: int, maximum: int, name: str) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = minimum - 1
        if isinstance(value, bool) or not minimum <= number <= maximum:
            raise ConfigurationError(f"{name} must be {minimum} .. {maximum}, got {value!r}")
        return number

    return read


#: The backend's vector options (keywords to ``clonestore.open`` or URL parameters).
VECTOR_OPTIONS: Final = {
    "vector_dimension": (_dimension, None),
    "vector_index": (_index_type, "none"),
    "vector_index_metrics": (_metrics, ("cosine",)),
    "m": (_count(2, 100, "m"), 16),
    "ef_construction": (_count(4, 1000, "ef_construction"), 64),
    "ef_search": (_count(1, 1000, "ef_search"), 200),
}


@attrs.frozen
class VectorOptions:
    """How a deployment stores and indexes vectors.

    ``vector_dimension``: the one length of every embedding (``vector(n)``); a
    vector of another length is a ``ValidationError`` before anything is
    written. ``vector_index="hnsw"`` (needs ``vector_dimension``) builds an HNSW
    index per metric of ``vector_index_metrics`` with ``m`` and
    ``ef_construction``, used by approximate searches with ``ef_search``.
    """

    dimension: int | None
    index: str
    index_metrics: tuple[str, ...]
    m: int
    ef_construction: int
    ef_search: int

    @classmethod
    def read(cls, opts: dict[str, Any]) -> VectorOptions:
        options = cls(
            opts["vector_dimension"],
            opts["vector_index"],
            opts["vector_index_metrics"],
            opts["m"],
            opts["ef_construction"],
            opts["ef_search"],
        )
        if options.index == "hnsw" and options.dimension is None:
            raise ConfigurationError(
                "vector_index='hnsw' needs vector_dimension (an HNSW "
                "index holds vectors of one length)"
            )
        return options


@attrs.frozen
class EngineColumn:
    """pgvector's copy of a vector column: its name and fixed dimension (None: any)."""

    name: str
    dimension: int | None


class VectorSearch:
    """The ``nearest`` of one PostgreSQL backend, and what it knows of its engine columns."""

    def __init__(self, backend: PostgresBackend, options: VectorOptions) -> None:
        self.backend = backend
        self.options = options
        self._columns: dict[tuple[str, str], EngineColumn | None] = {}
        self._reported = False
        self._vector_columns: dict[str, tuple[str, ...]] = {}

    def forget(self) -> None:
        """Look the engine columns up again (the schema changed)."""
        self._columns.clear()

    def engine_column(self, table: str, column: str) -> EngineColumn | None:
        """pgvector's copy of ``table.column``, or None (no pgvector: SQL over the arrays)."""
        key = (table, column)
        if key in self._columns:
            return self._columns[key]
        name = column + ENGINE_SUFFIX
        row = self.backend._execute(_COLUMN_TYPE, (table, name), ONE)
        found = None
        if row is not None and str(row[0]).startswith("vector"):
            found = EngineColumn(name, row[1] if row[1] > 0 else None)
        self._columns[key] = found
        if found is None and not self._reported:
            self._reported = True
            log.info(
                "%s: %s.%s has no pgvector copy (the server lacks pgvector, or migration "
                "0004 ran before it was installed): vector search runs exactly in SQL over "
                "the stored arrays, slower than pgvector",
                self.backend.label,
                table,
                column,
            )
        return found

    def engine_report(self) -> dict[str, Any]:
        """What ``health()`` shows: how memories are searched here."""
        engine = self.engine_column("memories", "embedding")
        if engine is None:
            return {
                "engine": "sql",
                "note": "no pgvector: exact search in SQL over the stored arrays (slower)",
            }
        return {
            "engine": "pgvector",
            "column": f"memories.{engine.name}",
            "dimension": engine.dimension,
            "index": self.options.index,
        }

    # ------------------------------------------------------------------ writes

    def check_rows(self, table: TableSpec, rows: Sequence[Mapping[str, Any]]) -> None:
        """Refuse (ValidationError) vectors whose length is not the deployment's dimension
        (rows, or an update's changes), before anything is written."""
        dimension = self.options.dimension
        if dimension is None:
            return
        names = self._vector_columns.get(table.name)
        if names is None:
            names = tuple(c.name for c in table.columns if c.kind == "vector")
            self._vector_columns[table.name] = names
        for name in names:
            for row in rows:
                value = row.get(name)
                if value is not None and len(value) != dimension:
                    raise ValidationError(
                        f"must have {dimension} items (this store's vector_dimension), "
                        f"got {len(value)}",
                        field=name,
                    )

    # ------------------------------------------------------------------ schema

    def apply(self, specs: Sequence[TableSpec]) -> None:
        """Fix the engine columns' dimension and build HNSW indexes as the options ask
        (under the schema lock, from ``create_tables``)."""
        self.forget()
        options = self.options
        for spec in specs:
            for column in spec.columns:
                if column.kind != "vector":
                    continue
                engine = self.engine_column(spec.name, column.name)
                if engine is None:
                    continue
                if options.dimension is not None and engine.dimension != options.dimension:
                    self._set_dimension(spec.name, column.name, engine.name, options.dimension)
                if options.index == "hnsw":
                    for metric in options.index_metrics:
                        self._build_index(spec.name, engine.name, metric)
        self.forget()

    def _set_dimension(self, table: str, column: str, engine: str, dimension: int) -> None:
        backend = self.backend
        other = backend._execute(
            f'SELECT count(*) FROM "{table}" WHERE cardinality("{column}") <> %s',
            (dimension,),
            ONE,
        )[0]
        if other:
            raise ConfigurationError(
                f"{backend.label}: vector_dimension={dimension}, but {other} rows of "
                f"{table}.{column} have another length; remove or re-embed them first"
            )
        log.info("%s: %s.%s is now vector(%d)", backend.label, table, engine, dimension)
        backend._execute(
            f'ALTER TABLE "{table}" ALTER COLUMN "{engine}" TYPE vector({dimension})', (), NONE
        )

    def _build_index(self, table: str, engine: str, metric: str) -> None:
        options = self.options
        name = f"ix_{table}_{engine}_hnsw_{metric}"
        log.info("%s: building HNSW index %s (if missing)", self.backend.label, name)
        self.backend._execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" USING hnsw '
            f'("{engine}" {_OPCLASSES[metric]}) '
            f"WITH (m = {options.m}, ef_construction = {options.ef_construction})",
            (),
            NONE,
        )

    # ------------------------------------------------------------------ nearest

    def nearest(
        self,
        table: TableSpec,
        where: Expr,
        column: str,
        query: Sequence[float],
        metric: str,
        limit: int,
        cutoff: float | None,
        approximate: bool,
    ) -> list[tuple[Row, float]]:
        """The exact best ``limit`` rows (see the module docstring)."""
        backend = self.backend
        info = backend.table_info(table)
        if metric not in _OPERATORS:
            raise ConfigurationError(f"unknown metric {metric!r}")
        if info.kinds.get(column) != "vector":
            raise ConfigurationError(f"{table.name}.{column} is not a vector column")
        if limit < 1:
            return []
        engine = self.engine_column(table.name, column)
        if engine is not None and engine.dimension not in (None, len(query)):
            return []  # no stored vector has the query's length
        values: list[Any] = [list(query)]
        shape = walk(where, values)
        hnsw = (
            approximate
            and engine_safe(query)
            and engine is not None
            and self.options.index == "hnsw"
            and metric in self.options.index_metrics
        )
        key = ("nearest", info.name, shape, column, metric, engine, hnsw)
        compiler = backend.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, _statement(backend, info, where, column, metric, engine, hnsw)
            )
        values.append(len(query))
        load = info.load

        def fetch(n: int) -> list[tuple[Row, float | None]]:
            rows = backend._execute(statement.sql, statement.params([*values, n]), ALL)
            out = []
            for row in rows:
                loaded = load(row)
                sent = loaded[column]
                if sent is not None:
                    loaded[column] = _received(sent)
                out.append((loaded, row[-1]))
            return out

        if hnsw:
            return self._approximate(fetch, column, query, metric, limit, cutoff)

        def scan() -> list[Row]:
            return backend.select(table, where)

        def max_norm() -> float:
            norm_key = ("nearest_norm", info.name, shape, column, engine)
            norms = compiler.cache.get(norm_key)
            if norms is None:
                norms = compiler.keep(
                    norm_key, _norm_statement(backend, info, where, column, engine)
                )
            found = backend._execute(norms.sql, norms.params(values[1:]), ONE)[0]
            # Computed in double precision from float32 items (pgvector) or float64 ones:
            # a relative margin far above either's rounding makes it a bound.
            return 0.0 if found is None else float(found) * (1.0 + 2.0**-16)

        roundoff = FLOAT64_ROUNDOFF if engine is None else FLOAT32_ROUNDOFF
        return settle(
            fetch, scan, column, query, metric, limit, cutoff, roundoff, max_norm=max_norm
        )

    def _approximate(
        self,
        fetch: Callable[[int], list[tuple[Row, float | None]]],
        column: str,
        query: Sequence[float],
        metric: str,
        limit: int,
        cutoff: float | None,
    ) -> list[tuple[Row, float]]:
        backend = self.backend
        with backend.transaction():
            # The index, even where the planner would rather filter by owner and sort:
            # approximate=True asks for the index's speed.
            backend._execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)",
                (str(max(self.options.ef_search, limit)),),
                NONE,
            )
            listed = fetch(limit + max(limit, 16))
        return nearest_reference([row for row, _ in listed], column, query, metric, limit, cutoff)


# array_send's items of a one-dimensional double precision[]: length, then the value.
_ITEM: Final = np.dtype([("length", ">i4"), ("value", ">f8")])


def _received(sent: Any) -> list[float]:
    """The floats of a ``double precision[]`` sent by ``array_send`` (a 20-byte header:
    dimensions, NULL flag, item type, length, lower bound; then the items)."""
    data = bytes(sent)
    if len(data) < 20:  # no dimensions: an empty array
        return []
    count = int.from_bytes(data[12:16], "big")
    items: list[float] = np.frombuffer(data, _ITEM, count, 20)["value"].tolist()
    return items


def _norm_statement(
    backend: PostgresBackend, info: TableInfo, where: Expr, column: str, engine: EngineColumn | None
) -> Statement:
    """``SELECT max(norm) ... WHERE ... AND cardinality(column) = ?`` over the rows the engine
    scores; values: the where's, dimension."""
    compiler = backend.compiler
    slots = Slots()
    field = info.fields[column]
    if engine is None:
        norm: Any = _over_items("sqrt(sum(a * a))", field)
    else:
        norm = fn.vector_norm(SQL(f'"{engine.name}"'))
    select = info.model.select(fn.MAX(norm))
    return compiler.render(_filtered(compiler, select, info, where, field, slots, engine), None)


def _over_items(aggregate: str, field: Any, query: Any = None) -> Any:
    """``aggregate`` over the items ``a`` of a stored array (0 for items not
    :func:`engine_safe`) and ``y`` of the query (without one, of the array itself), in
    double precision; NULL for a row with an item that is not safe (settle scores it)."""
    return NodeList(
        (
            SQL(
                f"(SELECT CASE WHEN bool_and({_SAFE}) THEN {aggregate} END "
                f"FROM (SELECT CASE WHEN {_SAFE} THEN x ELSE 0 END AS a, y, x FROM unnest("
            ),
            field,
            SQL(","),
            field if query is None else query,
            SQL(") AS t(x, y)) AS u)"),
        ),
        glue="",
    )


def _filtered(
    compiler: Any,
    select: Any,
    info: TableInfo,
    where: Expr,
    field: Any,
    slots: Slots,
    engine: EngineColumn | None,
) -> Any:
    """``select`` of the rows matching ``where`` whose vector has the query's length (the
    next slot). With pgvector the length is read from the engine's copy (a NULL copy
    passes: settle scores those rows), never from the stored array, which would have to be
    read from its TOAST table for every row."""
    condition = compiler.condition(info, where, slots)
    if engine is None:
        length = fn.cardinality(field) == slots.new()
    else:
        copy = SQL(f'"{engine.name}"')
        length = (fn.vector_dims(copy) == slots.new()) | copy.is_null()
    return select.where(length if condition is TRUE_SQL else condition & length)


def _statement(
    backend: PostgresBackend,
    info: TableInfo,
    where: Expr,
    column: str,
    metric: str,
    engine: EngineColumn | None,
    hnsw: bool,
) -> Statement:
    """``SELECT columns, distance ... WHERE ... AND <length> = ? ORDER BY distance [NULLS
    FIRST, id] LIMIT ?`` (the vector column by ``array_send``); values: query, the where's,
    dimension, limit."""
    compiler = backend.compiler
    slots = Slots()
    query = peewee.Cast(slots.new(), "float8[]")
    field = info.fields[column]
    if engine is None:
        distance: Any = _over_items(_SQL_DISTANCES[metric], field, query)
    else:
        cast = "vector" if engine.dimension is None else f"vector({engine.dimension})"
        distance = NodeList(
            (SQL(f'"{engine.name}"'), SQL(_OPERATORS[metric]), peewee.Cast(query, cast))
        )
    select = info.model.select(*info.columns, distance.alias("distance"))
    select = _filtered(compiler, select, info, where, field, slots, engine)
    if hnsw:
        select = select.order_by(distance)
    else:
        select = select.order_by(SQL('"distance" ASC NULLS FIRST'), info.fields["id"])
    inner = compiler.render(select.limit(slots.new()), info.load)
    # The candidates' vectors in binary (array_send: no float-to-text on the server, no
    # parsing here), applied outside the sort so that only the candidates' arrays are read.
    names = [f'array_send("{c.name}")' if c.name == column else f'"{c.name}"'
             for c in info.spec.columns]  # fmt: skip
    sql = (
        f'SELECT {", ".join(names)}, "distance" FROM ({inner.sql}) AS candidates '
        'ORDER BY "distance" ASC NULLS FIRST, "id"'
    )
    return Statement(sql, inner.params, inner.load)
