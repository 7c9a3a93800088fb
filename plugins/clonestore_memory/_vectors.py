"""The vector index of a memory:// table (private to the package).

One :class:`VectorIndex` per vector column keeps, per owner (the table's
``user_id``, when it has one) and dimension, a float32 matrix of the vectors
(their stored values: the core rounds every vector to float32) with a slot per
row, and their norms in double precision. It is a :class:`~clonestore_memory._indexes.RowIndex`:
the table tells it of every row linked and unlinked, undo included, so it is
always in step with the rows, rolled-back writes leaving nothing behind.

A search ranks the group's rows with one single-precision matrix product
(BLAS ``sgemm``) and hands the ranking to :func:`clonestore.vectors.settle`,
which settles exact scores and order; float32 rounding (any summation order)
is what the margin accounts for.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterator
from typing import Any, Final

import numpy as np

from clonestore.query import And, Cond, Expr
from clonestore.spi import Row
from clonestore.vectors import SAFE_MAX, SAFE_MIN

__all__ = ["VectorIndex"]

_FIRST_RANKED: Final = 256
_NO_PARTITION: Final = object()


@functools.lru_cache(maxsize=64)
def _float32_struct(length: int) -> struct.Struct:
    return struct.Struct(f"<{length}f")


class _Group:
    """The vectors of one owner and dimension: a matrix with a slot per row."""

    def __init__(self, dimension: int) -> None:
        self.matrix = np.zeros((8, dimension), dtype=np.float32)
        self.norms = np.zeros(8)
        self.used = np.zeros(8, dtype=bool)
        self.safe = np.zeros(8, dtype=bool)
        self.ids: list[str | None] = [None] * 8
        self.slots: dict[str, int] = {}
        self.free: list[int] = list(range(7, -1, -1))

    def add(self, id: str, vector: list[float]) -> None:
        if not self.free:
            self._grow()
        slot = self.free.pop()
        # Exact: stored vectors are float32 values. Packed by a struct, then read as an
        # array: half the time of numpy.asarray over a list of Python floats.
        row = np.frombuffer(_float32_struct(len(vector)).pack(*vector), dtype="<f4")
        magnitude = np.abs(row)
        if magnitude.min() >= SAFE_MIN:  # no zero and no tiny item: the top decides
            safe = not magnitude.max() > SAFE_MAX
        else:
            safe = not ((magnitude > SAFE_MAX) | ((magnitude < SAFE_MIN) & (row != 0))).any()
        if safe:
            self.matrix[slot] = row
            exact = row.astype(np.float64)
            self.norms[slot] = math.sqrt(exact.dot(exact))
        self.safe[slot] = safe
        self.used[slot] = True
        self.ids[slot] = id
        self.slots[id] = slot

    def discard(self, id: str) -> None:
        slot = self.slots.pop(id, None)
        if slot is None:
            return
        self.used[slot] = False
        self.safe[slot] = False
        self.ids[slot] = None
        self.free.append(slot)

    def _grow(self) -> None:
        size = len(self.ids)
        self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        self.norms = np.concatenate([self.norms, np.zeros(size)])
        self.used = np.concatenate([self.used, np.zeros(size, dtype=bool)])
        self.safe = np.concatenate([self.safe, np.zeros(size, dtype=bool)])
        self.ids.extend([None] * size)
        self.free.extend(range(2 * size - 1, size - 1, -1))

    def distances(self, query: np.ndarray, query_norm: float, metric: str) -> np.ndarray:
        """Each slot's distance to ``query`` (cosine distance, L2 in expanded form, or
        the negative inner product); NaN for a zero vector under cosine."""
        dots = (self.matrix @ query).astype(np.float64)
        if metric == "ip":
            negated: np.ndarray = -dots
            return negated
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric == "cosine":
                result: np.ndarray = 1.0 - dots / (self.norms * query_norm)
                return result
            squared = self.norms * self.norms + query_norm * query_norm - 2.0 * dots
            distances: np.ndarray = np.sqrt(np.maximum(squared, 0.0))
            return distances


class VectorIndex:
    """Vectors of one column by owner and dimension."""

    def __init__(self, column: str, partition: str | None) -> None:
        self.column = column
        self.partition = partition
        self.groups: dict[tuple[Any, int], _Group] = {}

    def _key(self, row: Row) -> tuple[Any, int] | None:
        vector = row[self.column]
        if vector is None:
            return None
        owner = row[self.partition] if self.partition is not None else _NO_PARTITION
        return (owner, len(vector))

    def add(self, row: Row) -> None:
        key = self._key(row)
        if key is not None:
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group(key[1])
            group.add(row["id"], row[self.column])

    def discard(self, row: Row) -> None:
        key = self._key(row)
        if key is not None:
            group = self.groups.get(key)
            if group is not None:
                group.discard(row["id"])

    def _groups_for(self, where: Expr, dimension: int) -> list[_Group]:
        if self.partition is not None:
            conds = where.items if isinstance(where, And) else (where,)
            for cond in conds:
                if isinstance(cond, Cond) and cond.column == self.partition and cond.op == "eq":
                    group = self.groups.get((cond.value, dimension))
                    return [] if group is None else [group]
        return [g for (_, dim), g in self.groups.items() if dim == dimension]

    def max_norm(self, where: Expr, dimension: int) -> float:
        """The largest norm of the vectors :meth:`ranked` scores for ``where``."""
        top = 0.0
        for group in self._groups_for(where, dimension):
            live = group.used & group.safe
            if live.any():
                top = max(top, float(group.norms[live].max()))
        return top

    def ranked(
        self, where: Expr, query: list[float], metric: str
    ) -> Iterator[tuple[str, float | None]]:
        """Ids of the rows that may match ``where`` with the query's dimension, by
        distance: rows this index does not score (outside the safe range) first,
        then the others, NaN distances last."""
        groups = self._groups_for(where, len(query))
        if not groups:
            return
        unsafe: list[str] = []
        parts: list[np.ndarray] = []
        owners: list[tuple[list[str | None], np.ndarray]] = []  # (group ids, slots) per part
        vector = np.asarray(query, dtype=np.float32)
        query_norm = float(np.linalg.norm(vector.astype(np.float64)))
        for group in groups:
            live = group.used & group.safe
            for slot in np.flatnonzero(group.used & ~group.safe):
                unsafe.append(group.ids[slot])  # type: ignore[arg-type]
            slots = np.flatnonzero(live)
            if len(slots) == len(group.ids):
                parts.append(group.distances(vector, query_norm, metric))
            else:
                parts.append(group.distances(vector, query_norm, metric)[slots])
            owners.append((group.ids, slots))
        for id in unsafe:
            yield id, None
        distances = np.concatenate(parts) if len(parts) > 1 else parts[0]
        starts = np.cumsum([0] + [len(slots) for _, slots in owners])

        def id_of(i: int) -> str:
            """The id at position ``i`` of the concatenated distances (looked up lazily:
            a search reads a few dozen, never all)."""
            part = int(np.searchsorted(starts, i, side="right")) - 1 if len(owners) > 1 else 0
            group_ids, slots = owners[part]
            id = group_ids[int(slots[i - starts[part]])]
            assert id is not None
            return id

        count = len(distances)
        first = min(count, _FIRST_RANKED)
        seen: set[int] = set()
        if first < count:  # the best few without sorting them all; most searches stop there
            head = np.argpartition(distances, first - 1)[:first]
            head = head[np.argsort(distances[head], kind="stable")].tolist()
            for i in head:
                yield id_of(i), float(distances[i])
            seen.update(head)
        for i in np.argsort(distances, kind="stable").tolist():
            if i not in seen:
                yield id_of(i), float(distances[i])
