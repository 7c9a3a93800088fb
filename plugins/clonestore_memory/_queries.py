"""Ordering and aggregation over rows in memory (private to the package)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from clonestore import ConfigurationError
from clonestore.spi import Aggregate, OrderBy, Row, sort_rows

__all__ = ["aggregate", "ordered"]


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


def aggregate(agg: Aggregate, rows: list[Row]) -> Any:
    """``agg`` over ``rows``: its reference meaning (see :class:`clonestore.spi.Aggregate`)."""
    if agg.fn == "count":
        if agg.column is None:
            return len(rows)
        return sum(1 for r in rows if r[agg.column] is not None)
    assert agg.column is not None
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
