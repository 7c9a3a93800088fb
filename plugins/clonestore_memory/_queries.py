"""Ordering of rows in memory (private to the package)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from clonestore.query import OrderBy
from clonestore.spi import Row
from clonestore.spi_reference import sort_rows

__all__ = ["ordered"]


def ordered(rows: list[Row], order: Sequence[OrderBy], end: int | None) -> list[Row]:
    """``rows`` in ``order``; only the first ``end`` are needed when it is given."""
    if end is not None and end < len(rows) // 4 and len({o.desc for o in order}) == 1:
        # One direction: a single tuple key gives the same order as sort_rows,
        # and a heap finds the first ``end`` rows without sorting them all.
        def key(row: Row) -> tuple[Any, ...]:
            return tuple(
                (True,) if row[o.column] is None else (False, row[o.column]) for o in order
            )

        pick = heapq.nlargest if order[0].desc else heapq.nsmallest
        return pick(end, rows, key=key)
    return sort_rows(rows, order)
