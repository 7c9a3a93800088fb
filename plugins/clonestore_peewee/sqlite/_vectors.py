"""Vector search on SQLite (capability ``vector_search``), with or without sqlite-vec.

The stored truth is the vector column itself (little-endian float32 blobs: the
values the core keeps, read back unchanged, stored once: sqlite-vec reads the
same bytes). Searches rank candidates in the engine and hand the ranking to
:func:`clonestore.vectors.settle`, which settles exact order and scores in
double precision; only ids and distances leave SQL before that, then the few
candidate rows.

**With sqlite-vec** (``pip install 'clonestore[vectors]'``: the extension and
``pysqlite3-binary``, a SQLite driver that can load extensions; Peewee prefers
it when installed): per vector column and dimension a ``vec0`` table of
float32 copies, ``<table>__<column>__vec<dimension>``, with one vector column
per engine metric (``cosine``, ``l2``) and the owner (``user_id``) as a
partition key, finds candidates by exact k-NN in C. It is written by the
backend in the caller's transaction with every insert, update and delete of
the table, so a rolled-back write leaves no vector, a soft delete removes it
and a restore puts it back. Rows the float32 engine cannot score (zero vectors,
items outside :func:`clonestore.vectors.engine_safe`'s range) are listed in
``<table>__<column>__loose`` instead and scored exactly first. A dimension's
table is created (and filled from the rows) the first time a row of that
dimension is written.

**Without it** (the standard library's ``sqlite3`` cannot load extensions, or
``vector_extension=false``), and for what ``vec0`` cannot answer (inner
product, more than 4,096 candidates), an aggregate function registered on each
connection scores the matching rows' float32 blobs in SQL, chunk by chunk with
numpy (in double precision over the float32 items), and returns only the best
ids and distances: slower, never a Python scan of whole rows, Python memory
bounded by the chunk.

A backend writing without the extension marks the table's ``vec0`` tables
stale (``clonestore_vector_index``, in the same transaction); stale tables are
not used for search, and a backend with the extension rebuilds them when it
opens.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from clonestore.query import And, Cond, Expr
from clonestore.spi import Row, TableSpec
from clonestore.spi_reference import matches, settle
from clonestore.vectors import FLOAT32_ROUNDOFF, FLOAT64_ROUNDOFF, SAFE_MAX, SAFE_MIN

from ..sql._backend import ALL, MANY, NONE, ONE
from ..sql._codecs import float32_blob

__all__ = ["INDEX_TABLE", "MAX_DIMENSION", "SqliteVectors", "load_extension", "register_functions"]

#: The registry of vec0 tables: (table, column, dimension) and whether stale.
INDEX_TABLE: Final = "clonestore_vector_index"
#: sqlite-vec's largest k.
MAX_K: Final = 4096
#: sqlite-vec's largest vec0 vector: the longest vector a SQLite store keeps (declared
#: with or without the extension, since the file may be opened later with it).
MAX_DIMENSION: Final = 8192
#: Vectors per ``vec0`` chunk. sqlite-vec writes a whole chunk (zeros) for each owner's
#: partition as the first vector comes: at its default 1,024, 384 dims and two metric
#: columns that is 3 MB for an owner with one memory (1,000 owners with 20 memories
#: each: a 6.3 GB file and 54 s to load them; at 32, 204 MB and 1.0 s). A k-NN search of
#: one owner's 20,000 vectors took as long with small chunks (44-64 ms at 16 to 1,024).
#: Tables made before keep their chunks.
CHUNK_SIZE: Final = 32
#: Rows the aggregate scores per numpy product.
_CHUNK: Final = 512
#: Metrics ``vec0`` ranks (a vector column each); ``ip`` goes to the aggregate.
_ENGINE_METRICS: Final = ("cosine", "l2")
#: Ids per ``id IN (...)`` read of candidate rows.
_ID_BATCH: Final = 10_000



def load_extension(conn: Any) -> str | None:
    """Load sqlite-vec into ``conn``; its version, or None when the driver or the
    package cannot (the standard library's sqlite3 is built without extension loading)."""
    try:
        import sqlite_vec

        conn.enable_load_extension(True)
        try:
            sqlite_vec.load(conn)
        finally:
            conn.enable_load_extension(False)
        version: str = conn.execute("SELECT vec_version()").fetchone()[0]
    except Exception:  # no package, no enable_load_extension, or the load failed
        return None
    return version


def _unsafe(values: np.ndarray) -> np.ndarray:
    """Per row of ``values``: whether an item is outside the engines' safe range."""
    magnitude = np.abs(values)
    bad = (magnitude > SAFE_MAX) | ((magnitude < SAFE_MIN) & (magnitude != 0.0))
    result: np.ndarray = bad.any(axis=-1)
    return result


class _Search:
    """One aggregate search: the best ``wanted`` (id, distance) of the rows stepped."""

    def __init__(self, query: np.ndarray, metric: str, wanted: int) -> None:
        self.query = query
        self.query_norm = float(np.linalg.norm(query))
        self.metric = metric
        self.wanted = wanted
        self.ids: list[str] = []
        self.blobs: list[bytes] = []
        self.best_ids: list[str] = []
        self.best: np.ndarray = np.empty(0)
        self.unscored: list[str] = []
        self.max_norm = 0.0

    def add(self, id: str, blob: bytes) -> None:
        self.ids.append(id)
        self.blobs.append(blob)
        if len(self.ids) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        stored = np.frombuffer(b"".join(self.blobs), dtype="<f4").reshape(len(self.ids), -1)
        matrix = stored.astype(np.float64)
        ids = self.ids
        self.ids, self.blobs = [], []
        unsafe = _unsafe(matrix)
        if unsafe.any():
            self.unscored.extend(id for id, bad in zip(ids, unsafe.tolist(), strict=True) if bad)
            keep = ~unsafe
            matrix = matrix[keep]
            ids = [id for id, good in zip(ids, keep.tolist(), strict=True) if good]
            if not ids:
                return
        dots = matrix @ self.query
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        self.max_norm = max(self.max_norm, float(norms.max()))
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.metric == "cosine":
                distances = 1.0 - dots / (norms * self.query_norm)
                distances[norms == 0.0] = np.inf  # no cosine: never returned
            elif self.metric == "l2":
                squared = norms * norms + self.query_norm * self.query_norm - 2.0 * dots
                distances = np.sqrt(np.maximum(squared, 0.0))
            else:
                distances = -dots
        all_ids = self.best_ids + ids
        merged = np.concatenate([self.best, distances])
        if len(merged) > self.wanted:
            top = np.argpartition(merged, self.wanted - 1)[: self.wanted]
            self.best = merged[top]
            self.best_ids = [all_ids[i] for i in top.tolist()]
        else:
            self.best = merged
            self.best_ids = all_ids

    def ranking(self) -> list[tuple[str, float | None]]:
        self.flush()
        order = np.argsort(self.best, kind="stable").tolist()
        ranked: list[tuple[str, float | None]] = [(id, None) for id in self.unscored]
        ranked += [(self.best_ids[i], float(self.best[i])) for i in order]
        return ranked


#: Searches in progress, by token (the aggregate's parameter).
_SEARCHES: dict[int, _Search] = {}
_TOKENS = itertools.count(1)
_SEARCHES_LOCK = threading.Lock()


class _Nearest:
    """The aggregate ``clonestore_nearest(id, vector, token)``: feeds the token's search."""

    def __init__(self) -> None:
        self.search: _Search | None = None

    def step(self, id: str, blob: bytes, token: int) -> None:
        search = self.search
        if search is None:
            search = self.search = _SEARCHES[token]
        search.add(id, blob)

    def finalize(self) -> int:
        return 0


def register_functions(conn: Any) -> None:
    """Register the aggregate the search without sqlite-vec uses on ``conn``."""
    conn.create_aggregate("clonestore_nearest", 3, _Nearest)


def _owner_of(where: Expr, column: str) -> Any:
    """The value ``where`` requires of ``column`` (a top-level equality), or None."""
    conds = where.items if isinstance(where, And) else (where,)
    for cond in conds:
        if isinstance(cond, Cond) and cond.column == column and cond.op == "eq":
            return cond.value
    return None


def _by_owner(entry: tuple[Any, ...]) -> Any:
    return entry[1]


def _vec_table(table: str, column: str, dimension: int) -> str:
    return f"{table}__{column}__vec{dimension}"


def _loose_table(table: str, column: str) -> str:
    return f"{table}__{column}__loose"


class SqliteVectors:
    """A SQLite backend's vector search and the upkeep of its vec0 tables (through
    the backend's ``execute``, ``select`` and ``where_sql``)."""

    def __init__(self, backend: Any, extension: bool) -> None:
        self.backend = backend
        #: Whether the backend's connections have sqlite-vec.
        self.extension = extension
        self._registry = False

    # ------------------------------------------------------------------ helpers

    def _run(self, sql: str, params: Sequence[Any] = (), mode: int = ALL) -> Any:
        return self.backend.execute(sql, params if mode == MANY else tuple(params), mode)

    @staticmethod
    def vector_columns(spec: TableSpec) -> list[str]:
        """The table's vector columns."""
        return [c.name for c in spec.columns if c.kind == "vector"]

    @staticmethod
    def owner_column(spec: TableSpec) -> str | None:
        """The partition key of the table's vec0 tables: ``user_id`` when it has one."""
        return "user_id" if "user_id" in spec.by_name else None

    def _has_registry(self, create: bool) -> bool:
        if not self._registry:
            if create:
                self._run(
                    f"CREATE TABLE IF NOT EXISTS {INDEX_TABLE} (table_name TEXT NOT NULL, "
                    "column_name TEXT NOT NULL, dimension INTEGER NOT NULL, "
                    "stale INTEGER NOT NULL, PRIMARY KEY (table_name, column_name, dimension))",
                    (),
                    NONE,
                )
            else:
                found = self._run(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (INDEX_TABLE,),
                    ONE,
                )
                if found is None:
                    return False
            self._registry = True
        return True

    def forget(self) -> None:
        """A transaction rolled back: the registry may be gone again."""
        self._registry = False

    def indexed(self, spec: TableSpec, column: str) -> dict[int, bool]:
        """The dimensions with a vec0 table for ``column``, each with whether stale."""
        if not self._has_registry(create=False):
            return {}
        rows = self._run(
            f"SELECT dimension, stale FROM {INDEX_TABLE} WHERE table_name = ? AND column_name = ?",
            (spec.name, column),
        )
        return {int(d): bool(s) for d, s in rows}

    # ------------------------------------------------------------------ upkeep

    def prepare(self, specs: Sequence[TableSpec]) -> None:
        """At ``create_tables``: with the extension, rebuild the stale vec0 tables of
        ``specs`` from the rows (written meanwhile by a backend without it)."""
        if not self.extension:
            return
        for spec in specs:
            for column in self.vector_columns(spec):
                indexed = self.indexed(spec, column)
                if not any(indexed.values()):
                    continue
                self._drop(spec, column, indexed)
                dimensions = self._run(
                    f'SELECT DISTINCT length("{column}") / 4 FROM "{spec.name}" '
                    f'WHERE "{column}" IS NOT NULL'
                )
                for (dimension,) in dimensions:
                    if int(dimension) <= MAX_DIMENSION:  # longer rows: see oversized()
                        self._create(spec, column, int(dimension))

    def _drop(self, spec: TableSpec, column: str, indexed: dict[int, bool]) -> None:
        for dimension in indexed:
            name = _vec_table(spec.name, column, dimension)
            self._run(f'DROP TABLE IF EXISTS "{name}"', (), NONE)
        self._run(f'DROP TABLE IF EXISTS "{_loose_table(spec.name, column)}"', (), NONE)
        self._run(
            f"DELETE FROM {INDEX_TABLE} WHERE table_name = ? AND column_name = ?",
            (spec.name, column),
            NONE,
        )

    def drop(self, spec: TableSpec) -> None:
        """Drop the vec0 tables of ``spec`` (the table itself is being dropped)."""
        if not self.extension:
            for column in self.vector_columns(spec):
                self._mark_stale(spec, column)
            return
        for column in self.vector_columns(spec):
            indexed = self.indexed(spec, column)
            if indexed:  # none yet: no registry to update either
                self._drop(spec, column, indexed)

    def _create(self, spec: TableSpec, column: str, dimension: int) -> None:
        """Create the vec0 table of a dimension and fill it from the live rows."""
        self._has_registry(create=True)
        name = _vec_table(spec.name, column, dimension)
        owner = self.owner_column(spec)
        partition = "owner text partition key, " if owner else ""
        self._run(
            f'CREATE VIRTUAL TABLE IF NOT EXISTS "{name}" USING vec0(id text primary key, '
            f"{partition}v_cosine float[{dimension}] distance_metric=cosine, "
            f"v_l2 float[{dimension}] distance_metric=l2, chunk_size={CHUNK_SIZE})",
            (),
            NONE,
        )
        self._run(
            f'CREATE TABLE IF NOT EXISTS "{_loose_table(spec.name, column)}" '
            "(id TEXT PRIMARY KEY, dimension INTEGER NOT NULL)",
            (),
            NONE,
        )
        self._run(
            f"INSERT OR REPLACE INTO {INDEX_TABLE} VALUES (?, ?, ?, 0)",
            (spec.name, column, dimension),
            NONE,
        )
        live = "deleted_at IS NULL AND " if spec.soft_delete else ""
        owner_sql = f', "{owner}"' if owner else ""
        rows = self._run(
            f'SELECT id{owner_sql}, "{column}" FROM "{spec.name}" '
            f'WHERE {live}length("{column}") = ?',
            (dimension * 4,),
        )
        self._put(spec, column, dimension, rows)

    def _put(self, spec: TableSpec, column: str, dimension: int, rows: Sequence[Any]) -> None:
        """Add rows ``(id, [owner,] float32 blob)`` of one dimension to the vec0 table,
        or to the loose table when float32 cannot score them (zero, out of range)."""
        if not rows:
            return
        owner = self.owner_column(spec) is not None
        matrix = np.frombuffer(b"".join(row[-1] for row in rows), dtype="<f4")
        matrix = matrix.reshape(len(rows), dimension)
        loose = (_unsafe(matrix) | ~matrix.any(axis=1)).tolist()
        vectors: list[tuple[Any, ...]] = []
        loose_ids: list[tuple[Any, ...]] = []
        for i, row in enumerate(rows):
            if loose[i]:
                loose_ids.append((row[0], dimension))
                continue
            blob = row[-1]  # the stored float32 blob is what vec0 reads
            vectors.append((row[0], row[1], blob, blob) if owner else (row[0], blob, blob))
        if vectors:
            if owner:
                # One owner's rows after another: vec0 keeps a chunk of vectors per
                # partition, and interleaved owners rewrite every partition's chunk for
                # each row (10 owners, 5,000 rows: 10 s interleaved, 1.6 s grouped).
                vectors.sort(key=_by_owner)
            marks = "?, ?, ?, ?" if owner else "?, ?, ?"
            name = _vec_table(spec.name, column, dimension)
            self._run(f'INSERT INTO "{name}" VALUES ({marks})', vectors, MANY)
        if loose_ids:
            loose_table = _loose_table(spec.name, column)
            self._run(f'INSERT INTO "{loose_table}" VALUES (?, ?)', loose_ids, MANY)

    def remove(self, spec: TableSpec, ids: Sequence[str]) -> None:
        """Take the rows ``ids`` out of the vec0 and loose tables (or mark them stale)."""
        if not ids:
            return
        for column in self.vector_columns(spec):
            if not self.extension:
                self._mark_stale(spec, column)
                continue
            dimensions = self.indexed(spec, column)
            if not dimensions:
                continue
            pairs = [(id,) for id in ids]
            for dimension in dimensions:
                name = _vec_table(spec.name, column, dimension)
                self._run(f'DELETE FROM "{name}" WHERE id = ?', pairs, MANY)
            loose_table = _loose_table(spec.name, column)
            self._run(f'DELETE FROM "{loose_table}" WHERE id = ?', pairs, MANY)

    def packed(self, spec: TableSpec, rows: Sequence[Row]) -> Sequence[Row]:
        """``rows`` with each vector packed into its float32 blob (copies; rows without a
        vector as they are): inserted as they are, and read by :meth:`add`, so a vector
        is packed once for its row and its vec0 copy (8 us each for 384 floats)."""
        columns = self.vector_columns(spec)
        return [
            {**row, **{c: float32_blob(row[c]) for c in columns if row[c] is not None}}
            if any(row[c] is not None for c in columns)
            else row
            for row in rows
        ]

    def add(self, spec: TableSpec, rows: Sequence[Row], packed: Sequence[Row] = ()) -> None:
        """Put the live rows' vectors into the vec0 tables (or mark them stale); ``packed``:
        the same rows from :meth:`packed`, whose blobs are used."""
        owner = self.owner_column(spec)
        for column in self.vector_columns(spec):
            if not self.extension:
                self._mark_stale(spec, column)
                continue
            by_dimension: dict[int, list[tuple[Any, ...]]] = {}
            for i, row in enumerate(rows):
                vector = row[column]
                if vector is None or (spec.soft_delete and row["deleted_at"] is not None):
                    continue
                # As the row's own column stores it.
                blob = packed[i][column] if packed else float32_blob(vector)
                entry = (row["id"], row[owner], blob) if owner else (row["id"], blob)
                by_dimension.setdefault(len(vector), []).append(entry)
            if not by_dimension:
                continue
            dimensions = self.indexed(spec, column)
            for dimension, entries in by_dimension.items():
                if dimension > MAX_DIMENSION:  # written before the limit: see oversized()
                    continue
                if dimension in dimensions:
                    self._put(spec, column, dimension, entries)
                else:
                    self._create(spec, column, dimension)  # filled from the rows, these too

    def oversized(self, specs: Sequence[TableSpec]) -> dict[str, int]:
        """Per ``table.column``, how many stored vectors are longer than vec0 takes
        (written before the limit was enforced): kept, searched without the index,
        reported by ``health()``."""
        found: dict[str, int] = {}
        for spec in specs:
            for column in self.vector_columns(spec):
                count = self._run(
                    f'SELECT count(*) FROM "{spec.name}" WHERE length("{column}") > ?',
                    (MAX_DIMENSION * 4,),
                    ONE,
                )[0]
                if count:
                    found[f"{spec.name}.{column}"] = int(count)
        return found

    def _mark_stale(self, spec: TableSpec, column: str) -> None:
        if self._has_registry(create=False):
            self._run(
                f"UPDATE {INDEX_TABLE} SET stale = 1 "
                "WHERE table_name = ? AND column_name = ? AND stale = 0",
                (spec.name, column),
                NONE,
            )

    # ------------------------------------------------------------------ search

    def nearest(
        self,
        spec: TableSpec,
        where: Expr,
        column: str,
        query: Sequence[float],
        metric: str,
        limit: int,
        cutoff: float | None,
    ) -> list[tuple[Row, float]]:
        """Exact nearest-k: vec0's candidates (or the aggregate's), settled in float64."""
        dimension = len(query)
        backend = self.backend
        vector = np.asarray(query, dtype=np.float64)
        rows_by_id: dict[str, Row] = {}

        def rows_for(ids: list[str]) -> dict[str, Row]:
            missing = [id for id in ids if id not in rows_by_id]
            for start in range(0, len(missing), _ID_BATCH):
                # By primary key alone (the planner might otherwise walk the owner's
                # index), then the search's conditions here.
                batch = Cond("id", "in", missing[start : start + _ID_BATCH])
                for row in backend.select(spec, batch):
                    if matches(where, row):
                        rows_by_id[row["id"]] = row
            return rows_by_id

        def scan() -> list[Row]:
            rows: list[Row] = backend.select(spec, where)
            return rows

        norms: list[float] = []

        def fetch_portable(wanted: int) -> list[tuple[Row, float | None]]:
            search = _Search(vector, metric, wanted)
            ranked = self._aggregate(spec, where, column, dimension, search)
            norms[:] = [search.max_norm]
            found = rows_for([id for id, _ in ranked])
            return [(found[id], d) for id, d in ranked if id in found][:wanted]

        def max_norm() -> float:
            if not norms:
                fetch_portable(1)
            return norms[0]

        engine = (
            self.extension
            and metric in _ENGINE_METRICS
            and self.indexed(spec, column).get(dimension) is False
        )
        if engine:

            def fetch_engine(wanted: int) -> list[tuple[Row, float | None]]:
                if wanted > MAX_K:
                    return fetch_portable(wanted)
                single = vector.astype("<f4").tobytes()  # settle asks only for safe queries
                listed = self._loose(spec, column, dimension, rows_for)
                k = wanted
                while True:
                    ranked = self._knn(spec, where, column, dimension, metric, single, k)
                    found = rows_for([id for id, _ in ranked])
                    scored = [(found[id], d) for id, d in ranked if id in found]
                    if len(listed) + len(scored) >= wanted or len(ranked) < k:
                        return (listed + scored)[:wanted]
                    if k >= MAX_K:
                        return fetch_portable(wanted)
                    k = min(MAX_K, k * 4)

            return settle(
                fetch_engine, scan, column, query, metric, limit, cutoff, FLOAT32_ROUNDOFF
            )
        exact = FLOAT64_ROUNDOFF  # numpy in double precision, expanded L2
        return settle(fetch_portable, scan, column, query, metric, limit, cutoff, exact,
                      expanded=True, max_norm=max_norm)  # fmt: skip

    def _aggregate(
        self, spec: TableSpec, where: Expr, column: str, dimension: int, search: _Search
    ) -> list[tuple[str, float | None]]:
        """Feed the matching rows of the dimension to ``search`` inside SQL."""
        token = next(_TOKENS)
        with _SEARCHES_LOCK:
            _SEARCHES[token] = search
        try:
            alias, condition, params = self.backend.where_sql(spec, where)
            self._run(
                f'SELECT clonestore_nearest({alias}."id", {alias}."{column}", ?) '
                f'FROM "{spec.name}" AS {alias} WHERE length({alias}."{column}") = ?'
                f"{' AND ' + condition if condition else ''}",
                (token, dimension * 4, *params),
                ONE,
            )
        finally:
            with _SEARCHES_LOCK:
                _SEARCHES.pop(token, None)
        return search.ranking()

    def _loose(
        self,
        spec: TableSpec,
        column: str,
        dimension: int,
        rows_for: Callable[[list[str]], dict[str, Row]],
    ) -> list[tuple[Row, float | None]]:
        """The matching rows of the loose table (listed first, unscored)."""
        loose_table = _loose_table(spec.name, column)
        ids = [
            id
            for (id,) in self._run(
                f'SELECT id FROM "{loose_table}" WHERE dimension = ?', (dimension,)
            )
        ]
        if not ids:
            return []
        found = rows_for(ids)
        return [(found[id], None) for id in sorted(ids) if id in found]

    def _knn(
        self,
        spec: TableSpec,
        where: Expr,
        column: str,
        dimension: int,
        metric: str,
        single: bytes,
        k: int,
    ) -> list[tuple[str, float]]:
        """vec0's k nearest (ids and float32 distances), in the owner's partition."""
        name = _vec_table(spec.name, column, dimension)
        owner_column = self.owner_column(spec)
        owner = _owner_of(where, owner_column) if owner_column else None
        sql = f'SELECT id, distance FROM "{name}" WHERE v_{metric} MATCH ? AND k = ?'
        params: list[Any] = [single, k]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        rows = self._run(sql, params)
        return [(id, math.nan if d is None else d) for id, d in rows]
