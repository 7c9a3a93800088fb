"""Vector search on PostgreSQL (capability ``vector_search``), in the engine.

Two engines, one meaning (:func:`clonestore.vectors.nearest_reference`): the
backend asks the server for candidates in its own distance order and
:func:`clonestore.vectors.settle` proves the exact top-k among them, scoring
them in double precision from the stored float32 values (stored once, read
back unchanged; migration 0012).

* **pgvector** (the column is pgvector's ``vector``): candidates by ``<=>``
  (cosine), ``<->`` (L2) or ``<#>`` (inner product) computed in C over every
  matching row, with an ``ORDER BY ..., id`` that no approximate index can
  serve, so the scan is exact. Rows whose vector the engine cannot score (a
  norm not 0 and outside ``2**-50 .. 2**50``: its float32 products may leave
  float32's range) are found through the partial index
  ``ix_<table>_<column>_loose`` (usually empty), listed first and scored by
  settle; their engine distances are ignored.
* **no pgvector** (the column is ``real[]``): the matching rows' ids and
  vectors in binary (``array_send``), every distance at once in numpy in
  double precision, then only the candidates' rows.

Approximate search (``approximate=True``) uses an HNSW index when the backend
was opened with ``vector_index="hnsw"`` (see :class:`VectorOptions`): the index
lists ``limit`` candidates with ``hnsw.ef_search`` set for the
transaction, which are then scored exactly. With pgvector 0.8 or later the
index scan is iterative (``hnsw.iterative_scan = strict_order``): when a filter
(one owner's rows among many owners') leaves fewer than ``limit`` of the
``ef_search`` candidates, the scan goes on instead of returning too few. Rows
the index misses are missing from the answer: recall is measured
(``bench/bench_vectors.py``), not promised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

import attrs
import numpy as np
import peewee
from peewee import SQL, NodeList, fn

from clonestore import ConfigurationError, ValidationError
from clonestore.query import Cond, Expr
from clonestore.spi import Row, TableSpec
from clonestore.spi_reference import engine_safe, nearest_reference, settle
from clonestore.vectors import FLOAT32_ROUNDOFF, FLOAT64_ROUNDOFF, SAFE_MAX, SAFE_MIN

from ..sql._backend import ALL, NONE, ONE, SQLBackend
from ..sql._compiler import TRUE_SQL, Slots, Statement, TableInfo, walk

__all__ = [
    "HNSW_MAX_DIMENSION",
    "PGVECTOR_MAX_DIMENSION",
    "VECTOR_OPTIONS",
    "EngineColumn",
    "PgVectors",
    "VectorOptions",
    "loose",
    "loose_index",
    "received_matrix",
]

log = logging.getLogger("clonestore.postgresql")

#: pgvector's largest ``vector`` (its generated copy of a longer array fails the write).
PGVECTOR_MAX_DIMENSION: Final = 16_000
#: pgvector's largest ``vector`` an HNSW index takes.
HNSW_MAX_DIMENSION: Final = 2_000

#: pgvector's distance operator and HNSW operator class per metric (lower is better).
_OPERATORS: Final = {"cosine": "<=>", "l2": "<->", "ip": "<#>"}
_OPCLASSES: Final = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}

# The magnitudes an engine may score: clonestore.vectors.SAFE_MIN and SAFE_MAX (2**-50, 2**50).
_SAFE: Final = "(x = 0 OR abs(x) BETWEEN 8.881784197001252e-16 AND 1125899906842624)"


def loose(column: str) -> str:
    """The rows of a pgvector ``column`` the engine does not score: a norm (computed in
    double precision) not 0 and outside ``SAFE_MIN .. SAFE_MAX``. Every item is then at
    most ``SAFE_MAX`` and the norm at least ``SAFE_MIN``: products stay within float32's
    range, and what items below it lose (at most ``2**-149`` a product) is far below
    :func:`clonestore.vectors.error_bound` relative to norms of ``2**-50``."""
    norm = f'vector_norm("{column}")'
    return f"NOT ({norm} = 0 OR {norm} BETWEEN 8.881784197001252e-16 AND 1125899906842624)"


def loose_index(table: str, column: str) -> str:
    """The partial index listing ``table``'s :func:`loose` rows of ``column``."""
    return (
        f'CREATE INDEX IF NOT EXISTS "ix_{table}_{column}_loose" ON "{table}" (id) '
        f"WHERE {loose(column)}"
    )


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
    if isinstance(value, bool) or not 1 <= number <= PGVECTOR_MAX_DIMENSION:
        raise ConfigurationError(
            f"vector_dimension must be 1 .. {PGVECTOR_MAX_DIMENSION}, got {value!r}"
        )
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
        if options.index == "hnsw" and cast(int, options.dimension) > HNSW_MAX_DIMENSION:
            raise ConfigurationError(
                f"vector_index='hnsw' takes vectors of at most {HNSW_MAX_DIMENSION} "
                f"dimensions (pgvector's HNSW limit), got vector_dimension={options.dimension}"
            )
        return options

    def dimension_limits(self) -> dict[str, int]:
        """The longest vectors stored (pgvector's ``vector``) and indexed (HNSW)."""
        limits = {"pgvector vector": PGVECTOR_MAX_DIMENSION}
        if self.index == "hnsw":
            limits["pgvector HNSW index"] = HNSW_MAX_DIMENSION
        return limits


@attrs.frozen
class EngineColumn:
    """A vector column stored as pgvector's ``vector``: its name and fixed dimension
    (None: any)."""

    name: str
    dimension: int | None


class PgVectors:
    """The ``nearest`` of one PostgreSQL backend, and what it knows of its engine columns."""

    def __init__(self, backend: SQLBackend, options: VectorOptions) -> None:
        self.backend = backend
        self.options = options
        self._columns: dict[tuple[str, str], EngineColumn | None] = {}
        self._types: dict[tuple[str, str], str | None] = {}
        self._reported = False
        self._iterative: bool | None = None
        self._vector_columns: dict[str, tuple[str, ...]] = {}

    def forget(self) -> None:
        """Look the engine columns up again (the schema changed)."""
        self._columns.clear()
        self._types.clear()
        self._iterative = None

    def iterative_scans(self) -> bool:
        """Whether the installed pgvector scans HNSW indexes iteratively (0.8 and later)."""
        if self._iterative is None:
            row = self.backend.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'", (), ONE
            )
            version = tuple(int(part) for part in str(row[0]).split(".")[:2]) if row else ()
            self._iterative = version >= (0, 8)
        return self._iterative

    def engine_column(self, table: str, column: str) -> EngineColumn | None:
        """``table.column`` when pgvector's ``vector`` stores it, or None (``real[]``:
        searched in numpy over the stored arrays)."""
        key = (table, column)
        if key in self._columns:
            return self._columns[key]
        row = self.backend.execute(_COLUMN_TYPE, (table, column), ONE)
        found = None
        stored = None if row is None else str(row[0])
        if stored is not None and stored.startswith("vector"):
            found = EngineColumn(column, row[1] if row[1] > 0 else None)
            stored = "vector"
        self._types[key] = stored
        self._columns[key] = found
        if found is None and not self._reported and table == "memories":
            self._reported = True
            log.info(
                "%s: %s.%s is not pgvector's vector (the server lacks pgvector, or migration "
                "0012 ran before it was installed): vector search runs exactly in SQL over "
                "the stored arrays, slower than pgvector",
                self.backend.label,
                table,
                column,
            )
        return found

    def stored_type(self, table: str, column: str) -> str | None:
        """How ``table.column`` is stored: ``vector`` (pgvector's, any dimension),
        ``real[]``, ``double precision[]`` (before migration 0012), or None (no column)."""
        key = (table, column)
        if key not in self._types:
            self.engine_column(table, column)
        return self._types[key]

    def engine_report(self) -> dict[str, Any]:
        """What ``health()`` shows: how memories are searched here."""
        engine = self.engine_column("memories", "embedding")
        if engine is None:
            return {
                "engine": "sql",
                "note": "no pgvector: exact search over the stored arrays (slower)",
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
                self._index_loose_rows(spec.name, engine.name)
                if options.dimension is not None and engine.dimension != options.dimension:
                    self._set_dimension(spec.name, column.name, engine.name, options.dimension)
                if options.index == "hnsw":
                    for metric in options.index_metrics:
                        self._build_index(spec.name, engine.name, metric)
        self.forget()

    def _index_loose_rows(self, table: str, column: str) -> None:
        """The partial index of :func:`loose` rows, made when missing (asked first: a role
        that does not own the table may open the store once it exists)."""
        name = f"ix_{table}_{column}_loose"
        if self.backend.execute("SELECT to_regclass(%s)", (f'"{name}"',), ONE)[0] is None:
            log.info("%s: indexing the loose rows of %s.%s", self.backend.label, table, column)
            self.backend.execute(loose_index(table, column), (), NONE)

    def _set_dimension(self, table: str, column: str, engine: str, dimension: int) -> None:
        backend = self.backend
        other = backend.execute(
            f'SELECT count(*) FROM "{table}" WHERE vector_dims("{column}") <> %s',
            (dimension,),
            ONE,
        )[0]
        if other:
            raise ConfigurationError(
                f"{backend.label}: vector_dimension={dimension}, but {other} rows of "
                f"{table}.{column} have another length; remove or re-embed them first"
            )
        log.info("%s: %s.%s is now vector(%d)", backend.label, table, engine, dimension)
        backend.execute(
            f'ALTER TABLE "{table}" ALTER COLUMN "{engine}" TYPE vector({dimension})', (), NONE
        )

    def _build_index(self, table: str, engine: str, metric: str) -> None:
        options = self.options
        name = f"ix_{table}_{engine}_hnsw_{metric}"
        log.info("%s: building HNSW index %s (if missing)", self.backend.label, name)
        self.backend.execute(
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
        key = ("nearest", info, shape, column, metric, engine, hnsw)
        compiler = backend.compiler
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(
                key, _statement(backend, info, where, column, metric, engine, hnsw)
            )
        values.append(len(query))
        load = info.load

        def ranked(n: int) -> list[tuple[Row, float | None]]:
            rows = backend.execute(statement.sql, statement.params([*values, n]), ALL)
            out = []
            for row in rows:
                loaded = load(row)
                sent = loaded[column]
                if sent is not None:
                    loaded[column] = _received(sent)
                out.append((loaded, row[-1]))
            return out

        if hnsw:
            return self._approximate(ranked, column, query, metric, limit, cutoff)

        def scan() -> list[Row]:
            return backend.select(table, where)

        if engine is None:
            return self._scored_here(table, info, where, shape, column, query, metric, limit,
                                     cutoff, values[1:], scan)  # fmt: skip

        loose_rows: list[Row] | None = None

        def fetch(n: int) -> list[tuple[Row, float | None]]:
            # The rows the engine does not score first (unscored), then the engine's
            # ranking without them: asked for as many more, so that a list shorter than n
            # still means every row was listed.
            nonlocal loose_rows
            if loose_rows is None:
                loose_key = ("nearest_loose", info, shape, column)
                found = compiler.cache.get(loose_key)
                if found is None:
                    found = compiler.keep(loose_key, _loose_statement(backend, info, where, column))
                found_rows = backend.execute(found.sql, found.params(values[1:]), ALL)
                loose_rows = [info.load(row) for row in found_rows]
            if not loose_rows:
                return ranked(n)
            ids = {row["id"] for row in loose_rows}
            listed = [(row, None) for row in loose_rows]
            return listed + [item for item in ranked(n + len(ids)) if item[0]["id"] not in ids]

        def max_norm() -> float:
            norm_key = ("nearest_norm", info, shape, column, engine)
            norms = compiler.cache.get(norm_key)
            if norms is None:
                norms = compiler.keep(
                    norm_key, _norm_statement(backend, info, where, column, engine)
                )
            found = backend.execute(norms.sql, norms.params(values[1:]), ONE)[0]
            # Computed in double precision from float32 items (pgvector) or float64 ones:
            # a relative margin far above either's rounding makes it a bound.
            return 0.0 if found is None else float(found) * (1.0 + 2.0**-16)

        roundoff = FLOAT64_ROUNDOFF if engine is None else FLOAT32_ROUNDOFF
        return settle(
            fetch, scan, column, query, metric, limit, cutoff, roundoff, max_norm=max_norm
        )

    def _scored_here(
        self,
        table: TableSpec,
        info: TableInfo,
        where: Expr,
        shape: Any,
        column: str,
        query: Sequence[float],
        metric: str,
        limit: int,
        cutoff: float | None,
        values: list[Any],
        scan: Callable[[], list[Row]],
    ) -> list[tuple[Row, float]]:
        """Without pgvector: the matching rows' ids and vectors (in binary, ``array_send``)
        in one statement, every distance at once in numpy (double precision), then only
        the candidates' rows; settled exactly like the engine's ranking."""
        backend = self.backend
        compiler = backend.compiler
        key = ("nearest_vectors", info.name, shape, column)
        statement = compiler.cache.get(key)
        if statement is None:
            statement = compiler.keep(key, _vectors_statement(backend, info, where, column))
        ids, matrix = cast(Any, backend).sent_vectors(statement.sql, statement.params(values))
        ranking = _Ranking(query, metric, ids, matrix.reshape(len(ids), len(query)))
        rows_by_id: dict[str, Row] = {}

        def fetch(n: int) -> list[tuple[Row, float | None]]:
            listed = ranking.first(n)
            missing = [id for id, _ in listed if id not in rows_by_id]
            if missing:
                for row in backend.select(table, Cond("id", "in", missing)):
                    rows_by_id[row["id"]] = row
            return [(rows_by_id[id], d) for id, d in listed if id in rows_by_id]

        return settle(fetch, scan, column, query, metric, limit, cutoff, FLOAT64_ROUNDOFF,
                      expanded=True, max_norm=lambda: ranking.max_norm)  # fmt: skip

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
            # With pgvector 0.8, filtered by owner, the first ef_search candidates may hold
            # too few of this owner's rows: the scan goes on, in distance order. One
            # statement sets it all.
            settings = _HNSW_ITERATIVE_SETTINGS if self.iterative_scans() else _HNSW_SETTINGS
            backend.execute(settings, (str(max(self.options.ef_search, limit)),), NONE)
            # Only ``limit`` candidates, as a raw HNSW query asks: filtered by owner, each
            # further one costs the iterative scan about one entry per owner in the index
            # (limit + 16 took 2.3x as long at 10k real embeddings, for the same recall).
            listed = fetch(limit)
        return nearest_reference([row for row, _ in listed], column, query, metric, limit, cutoff)


#: What an approximate search sets for its transaction (values: ef_search).
_HNSW_SETTINGS: Final = (
    "SELECT set_config('hnsw.ef_search', %s, true), "
    "set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)"
)
_HNSW_ITERATIVE_SETTINGS: Final = (
    _HNSW_SETTINGS + ", set_config('hnsw.iterative_scan', 'strict_order', true)"
)


# array_send's items of a one-dimensional double precision[]: length, then the value.
_ITEM: Final = np.dtype([("length", ">i4"), ("value", ">f8")])


# The same for real[] (float32 items).
_ITEM32: Final = np.dtype([("length", ">i4"), ("value", ">f4")])
_FLOAT4_OID: Final = 700


def _item_type(data: bytes) -> np.dtype[Any]:
    """The items' layout of an ``array_send`` of a ``real[]`` or ``double precision[]``."""
    return _ITEM32 if int.from_bytes(data[8:12], "big") == _FLOAT4_OID else _ITEM


def _received(sent: Any) -> list[float]:
    """The floats of a ``real[]`` or ``double precision[]`` sent by ``array_send`` (a
    20-byte header: dimensions, NULL flag, item type, length, lower bound; then the
    items)."""
    data = bytes(sent)
    if len(data) < 20:  # no dimensions: an empty array
        return []
    count = int.from_bytes(data[12:16], "big")
    items: list[float] = np.frombuffer(data, _item_type(data), count, 20)["value"].tolist()
    return items


def received_matrix(sent: list[bytes]) -> np.ndarray:
    """The float64 matrix of ``array_send`` outputs of arrays of one length."""
    if not sent:
        return np.empty((0, 0))
    data = b"".join(sent)
    count = int.from_bytes(sent[0][12:16], "big") if len(sent[0]) >= 20 else 0
    layout = np.dtype([("header", "V20"), ("items", _item_type(data), (count,))])
    return np.frombuffer(data, layout, len(sent))["items"]["value"].astype(np.float64)


def _norm_statement(
    backend: SQLBackend, info: TableInfo, where: Expr, column: str, engine: EngineColumn | None
) -> Statement:
    """``SELECT max(norm) ... WHERE ... AND cardinality(column) = ?`` over the rows the engine
    scores; values: the where's, dimension."""
    compiler = backend.compiler
    slots = Slots()
    field = info.fields[column]
    if engine is None:
        norm: Any = _over_items("sqrt(sum(a * a))", field)
    else:  # the rows the engine scores
        name = engine.name
        norm = SQL(f'CASE WHEN {loose(name)} THEN NULL ELSE vector_norm("{name}") END')
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
            peewee.Cast(field, "float8[]"),
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
    next slot)."""
    condition = compiler.condition(info, where, slots)
    if engine is None:
        length = fn.cardinality(field) == slots.new()
    else:
        length = fn.vector_dims(field) == slots.new()
    return select.where(length if condition is TRUE_SQL else condition & length)


def _statement(
    backend: SQLBackend,
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
    sent = f'array_send("{column}"::real[])'
    names = [sent if c.name == column else f'"{c.name}"' for c in info.spec.columns]
    sql = (
        f'SELECT {", ".join(names)}, "distance" FROM ({inner.sql}) AS candidates '
        'ORDER BY "distance" ASC NULLS FIRST, "id"'
    )
    return Statement(sql, inner.params, inner.load)


class _Ranking:
    """Every matching row's distance to a query, from the ids and the ``array_send`` of
    their vectors (one after the other) of the query's dimension: computed at once in
    numpy in double precision (L2 expanded: ``sqrt(|q|^2 + |r|^2 - 2 q.r)``); rows with
    an item outside the engines' safe range
    are listed first, unscored (settle scores them)."""

    def __init__(
        self, query: Sequence[float], metric: str, ids: list[str], matrix: np.ndarray
    ) -> None:
        self.ids = ids
        vector = np.asarray(query, dtype=np.float64)
        magnitude = np.abs(matrix)
        unsafe = ((magnitude > SAFE_MAX) | ((magnitude < SAFE_MIN) & (magnitude != 0.0))).any(1)
        if unsafe.any():  # rare: no copy of the matrix otherwise
            matrix = np.where(unsafe[:, None], 0.0, matrix)
        dots = matrix @ vector
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        self.max_norm = float(norms.max(initial=0.0)) * (1.0 + 2.0**-16)
        query_norm = float(np.linalg.norm(vector))
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric == "cosine":
                distances = 1.0 - dots / (norms * query_norm)
                distances[norms == 0.0] = np.inf  # no cosine: never returned
            elif metric == "l2":
                squared = norms * norms + query_norm * query_norm - 2.0 * dots
                distances = np.sqrt(np.maximum(squared, 0.0))
            else:
                distances = -dots
        distances[unsafe] = -np.inf  # first, and reported as unscored
        self.unsafe = unsafe
        self.distances = distances

    def first(self, n: int) -> list[tuple[str, float | None]]:
        """The ``n`` best (unscored rows first), in distance order."""
        distances = self.distances
        if n < len(distances):
            top = np.argpartition(distances, n - 1)[:n]
            top = top[np.argsort(distances[top], kind="stable")]
        else:
            top = np.argsort(distances, kind="stable")
        ids, unsafe = self.ids, self.unsafe
        return [(ids[i], None if unsafe[i] else float(distances[i])) for i in top.tolist()]


def _loose_statement(backend: SQLBackend, info: TableInfo, where: Expr, column: str) -> Statement:
    """``SELECT columns ... WHERE ... AND vector_dims(column) = ? AND <loose>``: the rows the
    engine does not score (through the partial index); values: the where's, dimension."""
    compiler = backend.compiler
    field = info.fields[column]
    select = info.model.select(*info.columns)
    engine = EngineColumn(column, None)
    select = _filtered(compiler, select, info, where, field, Slots(), engine)
    return compiler.render(select.where(SQL(loose(column))), info.load)


def _vectors_statement(backend: SQLBackend, info: TableInfo, where: Expr, column: str) -> Statement:
    """``SELECT id, array_send(column) ... WHERE ... AND cardinality(column) = ?``; values:
    the where's, dimension."""
    compiler = backend.compiler
    field = info.fields[column]
    select = info.model.select(info.fields["id"], fn.array_send(field))
    return compiler.render(_filtered(compiler, select, info, where, field, Slots(), None), None)
